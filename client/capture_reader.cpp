#include "client/capture_reader.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <system_error>
#include <utility>

namespace promiscd::client {

namespace {

constexpr std::uint32_t kSectionHeaderBlock = 0x0A0D0D0A;
constexpr std::uint32_t kInterfaceDescriptionBlock = 1;
constexpr std::uint32_t kObsoletePacketBlock = 2;
constexpr std::uint32_t kSimplePacketBlock = 3;
constexpr std::uint32_t kInterfaceStatisticsBlock = 5;
constexpr std::uint32_t kEnhancedPacketBlock = 6;
constexpr std::uint32_t kByteOrderMagic = 0x1A2B3C4D;
constexpr std::uint32_t kMinBlockSize = 12; // type, length, trailing length
constexpr std::size_t kReadChunk = std::size_t{64} << 10;
constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;

std::string hex32(std::uint32_t value) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08x", value);
    return text;
}

std::uint32_t padded(std::uint32_t n) {
    return (n + 3) & ~std::uint32_t{3};
}

// Walks a block's options (from `at` to the trailing length), calling
// f(code, value, length) for each until opt_endofopt.
template <class Parser, class F>
void for_each_option(const Parser& parser, const std::uint8_t* at, const std::uint8_t* end,
                     std::uint64_t block_offset, F&& f) {
    while (end - at >= 4) {
        const std::uint16_t code = parser(at);
        const std::uint16_t length = parser(at + 2);
        if (code == 0) {
            return;
        }
        if (static_cast<std::size_t>(end - at - 4) < padded(length)) {
            throw CaptureStreamError(
                "pcapng option " + std::to_string(code) + " of " + std::to_string(length) +
                " bytes overruns the block at offset " + std::to_string(block_offset));
        }
        f(code, at + 4, length);
        at += 4 + padded(length);
    }
}

} // namespace

std::span<std::uint8_t> PcapngParser::prepare(std::size_t n) {
    if (begin_ == end_) {
        begin_ = end_ = 0;
    } else if (begin_ > 0 && buffer_.size() - end_ < n) {
        // Move the partial block to the front rather than grow.
        std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
    }
    if (buffer_.size() - end_ < n) {
        buffer_.resize(end_ + n);
    }
    return {buffer_.data() + end_, n};
}

void PcapngParser::commit(std::size_t n) noexcept {
    end_ += n;
}

void PcapngParser::feed(std::span<const std::uint8_t> bytes) {
    auto room = prepare(bytes.size());
    std::copy(bytes.begin(), bytes.end(), room.begin());
    commit(bytes.size());
}

std::uint16_t PcapngParser::get16(const std::uint8_t* p) const noexcept {
    std::uint16_t v;
    std::memcpy(&v, p, sizeof v);
    return swapped_ ? __builtin_bswap16(v) : v;
}

std::uint32_t PcapngParser::get32(const std::uint8_t* p) const noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return swapped_ ? __builtin_bswap32(v) : v;
}

std::uint64_t PcapngParser::get64(const std::uint8_t* p) const noexcept {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return swapped_ ? __builtin_bswap64(v) : v;
}

