// The capture socket against the real kernel: a network namespace with a veth
// pair that this test creates and removes, frames sent from one end and
// captured on the other (or on "any"). Also RecordLayout, which needs no root.
#include "capture/filter.hpp"
#include "capture/packet_socket.hpp"
#include "capture/pcapng_writer.hpp"
#include "capture/record_layout.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

namespace {

using namespace promiscd::capture;
using namespace std::chrono_literals;
using Bytes = std::vector<std::uint8_t>;

Bytes gather(const RecordLayout& layout) {
    Bytes out;
    for (const iovec& piece : layout.pieces()) {
        const auto* p = static_cast<const std::uint8_t*>(piece.iov_base);
        out.insert(out.end(), p, p + piece.iov_len);
    }
    return out;
}

// ---- RecordLayout (no root) ----

TEST(RecordLayout, PlainEthernetIsTheDataCutToSnaplen) {
    Bytes frame(100, 0xab);
    Packet p;
    p.data = frame.data();
    p.caplen = 100;
    p.origlen = 1000;
    p.hatype = ARPHRD_ETHER;
    RecordLayout whole(p, false, 0);
    EXPECT_EQ(gather(whole), frame);
    EXPECT_EQ(whole.caplen(), 100u);
    EXPECT_EQ(whole.origlen(), 1000u);
    RecordLayout cut(p, false, 64);
    EXPECT_EQ(gather(cut), Bytes(64, 0xab));
    EXPECT_EQ(cut.origlen(), 1000u);
}

TEST(RecordLayout, VlanTagGoesBackAfterTheAddresses) {
    Bytes frame(64);
    for (std::size_t i = 0; i < frame.size(); ++i) {
        frame[i] = static_cast<std::uint8_t>(i);
    }
    Packet p;
    p.data = frame.data();
    p.caplen = 64;
    p.origlen = 64;
    p.hatype = ARPHRD_ETHER;
    p.has_vlan = true;
    p.vlan_tci = 0x2064; // priority 1, VLAN 100
    p.vlan_tpid = 0x88a8;
    RecordLayout layout(p, false, 0);
    Bytes want(frame.begin(), frame.begin() + 12);
    want.insert(want.end(), {0x88, 0xa8, 0x20, 0x64});
    want.insert(want.end(), frame.begin() + 12, frame.end());
    EXPECT_EQ(gather(layout), want);
    EXPECT_EQ(layout.origlen(), 68u);
    RecordLayout cut(p, false, 14);
    EXPECT_EQ(gather(cut), Bytes(want.begin(), want.begin() + 14));
    EXPECT_EQ(cut.caplen(), 14u);
}

TEST(RecordLayout, CookedPacketsGetAnSll2Header) {
    const Bytes ip{0x45, 0, 0, 20};
    Packet p;
    p.data = ip.data();
    p.caplen = 4;
    p.origlen = 20;
    p.ifindex = 0x01020304;
    p.protocol = ETH_P_IP;
    p.hatype = ARPHRD_ETHER;
    p.pkttype = PACKET_OUTGOING;
    p.addr_len = 6;
    p.addr = {1, 2, 3, 4, 5, 6, 0, 0};
    RecordLayout layout(p, true, 0);
    const Bytes want{0x08, 0x00, 0, 0, 1, 2, 3,    4, 0, 1, PACKET_OUTGOING, 6, 1, 2,
                     3,    4,    5, 6, 0, 0, 0x45, 0, 0, 20};
    EXPECT_EQ(gather(layout), want);
    EXPECT_EQ(layout.origlen(), 40u);

    p.has_vlan = true;
    p.vlan_tci = 7;
    p.vlan_tpid = ETH_P_8021Q;
    RecordLayout tagged(p, true, 26);
    const Bytes tagged_want{0x81, 0x00, 0,    0, 1, 2, 3, 4, 0, 1, PACKET_OUTGOING,
                            6,    1,    2,    3, 4, 5, 6, 0, 0, 0, 7,
                            0x08, 0x00, 0x45, 0};
    EXPECT_EQ(gather(tagged), tagged_want);
    EXPECT_EQ(tagged.origlen(), 44u);
}

// ---- PacketSocket in a network namespace (root) ----

int run(const std::string& cmdline) {
    const int status = std::system(cmdline.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct Link {
    int ifindex = 0;
    std::array<std::uint8_t, 6> mac{};
};

// Frames with a given UDP destination port, optionally 802.1Q-tagged.
Bytes udp_frame(const Link& to, const Link& from, std::size_t size, std::uint16_t port,
                int vlan = -1, std::uint8_t seed = 0) {
    Bytes f;
    f.insert(f.end(), to.mac.begin(), to.mac.end());
    f.insert(f.end(), from.mac.begin(), from.mac.end());
    if (vlan >= 0) {
        f.insert(f.end(), {0x81, 0x00, static_cast<std::uint8_t>(vlan >> 8),
                           static_cast<std::uint8_t>(vlan)});
    }
    f.insert(f.end(), {0x08, 0x00});
    const std::size_t ip_len = size - f.size();
    const std::size_t ip_at = f.size();
    f.insert(f.end(), {0x45,
                       0,
                       static_cast<std::uint8_t>(ip_len >> 8),
                       static_cast<std::uint8_t>(ip_len),
                       0,
                       1,
                       0x40,
                       0,
                       64,
                       17,
                       0,
                       0,
                       10,
                       0,
                       0,
                       2,
                       10,
                       0,
                       0,
                       1});
    std::uint32_t sum = 0;
    for (std::size_t i = 0; i < 20; i += 2) {
        sum += (f[ip_at + i] << 8) | f[ip_at + i + 1];
    }
    sum = (sum & 0xffff) + (sum >> 16);
    sum = ~((sum & 0xffff) + (sum >> 16)) & 0xffff;
    f[ip_at + 10] = static_cast<std::uint8_t>(sum >> 8);
    f[ip_at + 11] = static_cast<std::uint8_t>(sum);
    const std::size_t udp_len = ip_len - 20;
    f.insert(f.end(),
             {0x30, 0x39, static_cast<std::uint8_t>(port >> 8), static_cast<std::uint8_t>(port),
              static_cast<std::uint8_t>(udp_len >> 8), static_cast<std::uint8_t>(udp_len), 0, 0});
    while (f.size() < size) {
        f.push_back(static_cast<std::uint8_t>(seed + f.size()));
    }
    return f;
}

struct Captured {
    std::uint64_t ts_ns;
    Bytes data;   // as the ring holds it
    Bytes record; // after RecordLayout
    std::uint32_t origlen;
    std::uint32_t record_origlen;
    Packet meta; // data pointer not valid after release
};

std::uint64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return std::uint64_t(ts.tv_sec) * 1'000'000'000 + std::uint64_t(ts.tv_nsec);
}

// Reads packets until `want` are in or `timeout` passes.
std::vector<Captured> collect(PacketSocket& socket, std::size_t want,
                              std::chrono::milliseconds timeout) {
    std::vector<Captured> out;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out.size() < want) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0 || !socket.wait_for_block(left)) {
            break;
        }
        while (auto block = socket.current_block()) {
            std::size_t n = 0;
            for (const Packet& p : *block) {
                RecordLayout layout(p, socket.cooked(), socket.snaplen());
                out.push_back({p.timestamp_ns, Bytes(p.data, p.data + p.caplen), gather(layout),
                               p.origlen, layout.origlen(), p});
                ++n;
            }
            EXPECT_EQ(n, block->size());
            socket.release_block();
        }
    }
    return out;
}

