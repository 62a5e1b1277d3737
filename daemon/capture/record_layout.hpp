// The bytes of one capture record for a packet from the ring: what the kernel
// separated from the frame put back (a VLAN tag moved to metadata; on cooked
// sockets the LINKTYPE_LINUX_SLL2 header), cut to snaplen. The pieces point
// into the ring and into this object, ready for the writers' gather functions
// or for writev() between an EpbFraming's header and trailer.
#pragma once

#include "capture/packet_socket.hpp"

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <span>

namespace promiscd::capture {

inline constexpr std::size_t kSll2HeaderSize = 20;

// LINKTYPE_LINUX_SLL2 header: protocol, reserved, ifindex, hatype, pkttype,
// address length, address (8 bytes); numbers big-endian.
void store_sll2_header(std::uint8_t* out, const Packet& packet, std::uint16_t protocol) noexcept;

class RecordLayout {
public:
    RecordLayout(const Packet& packet, bool cooked, std::uint32_t snaplen) noexcept;
    // Pieces point into this object: it cannot be copied or moved.
    RecordLayout(const RecordLayout&) = delete;
    RecordLayout& operator=(const RecordLayout&) = delete;
    RecordLayout(RecordLayout&&) = delete;
    RecordLayout& operator=(RecordLayout&&) = delete;
    ~RecordLayout() = default;

    std::span<const iovec> pieces() const noexcept { return {pieces_.data(), count_}; }
    std::uint32_t caplen() const noexcept { return caplen_; }
    std::uint32_t origlen() const noexcept { return origlen_; }

private:
    void add(const void* bytes, std::size_t size) noexcept;

    // SLL2 header, then for VLAN frames TCI and the inner ethertype; or, on
    // raw Ethernet, the 802.1Q tag (TPID, TCI).
    std::array<std::uint8_t, kSll2HeaderSize + 4> prefix_{};
    std::array<iovec, 3> pieces_{};
    std::size_t count_ = 0;
    std::uint32_t caplen_ = 0;
    std::uint32_t origlen_ = 0;
    std::uint32_t room_ = 0;
};

} // namespace promiscd::capture
