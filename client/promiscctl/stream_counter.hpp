// Counts the frames of a capture stream as it passes through promiscctl on
// its way to a file: pcapng through the client library's parser, classic
// pcap by its record headers. Only for the progress line and the summary;
// the bytes themselves are written untouched.
#pragma once

#include "client/capture_reader.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace promiscd::ctl {

class StreamCounter {
public:
    // format: "pcapng" or "pcap".
    explicit StreamCounter(const std::string& format) : pcapng_(format != "pcap") {}

    // Throws client::CaptureStreamError when the stream is not what it
    // claims to be; counting stops there, the caller keeps writing.
    void feed(const std::uint8_t* data, std::size_t n);

    std::uint64_t packets() const noexcept { return packets_; }
    std::uint64_t stream_bytes() const noexcept { return stream_bytes_; }
    // From the pcapng Interface Statistics Block the daemon writes at the end.
    std::optional<std::uint64_t> dropped() const;
    std::optional<std::uint64_t> received() const;

private:
    void feed_pcap(const std::uint8_t* data, std::size_t n);

    bool pcapng_;
    client::PcapngParser parser_;
    std::uint64_t packets_ = 0;
    std::uint64_t stream_bytes_ = 0;
    // pcap: the bytes of the header being read, and the record data to skip.
    std::uint8_t header_[24]{};
    std::size_t header_have_ = 0;
    bool file_header_done_ = false;
    bool swapped_ = false;
    std::uint64_t skip_ = 0;
};

} // namespace promiscd::ctl