class PacketSocketTest : public ::testing::Test {
protected:
    // Runs f in a thread that has joined the namespace. Sockets keep the
    // namespace they were created in, so they work from any thread after.
    template <class F>
    auto in_netns(F f) {
        return std::async(
                   std::launch::async,
                   [this, f = std::move(f)] {
                       UniqueFd ns(open(("/run/netns/" + ns_).c_str(), O_RDONLY | O_CLOEXEC));
                       if (!ns || setns(ns.get(), CLONE_NEWNET) != 0) {
                           throw std::system_error(errno, std::system_category(), "setns " + ns_);
                       }
                       return f();
                   })
            .get();
    }

    void SetUp() override {
        if (geteuid() != 0) {
            GTEST_SKIP() << "needs root: creates a network namespace and packet sockets";
        }
        static std::atomic<int> counter{0};
        ns_ = "pdcap" + std::to_string(getpid()) + "x" + std::to_string(counter++);
        ASSERT_EQ(run("ip netns add " + ns_), 0) << "cannot create namespace " << ns_;
        created_ = true;
        ASSERT_EQ(run("ip -n " + ns_ + " link add pa type veth peer name pb && ip -n " + ns_ +
                      " link set pa up && ip -n " + ns_ + " link set pb up"),
                  0);
        in_netns([this] {
            a_ = link("pa");
            b_ = link("pb");
            // Protocol 0: sends only, never receives.
            sender_.reset(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
            if (!sender_) {
                throw std::system_error(errno, std::system_category(), "sender socket");
            }
        });
    }

    void TearDown() override {
        if (created_) {
            run("ip netns del " + ns_);
        }
    }

    PacketSocket open_socket(const PacketSocketOptions& options) {
        return in_netns([options] { return PacketSocket(options); });
    }

    static Link link(const char* name) {
        Link l;
        l.ifindex = static_cast<int>(if_nametoindex(name));
        UniqueFd fd(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ifreq ifr{};
        std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
        if (l.ifindex == 0 || ioctl(fd.get(), SIOCGIFHWADDR, &ifr) != 0) {
            throw std::system_error(errno, std::system_category(), name);
        }
        std::memcpy(l.mac.data(), ifr.ifr_hwaddr.sa_data, 6);
        return l;
    }

    void send(const Bytes& frame) {
        sockaddr_ll to{};
        to.sll_family = AF_PACKET;
        to.sll_ifindex = b_.ifindex;
        to.sll_halen = 6;
        std::memcpy(to.sll_addr, a_.mac.data(), 6);
        const ssize_t n = sendto(sender_.get(), frame.data(), frame.size(), 0,
                                 reinterpret_cast<const sockaddr*>(&to), sizeof to);
        ASSERT_EQ(n, static_cast<ssize_t>(frame.size())) << std::strerror(errno);
    }

    std::string ns_;
    bool created_ = false;
    Link a_;
    Link b_;
    UniqueFd sender_;
};

TEST_F(PacketSocketTest, CapturesOnlyWhatTheFilterAccepts) {
    PacketSocket socket =
        open_socket({.ifindex = a_.ifindex, .filter = "udp port 9", .block_timeout = 10ms});
    EXPECT_FALSE(socket.cooked());
    EXPECT_EQ(socket.link_type(), kLinkTypeEthernet);
    const std::uint64_t before = now_ns();
    std::vector<Bytes> sent;
    std::uint8_t seed = 0;
    for (std::size_t size : {60, 61, 100, 577, 1000, 1514}) {
        sent.push_back(udp_frame(a_, b_, size, 9, -1, seed++));
        send(sent.back());
        send(udp_frame(a_, b_, size, 10)); // filtered out
    }
    auto got = collect(socket, sent.size(), 5s);
    const std::uint64_t after = now_ns();
    const auto extra = collect(socket, 1, 100ms);
    EXPECT_TRUE(extra.empty()) << extra.size() << " packets the filter should have dropped";
    ASSERT_EQ(got.size(), sent.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(got[i].data, sent[i]);
        EXPECT_EQ(got[i].record, sent[i]);
        EXPECT_EQ(got[i].origlen, sent[i].size());
        EXPECT_GE(got[i].ts_ns, before);
        EXPECT_LE(got[i].ts_ns, after);
        EXPECT_EQ(got[i].meta.ifindex, a_.ifindex);
        EXPECT_EQ(got[i].meta.protocol, ETH_P_IP);
        EXPECT_EQ(got[i].meta.pkttype, PACKET_HOST);
        EXPECT_EQ(got[i].meta.hatype, ARPHRD_ETHER);
        EXPECT_FALSE(got[i].meta.has_vlan);
    }
    const PacketStats stats = socket.stats();
    EXPECT_EQ(stats.packets, sent.size());
    EXPECT_EQ(stats.drops, 0u);
    EXPECT_EQ(socket.stats().packets, sent.size()); // accumulated across reads
}

TEST_F(PacketSocketTest, SnaplenCutsPackets) {
    PacketSocket socket = open_socket(
        {.ifindex = a_.ifindex, .filter = "udp", .snaplen = 100, .block_timeout = 10ms});
    const Bytes frame = udp_frame(a_, b_, 1000, 9);
    send(frame);
    const auto got = collect(socket, 1, 5s);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0].data, Bytes(frame.begin(), frame.begin() + 100));
    EXPECT_EQ(got[0].origlen, 1000u);
}

