// Byte buffers the capture writers append to, and the link types they label
// records with. Writers append in host byte order: pcap and pcapng readers
// detect the order from the magic numbers.
#pragma once

#include <concepts>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace promiscd::capture {

template <class B>
concept ByteBuffer = std::same_as<B, std::string> || std::same_as<B, std::vector<std::uint8_t>>;

// LINKTYPE_* values (tcpdump.org link-layer header types), as written in files.
// They differ from libpcap's DLT_* only where DLT_* is platform-dependent
// (DLT_RAW is 12 on Linux, LINKTYPE_RAW is 101).
inline constexpr std::uint16_t kLinkTypeEthernet = 1;
inline constexpr std::uint16_t kLinkTypeRaw = 101;
inline constexpr std::uint16_t kLinkTypeLinuxSll2 = 276;

namespace detail {

// Appends n bytes without a temporary: inserting a range of the buffer's own
// value type never allocates when the capacity suffices.
template <ByteBuffer B>
inline void append_raw(B& buffer, const void* bytes, std::size_t n) {
    const auto* first = static_cast<const typename B::value_type*>(bytes);
    buffer.insert(buffer.end(), first, first + n);
}

inline void store32(std::uint8_t* out, std::uint32_t value) noexcept {
    std::memcpy(out, &value, sizeof value);
}

inline void store16(std::uint8_t* out, std::uint16_t value) noexcept {
    std::memcpy(out, &value, sizeof value);
}

} // namespace detail

} // namespace promiscd::capture
