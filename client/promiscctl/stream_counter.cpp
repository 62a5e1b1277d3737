#include "stream_counter.hpp"

#include <algorithm>
#include <cstring>

namespace promiscd::ctl {

namespace {

constexpr std::uint32_t kPcapMagicMicro = 0xa1b2c3d4;
constexpr std::uint32_t kPcapMagicNano = 0xa1b23c4d;
constexpr std::size_t kFileHeader = 24;
constexpr std::size_t kRecordHeader = 16;

std::uint32_t read32(const std::uint8_t* p, bool swapped) {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return swapped ? __builtin_bswap32(v) : v;
}

} // namespace

void StreamCounter::feed(const std::uint8_t* data, std::size_t n) {
    stream_bytes_ += n;
    if (!pcapng_) {
        feed_pcap(data, n);
        return;
    }
    parser_.feed({data, n});
    while (parser_.next_frame())
        ++packets_;
}

void StreamCounter::feed_pcap(const std::uint8_t* data, std::size_t n) {
    while (n > 0) {
        if (skip_) {
            auto k = static_cast<std::size_t>(std::min<std::uint64_t>(skip_, n));
            skip_ -= k;
            data += k;
            n -= k;
            continue;
        }
        std::size_t want = file_header_done_ ? kRecordHeader : kFileHeader;
        std::size_t k = std::min(want - header_have_, n);
        std::memcpy(header_ + header_have_, data, k);
        header_have_ += k;
        data += k;
        n -= k;
        if (header_have_ < want)
            return;
        header_have_ = 0;
        if (!file_header_done_) {
            std::uint32_t magic = read32(header_, false);
            if (magic == kPcapMagicMicro || magic == kPcapMagicNano)
                swapped_ = false;
            else if (magic == __builtin_bswap32(kPcapMagicMicro) ||
                     magic == __builtin_bswap32(kPcapMagicNano))
                swapped_ = true;
            else
                throw client::CaptureStreamError("not a pcap stream: bad magic number");
            file_header_done_ = true;
            continue;
        }
        // ts_sec, ts_frac, incl_len, orig_len: the captured bytes follow.
        std::uint32_t incl = read32(header_ + 8, swapped_);
        if (incl > client::PcapngParser::kMaxBlockSize)
            throw client::CaptureStreamError("pcap record of " + std::to_string(incl) +
                                             " bytes: the stream is corrupt");
        ++packets_;
        skip_ = incl;
    }
}

std::optional<std::uint64_t> StreamCounter::dropped() const {
    const auto& s = parser_.statistics();
    if (!s || (!s->os_dropped && !s->interface_dropped))
        return std::nullopt;
    return s->os_dropped.value_or(0) + s->interface_dropped.value_or(0);
}

std::optional<std::uint64_t> StreamCounter::received() const {
    const auto& s = parser_.statistics();
    if (!s)
        return std::nullopt;
    return s->received;
}

} // namespace promiscd::ctl
