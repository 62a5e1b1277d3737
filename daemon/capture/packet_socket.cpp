#include "capture/packet_socket.hpp"

#include "capture/bytes.hpp"
#include "capture/filter.hpp"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <pcap/dlt.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace promiscd::capture {

namespace {

constexpr std::uint32_t kMaxSnaplen = 262144;
constexpr std::size_t kMaxBlockSize = std::size_t{1} << 30;
constexpr std::size_t kMaxDefaultBlockSize = std::size_t{1} << 20;
// Where the kernel stores the sockaddr_ll in each frame (packet_mmap.rst).
constexpr std::size_t kSllOffset = TPACKET_ALIGN(sizeof(tpacket3_hdr));

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::system_category(), what);
}

std::size_t page_size() {
    static const auto size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    return size;
}

std::size_t round_up_pow2(std::size_t n) {
    std::size_t p = 1;
    while (p < n) {
        p <<= 1;
    }
    return p;
}

std::uint32_t block_status(const std::uint8_t* block) noexcept {
    // The kernel hands a block over by storing TP_STATUS_USER last; acquire
    // makes everything it wrote before visible.
    auto& status =
        const_cast<tpacket_block_desc*>(reinterpret_cast<const tpacket_block_desc*>(block))
            ->hdr.bh1.block_status;
    return std::atomic_ref<std::uint32_t>(status).load(std::memory_order_acquire);
}

// ARPHRD_* of an interface, or throws when there is none with that index.
std::uint16_t hardware_type(int fd, int ifindex) {
    ifreq ifr{};
    ifr.ifr_ifindex = ifindex;
    if (ioctl(fd, SIOCGIFNAME, &ifr) != 0) {
        if (errno == ENODEV) {
            throw std::system_error(errno, std::system_category(),
                                    "no interface with index " + std::to_string(ifindex));
        }
        throw_errno("SIOCGIFNAME for interface index " + std::to_string(ifindex));
    }
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) != 0) {
        throw_errno(std::string("SIOCGIFHWADDR for interface '") + ifr.ifr_name + "'");
    }
    return ifr.ifr_hwaddr.sa_family;
}

} // namespace

PacketBlock::PacketBlock(const std::uint8_t* block, std::uint32_t snaplen) noexcept
    : snaplen_(snaplen) {
    const auto* desc = reinterpret_cast<const tpacket_block_desc*>(block);
    first_ = block + desc->hdr.bh1.offset_to_first_pkt;
    count_ = desc->hdr.bh1.num_pkts;
    sequence_ = desc->hdr.bh1.seq_num;
    timed_out_ = (desc->hdr.bh1.block_status & TP_STATUS_BLK_TMO) != 0;
}

Packet PacketBlock::iterator::operator*() const noexcept {
    const auto* hdr = reinterpret_cast<const tpacket3_hdr*>(at_);
    const auto* sll = reinterpret_cast<const sockaddr_ll*>(at_ + kSllOffset);
    Packet p;
    p.timestamp_ns = std::uint64_t{hdr->tp_sec} * 1'000'000'000 + hdr->tp_nsec;
    p.data = at_ + hdr->tp_mac;
    p.caplen = std::min(hdr->tp_snaplen, snaplen_);
    p.origlen = hdr->tp_len;
    p.ifindex = sll->sll_ifindex;
    p.protocol = ntohs(sll->sll_protocol);
    p.hatype = sll->sll_hatype;
    p.pkttype = sll->sll_pkttype;
    p.addr_len = std::min<std::uint8_t>(sll->sll_halen, sizeof p.addr);
    std::memcpy(p.addr.data(), sll->sll_addr, p.addr_len);
    if ((hdr->tp_status & TP_STATUS_VLAN_VALID) != 0) {
        p.has_vlan = true;
        p.vlan_tci = static_cast<std::uint16_t>(hdr->hv1.tp_vlan_tci);
        p.vlan_tpid = (hdr->tp_status & TP_STATUS_VLAN_TPID_VALID) != 0
                          ? static_cast<std::uint16_t>(hdr->hv1.tp_vlan_tpid)
                          : ETH_P_8021Q;
    }
    return p;
}

PacketBlock::iterator& PacketBlock::iterator::operator++() noexcept {
    const auto* hdr = reinterpret_cast<const tpacket3_hdr*>(at_);
    at_ += hdr->tp_next_offset;
    --left_;
    return *this;
}

