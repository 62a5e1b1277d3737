#include "capture/record_layout.hpp"

#include <arpa/inet.h>
#include <net/if_arp.h>

#include <algorithm>
#include <cstring>

namespace promiscd::capture {

namespace {

constexpr std::size_t kMacAddressesSize = 12; // destination, source

void store_be16(std::uint8_t* out, std::uint16_t value) noexcept {
    const std::uint16_t be = htons(value);
    std::memcpy(out, &be, sizeof be);
}

void store_be32(std::uint8_t* out, std::uint32_t value) noexcept {
    const std::uint32_t be = htonl(value);
    std::memcpy(out, &be, sizeof be);
}

} // namespace

void store_sll2_header(std::uint8_t* out, const Packet& packet, std::uint16_t protocol) noexcept {
    store_be16(out, protocol);
    store_be16(out + 2, 0); // reserved
    store_be32(out + 4, static_cast<std::uint32_t>(packet.ifindex));
    store_be16(out + 8, packet.hatype);
    out[10] = packet.pkttype;
    out[11] = packet.addr_len;
    std::memset(out + 12, 0, 8);
    std::memcpy(out + 12, packet.addr.data(), std::min<std::size_t>(packet.addr_len, 8));
}

RecordLayout::RecordLayout(const Packet& packet, bool cooked, std::uint32_t snaplen) noexcept
    : room_(snaplen != 0 ? snaplen : UINT32_MAX) {
    const std::uint32_t tag = packet.has_vlan ? 4 : 0;
    if (cooked) {
        // A VLAN frame reads as SLL2 protocol = TPID followed by TCI and the
        // inner ethertype, as the tag would appear on the wire.
        store_sll2_header(prefix_.data(), packet,
                          packet.has_vlan ? packet.vlan_tpid : packet.protocol);
        if (packet.has_vlan) {
            store_be16(prefix_.data() + kSll2HeaderSize, packet.vlan_tci);
            store_be16(prefix_.data() + kSll2HeaderSize + 2, packet.protocol);
        }
        add(prefix_.data(), kSll2HeaderSize + tag);
        add(packet.data, packet.caplen);
        origlen_ = packet.origlen + kSll2HeaderSize + tag;
    } else if (packet.has_vlan && packet.hatype == ARPHRD_ETHER &&
               packet.caplen >= kMacAddressesSize) {
        store_be16(prefix_.data(), packet.vlan_tpid);
        store_be16(prefix_.data() + 2, packet.vlan_tci);
        add(packet.data, kMacAddressesSize);
        add(prefix_.data(), 4);
        add(packet.data + kMacAddressesSize, packet.caplen - kMacAddressesSize);
        origlen_ = packet.origlen + 4;
    } else {
        add(packet.data, packet.caplen);
        origlen_ = packet.origlen;
    }
}

void RecordLayout::add(const void* bytes, std::size_t size) noexcept {
    const auto take = static_cast<std::uint32_t>(std::min<std::size_t>(size, room_));
    if (take == 0) {
        return;
    }
    // iovec is not const-correct; the writers only read through it.
    pieces_[count_++] = {const_cast<void*>(bytes), take};
    caplen_ += take;
    room_ -= take;
}

} // namespace promiscd::capture