std::optional<Frame> PcapngParser::next_frame() {
    while (buffered() >= 8) {
        const std::uint8_t* block = buffer_.data() + begin_;
        std::uint32_t type = 0;
        std::memcpy(&type, block, sizeof type); // the SHB type reads the same both ways
        if (type == kSectionHeaderBlock) {
            if (buffered() < 12) {
                return std::nullopt;
            }
            std::uint32_t magic = 0;
            std::memcpy(&magic, block + 8, sizeof magic);
            if (magic == kByteOrderMagic) {
                swapped_ = false;
            } else if (magic == __builtin_bswap32(kByteOrderMagic)) {
                swapped_ = true;
            } else {
                throw CaptureStreamError("pcapng section header at offset " +
                                         std::to_string(offset_) + " has byte-order magic " +
                                         hex32(magic) + ", not 0x1a2b3c4d");
            }
        } else if (!in_section_) {
            throw CaptureStreamError("not a pcapng stream: the first block has type " +
                                     hex32(type) + ", not a section header (0x0a0d0d0a)");
        } else {
            type = get32(block);
        }
        const std::uint32_t length = get32(block + 4);
        const std::uint32_t minimum = type == kSectionHeaderBlock ? 28 : kMinBlockSize;
        if (length < minimum || length % 4 != 0 || length > kMaxBlockSize) {
            throw CaptureStreamError(
                "pcapng block of type " + hex32(type) + " at offset " + std::to_string(offset_) +
                " has invalid length " + std::to_string(length) +
                (length % 4 != 0    ? " (not a multiple of 4)"
                 : length < minimum ? " (less than " + std::to_string(minimum) + ")"
                                    : " (more than " + std::to_string(kMaxBlockSize) + ")"));
        }
        if (buffered() < length) {
            return std::nullopt;
        }
        if (get32(block + length - 4) != length) {
            throw CaptureStreamError("pcapng block of type " + hex32(type) + " at offset " +
                                     std::to_string(offset_) + " has length " +
                                     std::to_string(length) + " but trailing length " +
                                     std::to_string(get32(block + length - 4)));
        }
        std::optional<Frame> frame = parse_block(block, type, length);
        begin_ += length;
        offset_ += length;
        if (frame) {
            return frame;
        }
    }
    return std::nullopt;
}

std::optional<Frame> PcapngParser::parse_block(const std::uint8_t* block, std::uint32_t type,
                                               std::uint32_t length) {
    const std::uint32_t body = length - kMinBlockSize;
    const auto too_short = [&](const char* what) {
        return CaptureStreamError(std::string("pcapng ") + what + " at offset " +
                                  std::to_string(offset_) + " is too short (" +
                                  std::to_string(length) + " bytes)");
    };
    switch (type) {
    case kSectionHeaderBlock:
        parse_section_header(block, length);
        return std::nullopt;
    case kInterfaceDescriptionBlock:
        parse_interface_description(block, length);
        return std::nullopt;
    case kInterfaceStatisticsBlock:
        parse_interface_statistics(block, length);
        return std::nullopt;
    case kEnhancedPacketBlock: {
        if (body < 20) {
            throw too_short("enhanced packet block");
        }
        const std::uint32_t caplen = get32(block + 20);
        if (padded(caplen) > body - 20 || caplen > body - 20) {
            throw CaptureStreamError("pcapng enhanced packet block at offset " +
                                     std::to_string(offset_) + " claims " + std::to_string(caplen) +
                                     " captured bytes in a block of " + std::to_string(length));
        }
        const std::uint64_t ticks = (std::uint64_t{get32(block + 12)} << 32) | get32(block + 16);
        return packet(get32(block + 8), ticks, caplen, get32(block + 24), block + 28);
    }
    case kObsoletePacketBlock: {
        if (body < 20) {
            throw too_short("packet block");
        }
        const std::uint32_t caplen = get32(block + 20);
        if (caplen > body - 20) {
            throw CaptureStreamError("pcapng packet block at offset " + std::to_string(offset_) +
                                     " claims " + std::to_string(caplen) +
                                     " captured bytes in a block of " + std::to_string(length));
        }
        const std::uint64_t ticks = (std::uint64_t{get32(block + 12)} << 32) | get32(block + 16);
        return packet(get16(block + 8), ticks, caplen, get32(block + 24), block + 28);
    }
    case kSimplePacketBlock: {
        if (body < 4) {
            throw too_short("simple packet block");
        }
        if (interfaces_.empty()) {
            throw CaptureStreamError("pcapng simple packet block at offset " +
                                     std::to_string(offset_) + " before any interface");
        }
        // The captured length is implicit: the original length, cut by the
        // first interface's snaplen and by the block.
        const std::uint32_t origlen = get32(block + 8);
        std::uint32_t caplen = std::min(origlen, body - 4);
        if (interfaces_[0].snaplen != 0) {
            caplen = std::min(caplen, interfaces_[0].snaplen);
        }
        Frame frame;
        frame.link_type = interfaces_[0].link_type;
        frame.original_length = origlen;
        frame.data.assign(block + 12, block + 12 + caplen);
        return frame;
    }
    default:
        return std::nullopt; // unknown or uninteresting: skipped by its length
    }
}