TEST_F(PacketSocketTest, VlanTagTakenByTheKernelIsPutBack) {
    PacketSocket socket =
        open_socket({.ifindex = a_.ifindex, .filter = "udp port 9", .block_timeout = 10ms});
    const Bytes frame = udp_frame(a_, b_, 200, 9, 42);
    send(frame);
    const auto got = collect(socket, 1, 5s);
    ASSERT_EQ(got.size(), 1u);
    // The kernel strips the tag on receive (skb_vlan_untag) before packet
    // sockets see the frame, so the filter matched the inner UDP packet.
    EXPECT_TRUE(got[0].meta.has_vlan);
    EXPECT_EQ(got[0].meta.vlan_tci, 42);
    EXPECT_EQ(got[0].meta.vlan_tpid, ETH_P_8021Q);
    EXPECT_EQ(got[0].origlen, 196u);
    EXPECT_EQ(got[0].data[12], 0x08);
    EXPECT_EQ(got[0].record, frame);
    EXPECT_EQ(got[0].record_origlen, 200u);
}

TEST_F(PacketSocketTest, AnyInterfaceIsCookedWithSll2Records) {
    PacketSocket socket =
        open_socket({.ifindex = 0, .filter = "udp port 9", .block_timeout = 10ms});
    EXPECT_TRUE(socket.cooked());
    EXPECT_EQ(socket.link_type(), kLinkTypeLinuxSll2);
    const Bytes frame = udp_frame(a_, b_, 300, 9);
    send(frame);
    send(udp_frame(a_, b_, 300, 10));
    // Seen leaving pb and arriving on pa.
    auto got = collect(socket, 2, 5s);
    EXPECT_TRUE(collect(socket, 1, 100ms).empty());
    ASSERT_EQ(got.size(), 2u);
    std::sort(got.begin(), got.end(),
              [](const Captured& x, const Captured& y) { return x.meta.pkttype < y.meta.pkttype; });
    const Bytes ip(frame.begin() + 14, frame.end());
    for (const Captured& c : got) {
        EXPECT_EQ(c.data, ip);
        EXPECT_EQ(c.origlen, ip.size());
        EXPECT_EQ(c.meta.protocol, ETH_P_IP);
        EXPECT_EQ(c.record_origlen, ip.size() + kSll2HeaderSize);
        ASSERT_EQ(c.record.size(), ip.size() + kSll2HeaderSize);
        EXPECT_TRUE(std::equal(ip.begin(), ip.end(), c.record.begin() + kSll2HeaderSize));
        EXPECT_EQ(c.meta.addr_len, 6);
        // Both directions name the sender's address.
        EXPECT_TRUE(std::equal(b_.mac.begin(), b_.mac.end(), c.meta.addr.begin()));
    }
    EXPECT_EQ(got[0].meta.pkttype, PACKET_HOST);
    EXPECT_EQ(got[0].meta.ifindex, a_.ifindex);
    EXPECT_EQ(got[1].meta.pkttype, PACKET_OUTGOING);
    EXPECT_EQ(got[1].meta.ifindex, b_.ifindex);

    // tshark reads the records as SLL2.
    Bytes file;
    pcapng::append_section_header(file);
    pcapng::append_interface_description(file, {.link_type = socket.link_type(), .name = "any"});
    for (const Captured& c : got) {
        pcapng::append_epb(file, 0, c.ts_ns, static_cast<std::uint32_t>(c.record.size()),
                           c.record_origlen, c.record.data());
    }
    char path[] = "/tmp/promiscd-any-XXXXXX";
    const int fd = mkstemp(path);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(write(fd, file.data(), file.size()), static_cast<ssize_t>(file.size()));
    close(fd);
    FILE* p = popen(("tshark -r " + std::string(path) +
                     " -T fields -E separator=, -e sll.pkttype -e sll.ifindex -e udp.dstport"
                     " -e frame.len 2>/dev/null")
                        .c_str(),
                    "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[512];
    while (std::size_t n = fread(buf, 1, sizeof buf, p)) {
        out.append(buf, n);
    }
    pclose(p);
    unlink(path);
    const std::string len = std::to_string(ip.size() + kSll2HeaderSize);
    EXPECT_EQ(out, "0," + std::to_string(a_.ifindex) + ",9," + len + "\n4," +
                       std::to_string(b_.ifindex) + ",9," + len + "\n");
}

TEST_F(PacketSocketTest, FullRingCountsDrops) {
    PacketSocket socket = open_socket({.ifindex = a_.ifindex,
                                       .filter = "udp port 9",
                                       .snaplen = 256,
                                       .buffer_size = 8192,
                                       .block_size = 4096,
                                       .block_timeout = 10ms});
    EXPECT_EQ(socket.block_count(), 2u);
    constexpr std::size_t kSent = 200;
    for (std::size_t i = 0; i < kSent; ++i) {
        send(udp_frame(a_, b_, 300, 9));
    }
    const auto got = collect(socket, kSent, 500ms);
    const PacketStats stats = socket.stats();
    EXPECT_LT(got.size(), kSent);
    EXPECT_GT(stats.drops, 0u);
    EXPECT_GE(stats.freezes, 1u);
    // The kernel counts dropped packets among tp_packets.
    EXPECT_EQ(stats.packets, kSent);
    EXPECT_EQ(got.size() + stats.drops, kSent);
}

TEST_F(PacketSocketTest, FilterCannotBeRemovedFromTheSocket) {
    PacketSocket socket = open_socket({.ifindex = a_.ifindex, .filter = "udp port 9"});
    const int unused = 0;
    EXPECT_NE(setsockopt(socket.fd(), SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused), 0);
    EXPECT_EQ(errno, EPERM);
}

TEST_F(PacketSocketTest, UnknownInterfaceIsNamed) {
    try {
        open_socket({.ifindex = 999999});
        FAIL() << "no exception";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENODEV);
        EXPECT_NE(std::string(e.what()).find("no interface with index 999999"), std::string::npos)
            << e.what();
    }
}

TEST_F(PacketSocketTest, InterfaceRemovalIsReportedOnTheSocket) {
    PacketSocket socket = open_socket({.ifindex = a_.ifindex, .filter = "udp port 9"});
    ASSERT_EQ(run("ip -n " + ns_ + " link del pb"), 0);
    pollfd pfd{socket.fd(), POLLIN, 0};
    ASSERT_EQ(poll(&pfd, 1, 5000), 1);
    EXPECT_NE(pfd.revents & POLLERR, 0);
    EXPECT_EQ(socket.take_error(), ENETDOWN);
}

TEST_F(PacketSocketTest, InvalidSizesAreNamed) {
    try {
        open_socket({.ifindex = a_.ifindex, .block_size = 1000});
        FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("block_size 1000"), std::string::npos) << e.what();
    }
    EXPECT_THROW(open_socket({.ifindex = a_.ifindex, .buffer_size = 0}), std::invalid_argument);
    EXPECT_THROW(open_socket({.ifindex = a_.ifindex, .filter = "udp port"}), FilterError);
}

} // namespace
