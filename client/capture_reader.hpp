// Reads the pcapng stream promiscd writes into a capture pipe: frames as they
// arrive, and the capture's statistics when the stream ends. PcapngParser is
// the byte-level part (no I/O); CaptureReader feeds it from a non-blocking fd.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace promiscd::client {

// The stream is not pcapng, is corrupt, or ended inside a block.
class CaptureStreamError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct Frame {
    std::uint32_t interface_id = 0;
    std::uint16_t link_type = 0;    // LINKTYPE_* of the interface
    std::uint64_t timestamp_ns = 0; // since the epoch; 0 from a Simple Packet Block
    std::uint32_t original_length = 0;
    std::vector<std::uint8_t> data{}; // the captured bytes (may be fewer)
};

struct InterfaceInfo {
    std::uint16_t link_type = 0;
    std::uint32_t snaplen = 0; // 0: no limit
    std::string name{};        // if_name
    std::string description{}; // if_description
    std::string filter{};      // if_filter, when it is a pcap-filter string
};

// From an Interface Statistics Block; absent counters were not written.
struct CaptureStatistics {
    std::uint32_t interface_id = 0;
    std::uint64_t timestamp_ns = 0;
    std::optional<std::uint64_t> start_ns{};
    std::optional<std::uint64_t> end_ns{};
    std::optional<std::uint64_t> received{};          // isb_ifrecv
    std::optional<std::uint64_t> interface_dropped{}; // isb_ifdrop
    std::optional<std::uint64_t> filter_accepted{};   // isb_filteraccept
    std::optional<std::uint64_t> os_dropped{};        // isb_osdrop
    std::optional<std::uint64_t> delivered{};         // isb_usrdeliv
};

class PcapngParser {
public:
    // Blocks longer than this are rejected rather than buffered.
    static constexpr std::size_t kMaxBlockSize = 16 << 20;

    // Room for at least n more bytes at the end of the buffer; commit(k)
    // after writing k of them.
    std::span<std::uint8_t> prepare(std::size_t n);
    void commit(std::size_t n) noexcept;
    void feed(std::span<const std::uint8_t> bytes);

    // The next frame among the complete blocks buffered, handling the other
    // blocks on the way. Throws CaptureStreamError on a malformed block.
    std::optional<Frame> next_frame();
    std::size_t buffered() const noexcept { return end_ - begin_; }
    void discard_buffered() noexcept { begin_ = end_ = 0; }

    const std::vector<InterfaceInfo>& interfaces() const noexcept { return interfaces_; }
    const std::optional<CaptureStatistics>& statistics() const noexcept { return statistics_; }

private:
    struct Clock {
        bool binary = false; // if_tsresol: 2^-exponent, else 10^-exponent
        std::uint8_t exponent = 6;
        std::int64_t offset_s = 0; // if_tsoffset
    };

    std::optional<Frame> parse_block(const std::uint8_t* block, std::uint32_t type,
                                     std::uint32_t length);
    void parse_section_header(const std::uint8_t* block, std::uint32_t length);
    void parse_interface_description(const std::uint8_t* block, std::uint32_t length);
    void parse_interface_statistics(const std::uint8_t* block, std::uint32_t length);
    Frame packet(std::uint32_t interface_id, std::uint64_t ticks, std::uint32_t caplen,
                 std::uint32_t origlen, const std::uint8_t* data) const;
    std::uint64_t to_ns(std::uint32_t interface_id, std::uint64_t ticks) const;

    std::uint16_t get16(const std::uint8_t* p) const noexcept;
    std::uint32_t get32(const std::uint8_t* p) const noexcept;
    std::uint64_t get64(const std::uint8_t* p) const noexcept;

    std::vector<std::uint8_t> buffer_{};
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
    std::uint64_t offset_ = 0; // of begin_ in the stream, for messages
    bool in_section_ = false;
    bool swapped_ = false;
    std::vector<InterfaceInfo> interfaces_;
    std::vector<Clock> clocks_;
    std::optional<CaptureStatistics> statistics_;
};

class CaptureReader {
public:
    // Takes ownership of fd (the read end of the capture pipe) and makes it
    // non-blocking.
    explicit CaptureReader(int fd);
    CaptureReader(CaptureReader&& other) noexcept;
    CaptureReader& operator=(CaptureReader&& other) noexcept;
    CaptureReader(const CaptureReader&) = delete;
    CaptureReader& operator=(const CaptureReader&) = delete;
    ~CaptureReader();

    // Waits up to timeout (negative: for ever) for a complete frame. Nothing
    // when the time passes first or the stream has ended (then eof()).
    // Throws CaptureStreamError for a malformed or truncated stream and
    // std::system_error when reading fails.
    std::optional<Frame> next(std::chrono::milliseconds timeout);
    // The writer closed the pipe and every frame has been returned.
    bool eof() const noexcept { return closed_ && parser_.buffered() == 0; }

    const std::vector<InterfaceInfo>& interfaces() const noexcept { return parser_.interfaces(); }
    // The last Interface Statistics Block seen (the daemon writes one at the end).
    const std::optional<CaptureStatistics>& statistics() const noexcept {
        return parser_.statistics();
    }
    // For callers with their own poll loop: readable means next(0ms) may return.
    int fd() const noexcept { return fd_; }

private:
    bool fill(); // reads once; false when nothing could be read now

    int fd_ = -1;
    bool closed_ = false;
    PcapngParser parser_;
};

} // namespace promiscd::client
