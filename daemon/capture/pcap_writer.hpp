// Classic pcap serialization with nanosecond timestamps (magic 0xa1b23c4d), for
// clients that ask for format "pcap". Host byte order, like libpcap writes.
#pragma once

#include "capture/bytes.hpp"

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <span>

namespace promiscd::capture::pcap {

inline constexpr std::uint32_t kMagicNanoseconds = 0xa1b23c4d;
inline constexpr std::size_t kFileHeaderSize = 24;
inline constexpr std::size_t kRecordHeaderSize = 16;

template <ByteBuffer B>
void append_file_header(B& buffer, std::uint32_t link_type, std::uint32_t snaplen);

// One record: header (seconds, nanoseconds, caplen, origlen), then the data.
template <ByteBuffer B>
void append_record(B& buffer, std::uint64_t ts_ns, std::uint32_t caplen, std::uint32_t origlen,
                   const std::uint8_t* data);

template <ByteBuffer B>
void append_record(B& buffer, std::uint64_t ts_ns, std::uint32_t origlen,
                   std::span<const iovec> pieces);

// A record header alone, for writev() straight from the ring.
class RecordHeader {
public:
    RecordHeader(std::uint64_t ts_ns, std::uint32_t caplen, std::uint32_t origlen) noexcept;
    iovec iov() noexcept { return {bytes_.data(), bytes_.size()}; }

private:
    std::array<std::uint8_t, kRecordHeaderSize> bytes_{};
};

extern template void append_file_header(std::string&, std::uint32_t, std::uint32_t);
extern template void append_file_header(std::vector<std::uint8_t>&, std::uint32_t, std::uint32_t);
extern template void append_record(std::string&, std::uint64_t, std::uint32_t, std::uint32_t,
                                   const std::uint8_t*);
extern template void append_record(std::vector<std::uint8_t>&, std::uint64_t, std::uint32_t,
                                   std::uint32_t, const std::uint8_t*);
extern template void append_record(std::string&, std::uint64_t, std::uint32_t,
                                   std::span<const iovec>);
extern template void append_record(std::vector<std::uint8_t>&, std::uint64_t, std::uint32_t,
                                   std::span<const iovec>);

} // namespace promiscd::capture::pcap