void PcapngParser::parse_section_header(const std::uint8_t* block, std::uint32_t length) {
    (void)length;
    const std::uint16_t major = get16(block + 12);
    const std::uint16_t minor = get16(block + 14);
    if (major != 1) {
        throw CaptureStreamError("unsupported pcapng version " + std::to_string(major) + "." +
                                 std::to_string(minor) + " at offset " + std::to_string(offset_));
    }
    // A new section starts a new list of interfaces.
    in_section_ = true;
    interfaces_.clear();
    clocks_.clear();
}

void PcapngParser::parse_interface_description(const std::uint8_t* block, std::uint32_t length) {
    if (length < 20) {
        throw CaptureStreamError("pcapng interface description block at offset " +
                                 std::to_string(offset_) + " is too short (" +
                                 std::to_string(length) + " bytes)");
    }
    InterfaceInfo info;
    Clock clock;
    info.link_type = get16(block + 8);
    info.snaplen = get32(block + 12);
    const auto read16 = [this](const std::uint8_t* p) { return get16(p); };
    for_each_option(read16, block + 16, block + length - 4, offset_,
                    [&](std::uint16_t code, const std::uint8_t* value, std::uint16_t size) {
                        const auto* text = reinterpret_cast<const char*>(value);
                        switch (code) {
                        case 2: // if_name
                            info.name.assign(text, size);
                            break;
                        case 3: // if_description
                            info.description.assign(text, size);
                            break;
                        case 9: // if_tsresol
                            if (size >= 1) {
                                clock.binary = (value[0] & 0x80) != 0;
                                clock.exponent = value[0] & 0x7f;
                            }
                            break;
                        case 11: // if_filter: type 0 is a pcap-filter string
                            if (size >= 1 && value[0] == 0) {
                                info.filter.assign(text + 1, size - 1);
                            }
                            break;
                        case 14: // if_tsoffset
                            if (size == 8) {
                                clock.offset_s = static_cast<std::int64_t>(get64(value));
                            }
                            break;
                        default:
                            break;
                        }
                    });
    interfaces_.push_back(std::move(info));
    clocks_.push_back(clock);
}

void PcapngParser::parse_interface_statistics(const std::uint8_t* block, std::uint32_t length) {
    if (length < 24) {
        throw CaptureStreamError("pcapng interface statistics block at offset " +
                                 std::to_string(offset_) + " is too short (" +
                                 std::to_string(length) + " bytes)");
    }
    CaptureStatistics stats;
    stats.interface_id = get32(block + 8);
    if (stats.interface_id >= interfaces_.size()) {
        throw CaptureStreamError("pcapng interface statistics block at offset " +
                                 std::to_string(offset_) + " is for interface " +
                                 std::to_string(stats.interface_id) + ", but " +
                                 std::to_string(interfaces_.size()) + " are described");
    }
    const auto ticks_at = [this](const std::uint8_t* p) {
        return (std::uint64_t{get32(p)} << 32) | get32(p + 4);
    };
    stats.timestamp_ns = to_ns(stats.interface_id, ticks_at(block + 12));
    const auto read16 = [this](const std::uint8_t* p) { return get16(p); };
    for_each_option(read16, block + 20, block + length - 4, offset_,
                    [&](std::uint16_t code, const std::uint8_t* value, std::uint16_t size) {
                        if (size != 8) {
                            return;
                        }
                        switch (code) {
                        case 2:
                            stats.start_ns = to_ns(stats.interface_id, ticks_at(value));
                            break;
                        case 3:
                            stats.end_ns = to_ns(stats.interface_id, ticks_at(value));
                            break;
                        case 4:
                            stats.received = get64(value);
                            break;
                        case 5:
                            stats.interface_dropped = get64(value);
                            break;
                        case 6:
                            stats.filter_accepted = get64(value);
                            break;
                        case 7:
                            stats.os_dropped = get64(value);
                            break;
                        case 8:
                            stats.delivered = get64(value);
                            break;
                        default:
                            break;
                        }
                    });
    statistics_ = stats;
}

