// Sends one Ethernet frame over and over out of an interface for a fixed
// time, as fast as one core can (or at a given rate), and prints how many it
// sent. The load generator of bench/run.py; run it inside the sender's
// network namespace, pinned with taskset.
//
// usage: frame_blaster IFACE DST_MAC SIZE SECONDS [FRAMES_PER_SECOND]
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s IFACE DST_MAC SIZE SECONDS [FRAMES_PER_SECOND]\n", argv[0]);
        return 2;
    }
    const unsigned ifindex = if_nametoindex(argv[1]);
    unsigned mac[6];
    if (ifindex == 0 || std::sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &mac[0], &mac[1], &mac[2],
                                    &mac[3], &mac[4], &mac[5]) != 6) {
        std::fprintf(stderr, "frame_blaster: bad interface or MAC\n");
        return 2;
    }
    const auto size = static_cast<std::size_t>(std::atoi(argv[3]));
    const double seconds = std::atof(argv[4]);
    const double rate = argc > 5 ? std::atof(argv[5]) : 0;
    if (size < 60 || size > 9000) {
        std::fprintf(stderr, "frame_blaster: size must be 60..9000\n");
        return 2;
    }
    // Protocol 0: the socket only sends.
    const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        std::perror("socket");
        return 1;
    }
    // Straight to the driver: the qdisc would only add work on the sender.
    const int one = 1;
    (void)setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);

    std::vector<unsigned char> frame(size, 0);
    for (int i = 0; i < 6; ++i) {
        frame[i] = static_cast<unsigned char>(mac[i]);
    }
    frame[6] = 0x02; // a locally administered source address
    frame[11] = 0x01;
    frame[12] = 0x88; // IEEE 802 local experimental ethertype
    frame[13] = 0xb5;
    for (std::size_t i = 14; i < size; ++i) {
        frame[i] = static_cast<unsigned char>(i);
    }
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(ifindex);
    to.sll_halen = 6;
    std::memcpy(to.sll_addr, frame.data(), 6);

    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    unsigned long long sent = 0;
    unsigned long long failed = 0;
    for (;;) {
        // The clock is read every 256 frames: cheap enough not to count.
        if ((sent & 255) == 0) {
            const auto now = clock::now();
            if (now >= end) {
                break;
            }
            if (rate > 0) {
                const auto due = start + std::chrono::duration<double>(sent / rate);
                if (due > now) {
                    std::this_thread::sleep_until(due);
                }
            }
        }
        if (sendto(fd, frame.data(), size, 0, reinterpret_cast<const sockaddr*>(&to), sizeof to) ==
            static_cast<ssize_t>(size)) {
            ++sent;
        } else if (errno == ENOBUFS || errno == EAGAIN) {
            ++failed;
        } else {
            std::perror("sendto");
            return 1;
        }
    }
    const double elapsed = std::chrono::duration<double>(clock::now() - start).count();
    std::printf("sent %llu failed %llu seconds %.3f\n", sent, failed, elapsed);
    close(fd);
    return 0;
}