PacketSocket::PacketSocket(const PacketSocketOptions& options) {
    if (options.ifindex < 0) {
        throw std::invalid_argument("interface index " + std::to_string(options.ifindex) +
                                    " is negative");
    }
    if (options.buffer_size == 0) {
        throw std::invalid_argument("buffer_size is 0");
    }
    if (options.block_timeout.count() < 0 || options.block_timeout.count() > 60'000) {
        throw std::invalid_argument("block_timeout " +
                                    std::to_string(options.block_timeout.count()) +
                                    " ms is outside 0..60000");
    }
    snaplen_ =
        (options.snaplen == 0 || options.snaplen > kMaxSnaplen) ? kMaxSnaplen : options.snaplen;

    // Protocol 0: the socket is on no receive list until bind() names one.
    fd_.reset(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd_) {
        throw_errno("socket(AF_PACKET)");
    }
    cooked_ = options.cooked || options.ifindex == 0;
    if (!cooked_) {
        const std::uint16_t hatype = hardware_type(fd_.get(), options.ifindex);
        // Loopback frames carry a (zeroed) Ethernet header on Linux.
        cooked_ = hatype != ARPHRD_ETHER && hatype != ARPHRD_LOOPBACK;
    }
    if (cooked_) {
        // The header is rebuilt from sockaddr_ll, whatever the link layer.
        fd_.reset(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!fd_) {
            throw_errno("socket(AF_PACKET, SOCK_DGRAM)");
        }
        link_type_ = kLinkTypeLinuxSll2;
    } else {
        link_type_ = kLinkTypeEthernet;
    }

    if (options.program) {
        // Compiled beforehand (off the loop) for the link type the caller saw.
        if (options.program_cooked != cooked_) {
            throw FilterError(options.filter, "the link's type changed while the filter was "
                                              "compiled; try again");
        }
        attach_filter(fd_.get(), *options.program);
    } else {
        attach_filter(fd_.get(), cooked_ ? compile_cooked_filter(options.filter, snaplen_)
                                         : compile_filter(options.filter, DLT_EN10MB, snaplen_));
    }

    const int version = TPACKET_V3;
    if (setsockopt(fd_.get(), SOL_PACKET, PACKET_VERSION, &version, sizeof version) != 0) {
        throw_errno("PACKET_VERSION");
    }

    // V3 packs packets of any size into a block; a block must hold the largest.
    const std::size_t frame_size = TPACKET_ALIGN(TPACKET3_HDRLEN + 64 + snaplen_);
    if (options.block_size != 0) {
        block_size_ = options.block_size;
        if (block_size_ % page_size() != 0 || block_size_ < frame_size ||
            block_size_ > kMaxBlockSize) {
            throw std::invalid_argument("block_size " + std::to_string(block_size_) +
                                        " must be a multiple of " + std::to_string(page_size()) +
                                        " between " + std::to_string(frame_size) +
                                        " (one packet of snaplen " + std::to_string(snaplen_) +
                                        ") and " + std::to_string(kMaxBlockSize));
        }
    } else {
        const std::size_t eighth =
            std::clamp(options.buffer_size / 8, page_size(), kMaxDefaultBlockSize);
        block_size_ = std::max(round_up_pow2(frame_size), round_up_pow2(eighth));
    }
    block_count_ = std::max<std::size_t>(2, options.buffer_size / block_size_);
    if (block_count_ * block_size_ > (std::size_t{4} << 30)) {
        throw std::invalid_argument("buffer_size " + std::to_string(options.buffer_size) +
                                    " is more than 4 GiB");
    }

    tpacket_req3 req{};
    req.tp_block_size = static_cast<unsigned>(block_size_);
    req.tp_block_nr = static_cast<unsigned>(block_count_);
    req.tp_frame_size = static_cast<unsigned>(frame_size);
    req.tp_frame_nr = static_cast<unsigned>((block_size_ / frame_size) * block_count_);
    req.tp_retire_blk_tov = static_cast<unsigned>(options.block_timeout.count());
    if (setsockopt(fd_.get(), SOL_PACKET, PACKET_RX_RING, &req, sizeof req) != 0) {
        throw_errno("PACKET_RX_RING (" + std::to_string(block_count_) + " blocks of " +
                    std::to_string(block_size_) + " bytes)");
    }
    void* ring =
        mmap(nullptr, block_size_ * block_count_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (ring == MAP_FAILED) {
        throw_errno("mmap of the packet ring");
    }
    ring_ = static_cast<std::uint8_t*>(ring);
    // Children (the filter compiler) neither need the captured frames nor
    // should pay for copying the ring's page tables.
    (void)madvise(ring_, block_size_ * block_count_, MADV_DONTFORK);

    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = options.ifindex;
    if (bind(fd_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        const int error = errno;
        unmap();
        throw std::system_error(error, std::system_category(),
                                "bind to interface index " + std::to_string(options.ifindex));
    }
    // A link that is down reports ENETDOWN here; the socket still receives
    // once it comes up, so that is not an error.
    const int error = take_error();
    if (error != 0 && error != ENETDOWN) {
        unmap();
        throw std::system_error(error, std::system_category(),
                                "bind to interface index " + std::to_string(options.ifindex));
    }
}

PacketSocket::PacketSocket(PacketSocket&& other) noexcept
    : fd_(std::move(other.fd_)), ring_(std::exchange(other.ring_, nullptr)),
      block_size_(other.block_size_), block_count_(other.block_count_), current_(other.current_),
      snaplen_(other.snaplen_), link_type_(other.link_type_), cooked_(other.cooked_),
      totals_(other.totals_) {}

PacketSocket& PacketSocket::operator=(PacketSocket&& other) noexcept {
    if (this != &other) {
        unmap();
        fd_ = std::move(other.fd_);
        ring_ = std::exchange(other.ring_, nullptr);
        block_size_ = other.block_size_;
        block_count_ = other.block_count_;
        current_ = other.current_;
        snaplen_ = other.snaplen_;
        link_type_ = other.link_type_;
        cooked_ = other.cooked_;
        totals_ = other.totals_;
    }
    return *this;
}

PacketSocket::~PacketSocket() {
    unmap();
}

void PacketSocket::unmap() noexcept {
    if (ring_ != nullptr) {
        munmap(ring_, block_size_ * block_count_);
        ring_ = nullptr;
    }
}

std::optional<PacketBlock> PacketSocket::current_block() const noexcept {
    if (ring_ == nullptr) {
        return std::nullopt;
    }
    const std::uint8_t* block = ring_ + current_ * block_size_;
    if ((block_status(block) & TP_STATUS_USER) == 0) {
        return std::nullopt;
    }
    return PacketBlock(block, snaplen_);
}

void PacketSocket::release_block() noexcept {
    if (ring_ == nullptr) {
        return;
    }
    std::uint8_t* block = ring_ + current_ * block_size_;
    if ((block_status(block) & TP_STATUS_USER) == 0) {
        return;
    }
    auto& status = reinterpret_cast<tpacket_block_desc*>(block)->hdr.bh1.block_status;
    // Release: our reads of the block happen before the kernel may reuse it.
    std::atomic_ref<std::uint32_t>(status).store(TP_STATUS_KERNEL, std::memory_order_release);
    current_ = (current_ + 1) % block_count_;
}

bool PacketSocket::wait_for_block(std::chrono::milliseconds timeout) const {
    if (current_block()) {
        return true;
    }
    pollfd pfd{fd_.get(), POLLIN, 0};
    const int ms =
        timeout.count() < 0 ? -1 : static_cast<int>(std::min<long long>(timeout.count(), 1 << 30));
    int n = 0;
    do {
        n = poll(&pfd, 1, ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        throw_errno("poll on the packet socket");
    }
    return current_block().has_value();
}

PacketStats PacketSocket::stats() {
    tpacket_stats_v3 st{};
    socklen_t len = sizeof st;
    if (getsockopt(fd_.get(), SOL_PACKET, PACKET_STATISTICS, &st, &len) != 0) {
        throw_errno("PACKET_STATISTICS");
    }
    totals_.packets += st.tp_packets;
    totals_.drops += st.tp_drops;
    totals_.freezes += st.tp_freeze_q_cnt;
    return totals_;
}

int PacketSocket::take_error() const noexcept {
    int error = 0;
    socklen_t len = sizeof error;
    if (getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &error, &len) != 0) {
        return errno;
    }
    return error;
}

} // namespace promiscd::capture
