#include "capture/pcap_writer.hpp"

namespace promiscd::capture::pcap {

namespace {

using detail::append_raw;
using detail::store16;
using detail::store32;

constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;

void store_record_header(std::uint8_t* out, std::uint64_t ts_ns, std::uint32_t caplen,
                         std::uint32_t origlen) noexcept {
    // 32-bit seconds: the format's own limit (year 2106).
    store32(out, static_cast<std::uint32_t>(ts_ns / kNanosPerSecond));
    store32(out + 4, static_cast<std::uint32_t>(ts_ns % kNanosPerSecond));
    store32(out + 8, caplen);
    store32(out + 12, origlen);
}

} // namespace

template <ByteBuffer B>
void append_file_header(B& buffer, std::uint32_t link_type, std::uint32_t snaplen) {
    std::uint8_t header[kFileHeaderSize];
    store32(header, kMagicNanoseconds);
    store16(header + 4, 2); // version 2.4
    store16(header + 6, 4);
    store32(header + 8, 0);  // thiszone: timestamps are UTC
    store32(header + 12, 0); // sigfigs
    // pcap has no "no limit"; readers reject 0, so use libpcap's maximum.
    store32(header + 16, snaplen != 0 ? snaplen : 262144);
    store32(header + 20, link_type);
    append_raw(buffer, header, sizeof header);
}

template <ByteBuffer B>
void append_record(B& buffer, std::uint64_t ts_ns, std::uint32_t caplen, std::uint32_t origlen,
                   const std::uint8_t* data) {
    std::uint8_t header[kRecordHeaderSize];
    store_record_header(header, ts_ns, caplen, origlen);
    append_raw(buffer, header, sizeof header);
    append_raw(buffer, data, caplen);
}

template <ByteBuffer B>
void append_record(B& buffer, std::uint64_t ts_ns, std::uint32_t origlen,
                   std::span<const iovec> pieces) {
    std::size_t caplen = 0;
    for (const iovec& piece : pieces) {
        caplen += piece.iov_len;
    }
    std::uint8_t header[kRecordHeaderSize];
    store_record_header(header, ts_ns, static_cast<std::uint32_t>(caplen), origlen);
    append_raw(buffer, header, sizeof header);
    for (const iovec& piece : pieces) {
        append_raw(buffer, piece.iov_base, piece.iov_len);
    }
}

RecordHeader::RecordHeader(std::uint64_t ts_ns, std::uint32_t caplen,
                           std::uint32_t origlen) noexcept {
    store_record_header(bytes_.data(), ts_ns, caplen, origlen);
}

template void append_file_header(std::string&, std::uint32_t, std::uint32_t);
template void append_file_header(std::vector<std::uint8_t>&, std::uint32_t, std::uint32_t);
template void append_record(std::string&, std::uint64_t, std::uint32_t, std::uint32_t,
                            const std::uint8_t*);
template void append_record(std::vector<std::uint8_t>&, std::uint64_t, std::uint32_t, std::uint32_t,
                            const std::uint8_t*);
template void append_record(std::string&, std::uint64_t, std::uint32_t, std::span<const iovec>);
template void append_record(std::vector<std::uint8_t>&, std::uint64_t, std::uint32_t,
                            std::span<const iovec>);

} // namespace promiscd::capture::pcap
