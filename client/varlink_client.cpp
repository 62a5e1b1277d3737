#include "client/varlink_client.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace promiscd::client {

namespace {

std::string errno_text(int err) {
    return std::strerror(err);
}

// Waits until fd has events or the deadline passes; false on timeout.
bool wait_fd(int fd, short events, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() < 0)
            return false;
        pollfd p{fd, events, 0};
        int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count() + 1, 60'000)));
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            throw Error(ErrorKind::Failed, {}, "poll on the varlink socket: " + errno_text(errno));
    }
}

Error lost(const std::string& path) {
    return Error(ErrorKind::DaemonUnreachable, {},
                 "the connection to promiscd at " + path + " was closed");
}

} // namespace

VarlinkClient::VarlinkClient(const std::string& path) : path_(path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(addr.sun_path))
        throw Error(ErrorKind::DaemonUnreachable, {},
                    "invalid varlink socket path " + std::string("'") + path + "'");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd_)
        throw Error(ErrorKind::Failed, {}, "socket: " + errno_text(errno));
    int r;
    do
        r = ::connect(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
    while (r < 0 && errno == EINTR);
    if (r < 0) {
        int err = errno;
        throw Error(ErrorKind::DaemonUnreachable, {},
                    "cannot connect to promiscd's varlink socket " + path + ": " + errno_text(err));
    }
    int flags = ::fcntl(fd_.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK) < 0)
        throw Error(ErrorKind::Failed, {}, "fcntl: " + errno_text(errno));
}

VarlinkClient::~VarlinkClient() = default;

void VarlinkClient::send(const nlohmann::json& message) {
    if (!fd_)
        throw lost(path_);
    std::string out = message.dump();
    out.push_back('\0');
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::send(fd_.get(), out.data() + done, out.size() - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!wait_fd(fd_.get(), POLLOUT, deadline))
                throw Error(ErrorKind::Failed, {}, "promiscd does not read its varlink socket");
            continue;
        }
        throw lost(path_);
    }
}

void VarlinkClient::call_more(const std::string& method, const nlohmann::json& parameters) {
    send({{"method", method}, {"parameters", parameters}, {"more", true}});
}

void VarlinkClient::call_oneway(const std::string& method, const nlohmann::json& parameters) {
    send({{"method", method}, {"parameters", parameters}, {"oneway", true}});
}

VarlinkClient::Reply VarlinkClient::request(const std::string& method,
                                            const nlohmann::json& parameters) {
    send({{"method", method}, {"parameters", parameters}});
    auto r = wait(std::chrono::minutes(2));
    if (!r.error.empty())
        raise(r);
    return r;
}

nlohmann::json VarlinkClient::call(const std::string& method, const nlohmann::json& parameters) {
    return std::move(request(method, parameters).parameters);
}

bool VarlinkClient::read_some() {
    if (!fd_ || eof_)
        return false;
    std::array<char, 65536> buf;
    alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(int) * kMaxFds)> control;
    // Bounded per call: the caller's loop comes back while more is queued.
    for (int round = 0; round < 16; ++round) {
        iovec iov{buf.data(), buf.size()};
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = control.data();
        mh.msg_controllen = control.size();
        ssize_t n = ::recvmsg(fd_.get(), &mh, MSG_CMSG_CLOEXEC);
        if (n > 0) {
            read_offset_ += static_cast<std::uint64_t>(n);
            take_fds(mh);
            in_.append(buf.data(), static_cast<size_t>(n));
            parse();
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        eof_ = true; // end of stream, or an error that ends it
        return false;
    }
    return true;
}

void VarlinkClient::take_fds(msghdr& mh) {
    bool truncated = (mh.msg_flags & MSG_CTRUNC) != 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            // Owned from here, whatever happens next.
            fds_.emplace_back(read_offset_ - 1, UniqueFd(fd));
        }
    }
    if (truncated) {
        eof_ = true;
        fds_.clear();
        throw Error(ErrorKind::Failed, {},
                    "promiscd passed more than " + std::to_string(kMaxFds) +
                        " file descriptors at once over varlink");
    }
}

void VarlinkClient::parse() {
    size_t start = 0;
    for (;;) {
        auto nul = in_.find('\0', start);
        if (nul == std::string::npos)
            break;
        auto j =
            nlohmann::json::parse(in_.begin() + static_cast<std::ptrdiff_t>(start),
                                  in_.begin() + static_cast<std::ptrdiff_t>(nul), nullptr, false);
        start = nul + 1;
        if (!j.is_object()) {
            eof_ = true;
            in_.clear();
            throw Error(ErrorKind::Failed, {}, "promiscd sent an invalid varlink message");
        }
        Reply r;
        const std::uint64_t last = in_offset_ + nul;
        while (!fds_.empty() && fds_.front().first <= last) {
            r.fds.push_back(std::move(fds_.front().second));
            fds_.pop_front();
        }
        if (auto p = j.find("parameters"); p != j.end() && p->is_object())
            r.parameters = std::move(*p);
        if (auto c = j.find("continues"); c != j.end() && c->is_boolean())
            r.continues = c->get<bool>();
        if (auto e = j.find("error"); e != j.end() && e->is_string())
            r.error = e->get<std::string>();
        replies_.push_back(std::move(r));
    }
    in_.erase(0, start);
    in_offset_ += start;
    if (in_.size() > kMaxMessage) {
        eof_ = true;
        in_.clear();
        throw Error(ErrorKind::Failed, {}, "promiscd sent a varlink message larger than 16 MiB");
    }
}

std::optional<VarlinkClient::Reply> VarlinkClient::next() {
    if (replies_.empty())
        return std::nullopt;
    Reply r = std::move(replies_.front());
    replies_.pop_front();
    return r;
}

VarlinkClient::Reply VarlinkClient::wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (auto r = next())
            return std::move(*r);
        if (!fd_ || eof_)
            throw lost(path_);
        if (!wait_fd(fd_.get(), POLLIN, deadline))
            throw Error(ErrorKind::Failed, {}, "promiscd did not answer over varlink in time");
        if (!read_some() && replies_.empty())
            throw lost(path_);
    }
}

void VarlinkClient::raise(const Reply& r) {
    std::string message;
    if (auto m = r.parameters.find("message"); m != r.parameters.end() && m->is_string())
        message = m->get<std::string>();
    else if (r.parameters.empty())
        message = r.error;
    else
        message = r.error + " " + r.parameters.dump();
    throw VarlinkError(varlink_error_kind(r.error), r.error, message, r.parameters);
}

} // namespace promiscd::client
