// pcapng serialization (IETF opsawg pcapng draft) for the capture relay. Each
// function appends one whole block, in host byte order, to the caller's buffer;
// the relay fills one buffer with a batch of packets and writes it at once.
// Appending never allocates when the buffer's capacity suffices.
#pragma once

#include "capture/bytes.hpp"

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace promiscd::capture::pcapng {

inline constexpr std::uint32_t kSectionHeaderBlock = 0x0A0D0D0A;
inline constexpr std::uint32_t kInterfaceDescriptionBlock = 1;
inline constexpr std::uint32_t kSimplePacketBlock = 3;
inline constexpr std::uint32_t kInterfaceStatisticsBlock = 5;
inline constexpr std::uint32_t kEnhancedPacketBlock = 6;
inline constexpr std::uint32_t kByteOrderMagic = 0x1A2B3C4D;

// Block type, total length, interface id, timestamp (high, low), captured and
// original length.
inline constexpr std::size_t kEpbHeaderSize = 28;

struct SectionInfo {
    std::string hardware{};    // shb_hardware, omitted when empty
    std::string os{};          // shb_os
    std::string application{}; // shb_userappl
};

struct InterfaceDescription {
    std::uint16_t link_type = kLinkTypeEthernet; // LINKTYPE_*
    std::uint32_t snaplen = 0;                   // 0: no limit
    std::string name{};                          // if_name, omitted when empty
    std::string description{};                   // if_description
    std::string filter{};                        // if_filter (libpcap syntax)
    // if_tsresol is always 9: every timestamp written is in nanoseconds.
};

// Interface Statistics Block; absent counters are not written.
struct InterfaceStatistics {
    std::uint32_t interface_id = 0;
    std::uint64_t timestamp_ns = 0;                   // when the counters were read
    std::optional<std::uint64_t> start_ns{};          // isb_starttime
    std::optional<std::uint64_t> end_ns{};            // isb_endtime
    std::optional<std::uint64_t> received{};          // isb_ifrecv
    std::optional<std::uint64_t> interface_dropped{}; // isb_ifdrop
    std::optional<std::uint64_t> os_dropped{};        // isb_osdrop (full ring)
};

// Total length of an EPB carrying caplen bytes of packet data (no options).
constexpr std::size_t epb_size(std::uint32_t caplen) noexcept {
    return kEpbHeaderSize + ((std::size_t{caplen} + 3) & ~std::size_t{3}) + 4;
}

template <ByteBuffer B>
void append_section_header(B& buffer, const SectionInfo& info = {});

template <ByteBuffer B>
void append_interface_description(B& buffer, const InterfaceDescription& idb);

template <ByteBuffer B>
void append_interface_statistics(B& buffer, const InterfaceStatistics& isb);

// One Enhanced Packet Block: caplen bytes from data, zero-padded to 32 bits.
template <ByteBuffer B>
void append_epb(B& buffer, std::uint32_t interface_id, std::uint64_t ts_ns, std::uint32_t caplen,
                std::uint32_t origlen, const std::uint8_t* data);

// The same, with the packet data gathered from pieces (e.g. an SLL2 header,
// then the packet as the ring holds it); the captured length is their sum.
template <ByteBuffer B>
void append_epb(B& buffer, std::uint32_t interface_id, std::uint64_t ts_ns, std::uint32_t origlen,
                std::span<const iovec> pieces);

// The bytes around an EPB's packet data, for writev() straight from the ring
// without copying the packet: iovecs {header(), data..., trailer()}.
class EpbFraming {
public:
    EpbFraming() = default;
    EpbFraming(std::uint32_t interface_id, std::uint64_t ts_ns, std::uint32_t caplen,
               std::uint32_t origlen) noexcept;

    iovec header() noexcept { return {header_.data(), header_.size()}; }
    // Padding to 32 bits and the trailing block length: 4 to 7 bytes.
    iovec trailer() noexcept { return {trailer_.data(), trailer_size_}; }

private:
    std::array<std::uint8_t, kEpbHeaderSize> header_{};
    std::array<std::uint8_t, 8> trailer_{};
    std::size_t trailer_size_ = 4;
};

extern template void append_section_header(std::string&, const SectionInfo&);
extern template void append_section_header(std::vector<std::uint8_t>&, const SectionInfo&);
extern template void append_interface_description(std::string&, const InterfaceDescription&);
extern template void append_interface_description(std::vector<std::uint8_t>&,
                                                  const InterfaceDescription&);
extern template void append_interface_statistics(std::string&, const InterfaceStatistics&);
extern template void append_interface_statistics(std::vector<std::uint8_t>&,
                                                 const InterfaceStatistics&);
extern template void append_epb(std::string&, std::uint32_t, std::uint64_t, std::uint32_t,
                                std::uint32_t, const std::uint8_t*);
extern template void append_epb(std::vector<std::uint8_t>&, std::uint32_t, std::uint64_t,
                                std::uint32_t, std::uint32_t, const std::uint8_t*);
extern template void append_epb(std::string&, std::uint32_t, std::uint64_t, std::uint32_t,
                                std::span<const iovec>);
extern template void append_epb(std::vector<std::uint8_t>&, std::uint32_t, std::uint64_t,
                                std::uint32_t, std::span<const iovec>);

} // namespace promiscd::capture::pcapng
