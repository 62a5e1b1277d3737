// Capture filters: pcap-filter expressions compiled with libpcap (no device
// opened) into classic BPF for SO_ATTACH_FILTER, and attached then locked so
// that whoever holds the socket cannot remove or replace the filter.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace promiscd::capture {

// A filter that does not compile or cannot run in the kernel. reason() is
// libpcap's message (e.g. "can't parse filter expression: syntax error").
class FilterError : public std::runtime_error {
public:
    FilterError(std::string expression, std::string reason);
    const std::string& expression() const noexcept { return expression_; }
    const std::string& reason() const noexcept { return reason_; }

private:
    std::string expression_;
    std::string reason_;
};

class BpfProgram {
public:
    BpfProgram() = default;
    explicit BpfProgram(std::vector<sock_filter> instructions)
        : instructions_(std::move(instructions)) {}

    std::span<const sock_filter> instructions() const noexcept { return instructions_; }
    bool empty() const noexcept { return instructions_.empty(); }
    // Points into this program: valid while it lives and is not modified.
    sock_fprog fprog() const noexcept;

private:
    std::vector<sock_filter> instructions_;
};

// Compiles for packets that start with a dlt (DLT_*) link-layer header, as
// read from a file or a SOCK_RAW packet socket. Accepted packets are cut to
// snaplen by the program's return value (0: libpcap's maximum, 262144). An
// empty expression gives a one-instruction program that accepts everything.
BpfProgram compile_filter(std::string_view expression, int dlt, std::uint32_t snaplen);

// Compiles for a SOCK_DGRAM ("cooked") packet socket whose records are written
// as LINKTYPE_LINUX_SLL2. The kernel runs the filter on the packet from its
// network header, so loads from the SLL2 header become the kernel's ancillary
// loads (protocol, ifindex, hatype, pkttype) and later offsets shift by the
// header's 20 bytes. Filters reading other header bytes throw FilterError.
// Note: `len`/`greater`/`less` then see the length without the SLL2 header.
BpfProgram compile_cooked_filter(std::string_view expression, std::uint32_t snaplen);

// SO_ATTACH_FILTER, then SO_LOCK_FILTER. Throws std::system_error naming the
// option that failed.
void attach_filter(int fd, const BpfProgram& program);

} // namespace promiscd::capture