Frame PcapngParser::packet(std::uint32_t interface_id, std::uint64_t ticks, std::uint32_t caplen,
                           std::uint32_t origlen, const std::uint8_t* data) const {
    if (interface_id >= interfaces_.size()) {
        throw CaptureStreamError("pcapng packet at offset " + std::to_string(offset_) +
                                 " is for interface " + std::to_string(interface_id) + ", but " +
                                 std::to_string(interfaces_.size()) + " are described");
    }
    Frame frame;
    frame.interface_id = interface_id;
    frame.link_type = interfaces_[interface_id].link_type;
    frame.timestamp_ns = to_ns(interface_id, ticks);
    frame.original_length = origlen;
    frame.data.assign(data, data + caplen);
    return frame;
}

std::uint64_t PcapngParser::to_ns(std::uint32_t interface_id, std::uint64_t ticks) const {
    const Clock& clock = clocks_[interface_id];
    using u128 = unsigned __int128;
    u128 ns = 0;
    if (clock.binary) {
        ns = (u128{ticks} * kNanosPerSecond) >> clock.exponent;
    } else if (clock.exponent <= 9) {
        u128 scale = 1;
        for (int i = clock.exponent; i < 9; ++i) {
            scale *= 10;
        }
        ns = u128{ticks} * scale;
    } else {
        u128 scale = 1;
        for (int i = 9; i < clock.exponent && scale <= ticks; ++i) {
            scale *= 10;
        }
        ns = u128{ticks} / scale;
    }
    const auto offset = static_cast<__int128>(clock.offset_s) * kNanosPerSecond;
    const __int128 total = static_cast<__int128>(ns) + offset;
    if (total < 0) {
        return 0;
    }
    if (total > static_cast<__int128>(std::numeric_limits<std::uint64_t>::max())) {
        return std::numeric_limits<std::uint64_t>::max();
    }
    return static_cast<std::uint64_t>(total);
}

CaptureReader::CaptureReader(int fd) : fd_(fd) {
    const int flags = fcntl(fd_, F_GETFL);
    if (flags < 0 || fcntl(fd_, F_SETFL, flags | O_NONBLOCK) < 0) {
        const int error = errno;
        ::close(fd_);
        throw std::system_error(error, std::system_category(),
                                "making the capture stream non-blocking");
    }
}

CaptureReader::CaptureReader(CaptureReader&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), closed_(other.closed_), parser_(std::move(other.parser_)) {
}

CaptureReader& CaptureReader::operator=(CaptureReader&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = std::exchange(other.fd_, -1);
        closed_ = other.closed_;
        parser_ = std::move(other.parser_);
    }
    return *this;
}

CaptureReader::~CaptureReader() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

bool CaptureReader::fill() {
    for (;;) {
        auto room = parser_.prepare(kReadChunk);
        const ssize_t n = ::read(fd_, room.data(), room.size());
        if (n > 0) {
            parser_.commit(static_cast<std::size_t>(n));
            return true;
        }
        if (n == 0) {
            closed_ = true;
            return true;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            return false;
        }
        throw std::system_error(errno, std::system_category(), "reading the capture stream");
    }
}

std::optional<Frame> CaptureReader::next(std::chrono::milliseconds timeout) {
    using clock = std::chrono::steady_clock;
    const auto deadline = clock::now() + timeout;
    for (;;) {
        if (auto frame = parser_.next_frame()) {
            return frame;
        }
        if (closed_) {
            if (parser_.buffered() != 0) {
                const std::size_t left = parser_.buffered();
                parser_.discard_buffered();
                throw CaptureStreamError("capture stream ended inside a block (" +
                                         std::to_string(left) + " bytes left over)");
            }
            return std::nullopt;
        }
        if (fill()) {
            continue;
        }
        int wait_ms = -1;
        if (timeout.count() >= 0) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now());
            if (left.count() <= 0) {
                return std::nullopt;
            }
            wait_ms = static_cast<int>(std::min<long long>(left.count(), 1 << 30));
        }
        pollfd pfd{fd_, POLLIN, 0};
        if (::poll(&pfd, 1, wait_ms) < 0 && errno != EINTR) {
            throw std::system_error(errno, std::system_category(),
                                    "waiting for the capture stream");
        }
    }
}

} // namespace promiscd::client
