#include "frames.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <future>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <stdexcept>
#include <sys/socket.h>
#include <unistd.h>

namespace promiscd::testing {

std::string hex(const Bytes& b) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (uint8_t c : b) {
        s += digits[c >> 4];
        s += digits[c & 15];
    }
    return s;
}

Mac mac_of(const Netns& ns, const std::string& dev) {
    auto text = ns.exec_ok("cat /sys/class/net/" + dev + "/address");
    Mac m{};
    for (size_t i = 0; i < 6; ++i)
        m[i] = static_cast<uint8_t>(std::stoi(text.substr(i * 3, 2), nullptr, 16));
    return m;
}

FrameSender::FrameSender(const Netns& ns, const std::string& dev) {
    std::async(std::launch::async, [&] {
        int nsfd = ::open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
        if (nsfd < 0 || ::setns(nsfd, CLONE_NEWNET) != 0)
            throw std::runtime_error("setns " + ns.name() + ": " + std::strerror(errno));
        ::close(nsfd);
        fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        ifindex_ = static_cast<int>(::if_nametoindex(dev.c_str()));
        if (fd_ < 0 || ifindex_ == 0)
            throw std::runtime_error("sender on " + dev + ": " + std::strerror(errno));
    }).get();
}

FrameSender::~FrameSender() {
    ::close(fd_);
}

void FrameSender::send(const Bytes& frame) {
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = ifindex_;
    to.sll_halen = 6;
    std::memcpy(to.sll_addr, frame.data(), 6);
    for (;;) {
        auto n = ::sendto(fd_, frame.data(), frame.size(), 0,
                          reinterpret_cast<const sockaddr*>(&to), sizeof to);
        if (n == static_cast<ssize_t>(frame.size()))
            return;
        if (n < 0 && (errno == ENOBUFS || errno == EAGAIN || errno == EINTR))
            continue;
        throw std::runtime_error(std::string("sendto: ") + std::strerror(errno));
    }
}

} // namespace promiscd::testing
