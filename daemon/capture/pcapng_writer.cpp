#include "capture/pcapng_writer.hpp"

#include <limits>
#include <stdexcept>
#include <string_view>

namespace promiscd::capture::pcapng {

namespace {

using detail::append_raw;
using detail::store16;
using detail::store32;

constexpr std::uint16_t kOptEndOfOpt = 0;
constexpr std::uint16_t kShbHardware = 2;
constexpr std::uint16_t kShbOs = 3;
constexpr std::uint16_t kShbUserAppl = 4;
constexpr std::uint16_t kIfName = 2;
constexpr std::uint16_t kIfDescription = 3;
constexpr std::uint16_t kIfTsresol = 9;
constexpr std::uint16_t kIfFilter = 11;
constexpr std::uint16_t kIsbStartTime = 2;
constexpr std::uint16_t kIsbEndTime = 3;
constexpr std::uint16_t kIsbIfRecv = 4;
constexpr std::uint16_t kIsbIfDrop = 5;
constexpr std::uint16_t kIsbOsDrop = 7;

constexpr std::uint8_t kZeros[8] = {};

template <ByteBuffer B>
void append32(B& buffer, std::uint32_t value) {
    append_raw(buffer, &value, sizeof value);
}

// Timestamps are two 32-bit words, high then low, in EPBs and ISB options alike.
void store_timestamp(std::uint8_t* out, std::uint64_t ts) noexcept {
    store32(out, static_cast<std::uint32_t>(ts >> 32));
    store32(out + 4, static_cast<std::uint32_t>(ts));
}

template <ByteBuffer B>
void append_option(B& buffer, std::uint16_t code, std::string_view what, const void* value,
                   std::size_t size, const void* prefix = nullptr, std::size_t prefix_size = 0) {
    const std::size_t total = prefix_size + size;
    if (total > std::numeric_limits<std::uint16_t>::max()) {
        throw std::length_error("pcapng option '" + std::string(what) + "' is " +
                                std::to_string(total) + " bytes, more than 65535");
    }
    std::uint8_t header[4];
    store16(header, code);
    store16(header + 2, static_cast<std::uint16_t>(total));
    append_raw(buffer, header, sizeof header);
    if (prefix_size != 0) {
        append_raw(buffer, prefix, prefix_size);
    }
    append_raw(buffer, value, size);
    append_raw(buffer, kZeros, (4 - total % 4) % 4);
}

template <ByteBuffer B>
void append_string_option(B& buffer, std::uint16_t code, std::string_view what,
                          std::string_view value) {
    if (!value.empty()) {
        append_option(buffer, code, what, value.data(), value.size());
    }
}

template <ByteBuffer B>
void append_u64_option(B& buffer, std::uint16_t code, std::string_view what,
                       const std::optional<std::uint64_t>& value) {
    if (value) {
        append_option(buffer, code, what, &*value, sizeof *value);
    }
}

template <ByteBuffer B>
void append_time_option(B& buffer, std::uint16_t code, std::string_view what,
                        const std::optional<std::uint64_t>& value) {
    if (value) {
        std::uint8_t words[8];
        store_timestamp(words, *value);
        append_option(buffer, code, what, words, sizeof words);
    }
}

// A block is written as type + placeholder length, body, options, end of
// options and trailing length; then the leading length is patched.
template <ByteBuffer B>
std::size_t begin_block(B& buffer, std::uint32_t type) {
    const std::size_t start = buffer.size();
    append32(buffer, type);
    append32(buffer, 0);
    return start;
}

template <ByteBuffer B>
void end_block(B& buffer, std::size_t start) {
    append32(buffer, std::uint32_t{kOptEndOfOpt}); // code 0, length 0
    const std::size_t length = buffer.size() + 4 - start;
    if (length > std::numeric_limits<std::uint32_t>::max()) {
        throw std::length_error("pcapng block of " + std::to_string(length) + " bytes");
    }
    append32(buffer, static_cast<std::uint32_t>(length));
    store32(reinterpret_cast<std::uint8_t*>(buffer.data() + start + 4),
            static_cast<std::uint32_t>(length));
}

void store_epb_header(std::uint8_t* out, std::uint32_t total, std::uint32_t interface_id,
                      std::uint64_t ts_ns, std::uint32_t caplen, std::uint32_t origlen) noexcept {
    store32(out, kEnhancedPacketBlock);
    store32(out + 4, total);
    store32(out + 8, interface_id);
    store_timestamp(out + 12, ts_ns);
    store32(out + 20, caplen);
    store32(out + 24, origlen);
}

std::uint32_t checked_epb_size(std::size_t caplen) {
    // Keeps the block's total length, a 32-bit field, from wrapping.
    if (caplen > std::numeric_limits<std::uint32_t>::max() - 64) {
        throw std::length_error("packet of " + std::to_string(caplen) +
                                " bytes does not fit in a pcapng block");
    }
    return static_cast<std::uint32_t>(epb_size(static_cast<std::uint32_t>(caplen)));
}

} // namespace

template <ByteBuffer B>
void append_section_header(B& buffer, const SectionInfo& info) {
    const std::size_t start = begin_block(buffer, kSectionHeaderBlock);
    append32(buffer, kByteOrderMagic);
    std::uint8_t version[4];
    store16(version, 1); // major
    store16(version + 2, 0);
    append_raw(buffer, version, sizeof version);
    const std::int64_t section_length = -1; // unknown: this is a stream
    append_raw(buffer, &section_length, sizeof section_length);
    append_string_option(buffer, kShbHardware, "shb_hardware", info.hardware);
    append_string_option(buffer, kShbOs, "shb_os", info.os);
    append_string_option(buffer, kShbUserAppl, "shb_userappl", info.application);
    end_block(buffer, start);
}

template <ByteBuffer B>
void append_interface_description(B& buffer, const InterfaceDescription& idb) {
    const std::size_t start = begin_block(buffer, kInterfaceDescriptionBlock);
    std::uint8_t body[8];
    store16(body, idb.link_type);
    store16(body + 2, 0); // reserved
    store32(body + 4, idb.snaplen);
    append_raw(buffer, body, sizeof body);
    append_string_option(buffer, kIfName, "if_name", idb.name);
    append_string_option(buffer, kIfDescription, "if_description", idb.description);
    const std::uint8_t nanoseconds = 9; // 10^-9
    append_option(buffer, kIfTsresol, "if_tsresol", &nanoseconds, 1);
    if (!idb.filter.empty()) {
        const std::uint8_t libpcap_syntax = 0; // filter type 0: a pcap-filter string
        append_option(buffer, kIfFilter, "if_filter", idb.filter.data(), idb.filter.size(),
                      &libpcap_syntax, 1);
    }
    end_block(buffer, start);
}

template <ByteBuffer B>
void append_interface_statistics(B& buffer, const InterfaceStatistics& isb) {
    const std::size_t start = begin_block(buffer, kInterfaceStatisticsBlock);
    std::uint8_t body[12];
    store32(body, isb.interface_id);
    store_timestamp(body + 4, isb.timestamp_ns);
    append_raw(buffer, body, sizeof body);
    append_time_option(buffer, kIsbStartTime, "isb_starttime", isb.start_ns);
    append_time_option(buffer, kIsbEndTime, "isb_endtime", isb.end_ns);
    append_u64_option(buffer, kIsbIfRecv, "isb_ifrecv", isb.received);
    append_u64_option(buffer, kIsbIfDrop, "isb_ifdrop", isb.interface_dropped);
    append_u64_option(buffer, kIsbOsDrop, "isb_osdrop", isb.os_dropped);
    end_block(buffer, start);
}

template <ByteBuffer B>
void append_epb(B& buffer, std::uint32_t interface_id, std::uint64_t ts_ns, std::uint32_t caplen,
                std::uint32_t origlen, const std::uint8_t* data) {
    const std::uint32_t total = checked_epb_size(caplen);
    std::uint8_t header[kEpbHeaderSize];
    store_epb_header(header, total, interface_id, ts_ns, caplen, origlen);
    append_raw(buffer, header, sizeof header);
    append_raw(buffer, data, caplen);
    std::uint8_t trailer[8] = {};
    const std::size_t padding = (4 - caplen % 4) % 4;
    store32(trailer + padding, total);
    append_raw(buffer, trailer, padding + 4);
}

template <ByteBuffer B>
void append_epb(B& buffer, std::uint32_t interface_id, std::uint64_t ts_ns, std::uint32_t origlen,
                std::span<const iovec> pieces) {
    std::size_t caplen = 0;
    for (const iovec& piece : pieces) {
        caplen += piece.iov_len;
    }
    const std::uint32_t total = checked_epb_size(caplen);
    std::uint8_t header[kEpbHeaderSize];
    store_epb_header(header, total, interface_id, ts_ns, static_cast<std::uint32_t>(caplen),
                     origlen);
    append_raw(buffer, header, sizeof header);
    for (const iovec& piece : pieces) {
        append_raw(buffer, piece.iov_base, piece.iov_len);
    }
    std::uint8_t trailer[8] = {};
    const std::size_t padding = (4 - caplen % 4) % 4;
    store32(trailer + padding, total);
    append_raw(buffer, trailer, padding + 4);
}

EpbFraming::EpbFraming(std::uint32_t interface_id, std::uint64_t ts_ns, std::uint32_t caplen,
                       std::uint32_t origlen) noexcept {
    const auto total = static_cast<std::uint32_t>(epb_size(caplen));
    store_epb_header(header_.data(), total, interface_id, ts_ns, caplen, origlen);
    const std::size_t padding = (4 - caplen % 4) % 4;
    store32(trailer_.data() + padding, total);
    trailer_size_ = padding + 4;
}

template void append_section_header(std::string&, const SectionInfo&);
template void append_section_header(std::vector<std::uint8_t>&, const SectionInfo&);
template void append_interface_description(std::string&, const InterfaceDescription&);
template void append_interface_description(std::vector<std::uint8_t>&, const InterfaceDescription&);
template void append_interface_statistics(std::string&, const InterfaceStatistics&);
template void append_interface_statistics(std::vector<std::uint8_t>&, const InterfaceStatistics&);
template void append_epb(std::string&, std::uint32_t, std::uint64_t, std::uint32_t, std::uint32_t,
                         const std::uint8_t*);
template void append_epb(std::vector<std::uint8_t>&, std::uint32_t, std::uint64_t, std::uint32_t,
                         std::uint32_t, const std::uint8_t*);
template void append_epb(std::string&, std::uint32_t, std::uint64_t, std::uint32_t,
                         std::span<const iovec>);
template void append_epb(std::vector<std::uint8_t>&, std::uint32_t, std::uint64_t, std::uint32_t,
                         std::span<const iovec>);

} // namespace promiscd::capture::pcapng
