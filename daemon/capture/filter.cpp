#include "capture/filter.hpp"

#include <pcap/pcap.h>
#include <sys/socket.h>

#include <cerrno>
#include <memory>
#include <system_error>

namespace promiscd::capture {

namespace {

constexpr std::uint32_t kDefaultSnaplen = 262144;
constexpr std::uint32_t kSll2HeaderSize = 20;
// The kernel refuses longer classic BPF programs (BPF_MAXINSNS).
constexpr std::size_t kMaxInstructions = BPF_MAXINSNS;

struct PcapCloser {
    void operator()(pcap_t* p) const noexcept { pcap_close(p); }
};
using PcapHandle = std::unique_ptr<pcap_t, PcapCloser>;

class CompiledProgram {
public:
    CompiledProgram() = default;
    CompiledProgram(const CompiledProgram&) = delete;
    CompiledProgram& operator=(const CompiledProgram&) = delete;
    CompiledProgram(CompiledProgram&&) = delete;
    CompiledProgram& operator=(CompiledProgram&&) = delete;
    ~CompiledProgram() { pcap_freecode(&program_); }
    bpf_program* get() noexcept { return &program_; }

private:
    bpf_program program_{};
};

std::string quoted(std::string_view s) {
    return "'" + std::string(s) + "'";
}

// Maps a load from the SLL2 header (offset, size) to the kernel's ancillary
// data, which holds the same values as the header fields (host-order numbers).
bool ancillary_offset(std::uint32_t offset, std::uint16_t size, std::uint32_t& ancillary) {
    struct Field {
        std::uint32_t offset;
        std::uint16_t size;
        std::int32_t ancillary;
    };
    static constexpr Field kFields[] = {
        {0, BPF_H, SKF_AD_PROTOCOL}, // sll2_protocol
        {4, BPF_W, SKF_AD_IFINDEX},  // sll2_if_index
        {8, BPF_H, SKF_AD_HATYPE},   // sll2_hatype
        {10, BPF_B, SKF_AD_PKTTYPE}, // sll2_pkttype
    };
    for (const Field& field : kFields) {
        if (field.offset == offset && field.size == size) {
            ancillary = static_cast<std::uint32_t>(SKF_AD_OFF + field.ancillary);
            return true;
        }
    }
    return false;
}

} // namespace

FilterError::FilterError(std::string expression, std::string reason)
    : std::runtime_error("invalid filter " + quoted(expression) + ": " + reason),
      expression_(std::move(expression)), reason_(std::move(reason)) {}

sock_fprog BpfProgram::fprog() const noexcept {
    // SO_ATTACH_FILTER only reads the program; the kernel API lacks the const.
    return {static_cast<unsigned short>(instructions_.size()),
            const_cast<sock_filter*>(instructions_.data())};
}

BpfProgram compile_filter(std::string_view expression, int dlt, std::uint32_t snaplen) {
    const std::string text(expression);
    PcapHandle handle(pcap_open_dead_with_tstamp_precision(
        dlt, static_cast<int>(snaplen != 0 ? snaplen : kDefaultSnaplen),
        PCAP_TSTAMP_PRECISION_NANO));
    if (!handle) {
        throw FilterError(text, "libpcap cannot compile for link type " + std::to_string(dlt));
    }
    CompiledProgram compiled;
    if (pcap_compile(handle.get(), compiled.get(), text.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
        throw FilterError(text, pcap_geterr(handle.get()));
    }
    const bpf_program& program = *compiled.get();
    if (program.bf_len > kMaxInstructions) {
        throw FilterError(text, "compiles to " + std::to_string(program.bf_len) +
                                    " instructions, more than the kernel's limit of " +
                                    std::to_string(kMaxInstructions));
    }
    std::vector<sock_filter> instructions;
    instructions.reserve(program.bf_len);
    for (u_int i = 0; i < program.bf_len; ++i) {
        const bpf_insn& in = program.bf_insns[i];
        instructions.push_back({in.code, in.jt, in.jf, in.k});
    }
    return BpfProgram(std::move(instructions));
}

BpfProgram compile_cooked_filter(std::string_view expression, std::uint32_t snaplen) {
    const BpfProgram compiled = compile_filter(expression, DLT_LINUX_SLL2, snaplen);
    std::vector<sock_filter> instructions(compiled.instructions().begin(),
                                          compiled.instructions().end());
    for (sock_filter& insn : instructions) {
        const auto cls = BPF_CLASS(insn.code);
        const auto mode = BPF_MODE(insn.code);
        const bool packet_load = (cls == BPF_LD && (mode == BPF_ABS || mode == BPF_IND)) ||
                                 (cls == BPF_LDX && mode == BPF_MSH);
        // Negative offsets (SKF_AD_OFF, SKF_NET_OFF, SKF_LL_OFF) are the kernel's
        // own and already mean the same on any socket.
        if (!packet_load || static_cast<std::int32_t>(insn.k) < 0) {
            continue;
        }
        if (insn.k >= kSll2HeaderSize) {
            insn.k -= kSll2HeaderSize;
            continue;
        }
        std::uint32_t ancillary = 0;
        if (cls == BPF_LD && mode == BPF_ABS &&
            ancillary_offset(insn.k, static_cast<std::uint16_t>(BPF_SIZE(insn.code)), ancillary)) {
            insn.k = ancillary;
            continue;
        }
        throw FilterError(std::string(expression),
                          "reads byte " + std::to_string(insn.k) +
                              " of the cooked (SLL2) header, which the kernel cannot "
                              "filter on; only protocol, ifindex, hatype and pkttype can be used");
    }
    return BpfProgram(std::move(instructions));
}

void attach_filter(int fd, const BpfProgram& program) {
    if (!program.empty()) {
        const sock_fprog fprog = program.fprog();
        if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) != 0) {
            throw std::system_error(errno, std::system_category(), "SO_ATTACH_FILTER");
        }
    }
    const int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_LOCK_FILTER, &on, sizeof on) != 0) {
        throw std::system_error(errno, std::system_category(), "SO_LOCK_FILTER");
    }
}

} // namespace promiscd::capture
