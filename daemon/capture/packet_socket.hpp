// A capture socket: AF_PACKET with a locked BPF filter and a TPACKET_V3 receive
// ring. The kernel fills blocks of packets and hands them to user space in ring
// order; the reader walks a block's packets and gives the block back.
#pragma once

#include "capture/filter.hpp"
#include "capture/unique_fd.hpp"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace promiscd::capture {

struct PacketSocketOptions {
    // 0: every interface ("any"), always cooked. Interfaces whose frames do
    // not start with an Ethernet header are captured cooked too.
    int ifindex = 0;
    std::string filter{};                        // pcap-filter expression; empty: everything
    std::uint32_t snaplen = 262144;              // 0 or more than 262144: 262144
    std::size_t buffer_size = 4 << 20;           // ring memory; at least two blocks
    std::size_t block_size = 0;                  // 0: chosen from snaplen and buffer_size
    std::chrono::milliseconds block_timeout{50}; // a partly filled block is handed over after this
    bool cooked = false; // SOCK_DGRAM + LINKTYPE_LINUX_SLL2 on one interface
    // The filter compiled beforehand (FilterCompiler), for a cooked socket or
    // not; `filter` then only names it in messages.
    std::optional<BpfProgram> program{};
    bool program_cooked = false;
};

// One packet as the ring holds it. Valid until its block is released.
struct Packet {
    std::uint64_t timestamp_ns = 0;     // since the epoch
    const std::uint8_t* data = nullptr; // link-layer header (raw) or network header (cooked)
    std::uint32_t caplen = 0;           // bytes at data: min(tp_snaplen, snaplen)
    std::uint32_t origlen = 0;          // tp_len: the packet's length from data on
    // The sockaddr_ll the kernel stores with each packet: the SLL2 header fields.
    int ifindex = 0;
    std::uint16_t protocol = 0; // ethertype, host order
    std::uint16_t hatype = 0;   // ARPHRD_*
    std::uint8_t pkttype = 0;   // PACKET_HOST, PACKET_OUTGOING, ...
    std::uint8_t addr_len = 0;
    std::array<std::uint8_t, 8> addr{};
    // The kernel moves a received VLAN tag out of the frame into metadata; it
    // is not in data. RecordLayout puts it back.
    bool has_vlan = false;
    std::uint16_t vlan_tci = 0;
    std::uint16_t vlan_tpid = 0; // 0x8100 when the kernel did not say
};

// A block the kernel has handed to user space (TP_STATUS_USER).
class PacketBlock {
public:
    class iterator {
    public:
        iterator() = default;
        Packet operator*() const noexcept;
        iterator& operator++() noexcept;
        bool operator==(const iterator& other) const noexcept { return left_ == other.left_; }

    private:
        friend class PacketBlock;
        iterator(const std::uint8_t* at, std::uint32_t left, std::uint32_t snaplen) noexcept
            : at_(at), left_(left), snaplen_(snaplen) {}
        const std::uint8_t* at_ = nullptr;
        std::uint32_t left_ = 0;
        std::uint32_t snaplen_ = 0;
    };

    std::uint32_t size() const noexcept { return count_; }
    std::uint64_t sequence() const noexcept { return sequence_; }
    // Handed over by the retire timeout rather than because it was full.
    bool timed_out() const noexcept { return timed_out_; }
    iterator begin() const noexcept { return {first_, count_, snaplen_}; }
    iterator end() const noexcept { return {}; }

private:
    friend class PacketSocket;
    PacketBlock(const std::uint8_t* block, std::uint32_t snaplen) noexcept;
    const std::uint8_t* first_ = nullptr;
    std::uint32_t count_ = 0;
    std::uint32_t snaplen_ = 0;
    std::uint64_t sequence_ = 0;
    bool timed_out_ = false;
};

// PACKET_STATISTICS, summed over the socket's life (each read resets the
// kernel's counters). The kernel counts dropped packets in packets too.
struct PacketStats {
    std::uint64_t packets = 0; // accepted by the filter (tp_packets)
    std::uint64_t drops = 0;   // lost because the ring was full (tp_drops)
    std::uint64_t freezes = 0; // times the ring filled up (tp_freeze_q_cnt)
};

class PacketSocket {
public:
    // Opens with protocol 0 so that nothing is queued before the filter is
    // attached and locked and the ring is mapped; only then binds to ifindex
    // with ETH_P_ALL. Throws FilterError, std::invalid_argument for bad sizes
    // and std::system_error naming the step that failed.
    explicit PacketSocket(const PacketSocketOptions& options);
    PacketSocket(PacketSocket&& other) noexcept;
    PacketSocket& operator=(PacketSocket&& other) noexcept;
    PacketSocket(const PacketSocket&) = delete;
    PacketSocket& operator=(const PacketSocket&) = delete;
    ~PacketSocket();

    int fd() const noexcept { return fd_.get(); }
    bool cooked() const noexcept { return cooked_; }
    std::uint16_t link_type() const noexcept { return link_type_; } // LINKTYPE_* for the records
    std::uint32_t snaplen() const noexcept { return snaplen_; }
    std::size_t block_size() const noexcept { return block_size_; }
    std::size_t block_count() const noexcept { return block_count_; }

    // The next block in ring order if the kernel has handed it over; it stays
    // the reader's until release_block().
    std::optional<PacketBlock> current_block() const noexcept;
    // Gives the current block back to the kernel and moves to the next one.
    void release_block() noexcept;
    // poll()s for a block; a negative timeout waits for ever. False on timeout.
    bool wait_for_block(std::chrono::milliseconds timeout) const;

    PacketStats stats();
    // SO_ERROR, which it clears: ENETDOWN when the interface went down or away.
    int take_error() const noexcept;

private:
    void unmap() noexcept;

    UniqueFd fd_;
    std::uint8_t* ring_ = nullptr;
    std::size_t block_size_ = 0;
    std::size_t block_count_ = 0;
    std::size_t current_ = 0;
    std::uint32_t snaplen_ = 0;
    std::uint16_t link_type_ = 0;
    bool cooked_ = false;
    PacketStats totals_;
};

} // namespace promiscd::capture
