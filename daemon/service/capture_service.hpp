// Captures for clients that may not open packet sockets themselves: the
// daemon compiles the filter (off the loop), opens the filtered socket, holds
// a lease for promiscuous mode if asked, and hands out the read end of a pipe
// fed by a Relay (or, for format "socket", the socket itself). A peer of the
// lease service: it takes and releases leases through it, follows its changes
// (a lease that ends, a link that goes) and publishes its own into the same
// stream. Quotas per uid and in all, including captures still opening.
#pragma once

#include "capture/filter_compiler.hpp"
#include "capture/relay.hpp"
#include "capture/unique_fd.hpp"
#include "config.h"
#include "core/arbiter.hpp"
#include "event.hpp"
#include "service/changes.hpp"
#include "service/lease_service.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace promiscd::service {

// The interface name that captures every link (cooked, never promiscuous).
inline constexpr std::string_view kAnyInterface = "any";
inline constexpr std::uint32_t kMaxSnaplen = 262144;
// Smallest ring that still holds a few blocks of ordinary frames.
inline constexpr std::size_t kMinCaptureBuffer = 64 << 10;
inline constexpr std::size_t kDefaultCaptureBuffer = 4 << 20;
// A pcapng option holds at most 65535 bytes; if_filter carries the filter.
inline constexpr std::size_t kMaxFilterLength = 16384;

struct CaptureRequest {
    std::string interface; // a raw link name, or "any"
    std::string filter{};  // pcap-filter expression; empty: every frame
    std::uint32_t snaplen = kMaxSnaplen;
    bool promisc = true; // hold a lease while capturing (not for "any")
    CaptureFormat format = CaptureFormat::Pcapng;
    std::optional<std::uint64_t> buffer_size{}; // ring bytes; nullopt: the default
    std::uint64_t count = 0;                    // end after this many frames; 0: no limit
    // The network namespace as the client named it (empty: promiscd's own),
    // and its inode once the operations layer opened it (interface is then
    // qualified, core::qualify).
    std::string netns{};
    std::uint64_t netns_inode = 0;
};

struct OpenedCapture {
    CaptureId id = 0;
    capture::UniqueFd fd; // for the client: read end of the pipe, or the packet socket
};

class CaptureService final : public ChangeListener {
public:
    struct Options {
        // How often counters are read and published.
        std::uint64_t counter_interval_usec = 1'000'000;
        // Pipe capacity asked of the kernel (F_SETPIPE_SZ); the kernel may give less.
        int pipe_size = 1 << 20;
        // After a stop, frames still in the kernel's partly filled ring block
        // are relayed: its retire timeout (50 ms) and a margin.
        std::uint64_t settle_usec = 100'000;
        std::string application = "promiscd " PROMISCD_VERSION; // shb_userappl
        capture::CompilerLimits compiler{};
    };

    CaptureService(LeaseService& leases, Options options);
    explicit CaptureService(LeaseService& leases) : CaptureService(leases, Options{}) {}
    ~CaptureService() override;
    CaptureService(const CaptureService&) = delete;
    CaptureService& operator=(const CaptureService&) = delete;

    // Throws core::Error(InvalidArgument) for option values outside the
    // limits, naming the option.
    void validate(const CaptureRequest& request) const;
    // Throws core::Error(QuotaExceeded) when uid may not start another
    // capture now (its own, everyone's, or the memory they would take).
    void check_quota(std::uint32_t uid, const CaptureRequest& request) const;

    // Opens a capture for owner: compiles the filter off the loop, then opens
    // the socket, the pipe and the lease. done gets the capture, or an
    // error: InvalidArgument, InvalidFilter (libpcap's message, or "too
    // costly"), NoSuchInterface, QuotaExceeded, LimitsExceeded, Failed.
    // Nothing is left open on error. Returns a ticket for cancel_open(), 0
    // when done ran already (from inside open()).
    using Opened = std::function<void(std::variant<OpenedCapture, core::Error>)>;
    std::uint64_t open(const CaptureRequest& request, const core::Owner& owner, Opened done);
    // The caller went away before the capture was open: done never runs.
    void cancel_open(std::uint64_t ticket);

    // Ends a capture (reason "stopped" unless told otherwise); the stream
    // gets its closing statistics. False when there is no such running capture.
    bool stop(CaptureId id, capture::FinishReason reason = capture::FinishReason::Stopped);
    // Ends every capture of this owner (owner-gone) and cancels its opens.
    void owner_gone(const std::string& transport, const std::string& owner_id);
    // Ends every capture at once (daemon-shutdown); also run from the loop's
    // exit, so captures end before the front ends go.
    void shutdown();

    const CaptureInfo* find(CaptureId id) const;
    std::vector<CaptureInfo> captures() const;
    size_t count() const { return captures_.size(); }
    // Counters as of now (reads the kernel's drop count).
    std::optional<capture::RelayCounters> counters(CaptureId id);
    void set_compiler_limits(const capture::CompilerLimits& limits) {
        compiler_.set_limits(limits);
    }

    void on_change(const Change& change) override;

private:
    struct Capture {
        CaptureInfo info;
        std::unique_ptr<capture::Relay> relay; // null for format "socket"
        bool ending = false;
        std::size_t memory = 0; // reserved ring bytes
    };
    struct PendingOpen {
        CaptureRequest request;
        core::Owner owner;
        Opened done;
        std::uint64_t compile_ticket = 0;
        std::size_t memory = 0;
    };

    void compiled(std::uint64_t ticket, capture::FilterCompiler::Result result);
    // Captures in the namespace finish (netns-gone); opens in it fail.
    void namespace_gone(std::uint64_t inode);
    OpenedCapture open_now(const CaptureRequest& request, const core::Owner& owner,
                           const capture::BpfProgram& program, bool cooked, std::size_t memory);
    void finished(CaptureId id, capture::FinishReason reason);
    // The lease ends as the capture does: owner-gone and daemon-shutdown
    // keep their reasons, every other end is the owner's release.
    void release_lease(Capture& capture, capture::FinishReason why);
    std::size_t memory_of(const CaptureRequest& request) const;
    void arm_ticker();
    void tick();
    void schedule_reap();
    static int on_tick(sd_event_source* s, std::uint64_t usec, void* userdata);
    static int on_reap(sd_event_source* s, void* userdata);
    static int on_exit(sd_event_source* s, void* userdata);

    LeaseService& leases_;
    Options options_;
    capture::FilterCompiler compiler_;
    CaptureId next_id_ = 1;
    std::map<CaptureId, Capture> captures_;
    std::map<std::uint64_t, PendingOpen> opening_;
    std::uint64_t next_ticket_ = 1;
    std::size_t memory_ = 0; // reserved by running and opening captures
    // Relays whose stream has ended are destroyed from a deferred source:
    // they may end from inside their own event handlers.
    std::vector<std::unique_ptr<capture::Relay>> doomed_;
    EventSourcePtr ticker_;
    EventSourcePtr reaper_;
    EventSourcePtr exit_;
};

} // namespace promiscd::service
