// Captures for clients that may not open packet sockets themselves: the daemon
// opens the filtered socket, holds a lease for promiscuous mode if asked, and
// hands out the read end of a pipe fed by a Relay (or, for format "socket",
// the socket itself). Front-end agnostic: D-Bus and varlink call the same API.
#pragma once

#include "capture/relay.hpp"
#include "capture/unique_fd.hpp"
#include "config.h"
#include "core/arbiter.hpp"
#include "service.hpp"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace promiscd::capture {

enum class Format { Pcapng, Pcap, Socket };
std::string_view to_string(Format format);
// "pcapng", "pcap", "socket"; anything else: nullopt.
std::optional<Format> parse_format(std::string_view name);

using CaptureId = std::uint64_t;

// The interface name that captures every link (cooked, never promiscuous).
inline constexpr std::string_view kAnyInterface = "any";
inline constexpr std::uint32_t kMaxSnaplen = 262144;
// Smallest ring that still holds a few blocks of ordinary frames.
inline constexpr std::size_t kMinCaptureBuffer = 64 << 10;
inline constexpr std::size_t kDefaultCaptureBuffer = 4 << 20;

struct CaptureRequest {
    std::string interface; // a link name, or "any"
    std::string filter{};  // pcap-filter expression; empty: every frame
    std::uint32_t snaplen = kMaxSnaplen;
    bool promisc = true; // hold a lease while capturing (not for "any")
    Format format = Format::Pcapng;
    std::optional<std::uint64_t> buffer_size{}; // ring bytes; nullopt: the default
    std::uint64_t count = 0;                    // end after this many frames; 0: no limit
};

struct CaptureInfo {
    CaptureId id = 0;
    std::string interface;
    int ifindex = 0; // 0 for "any"
    std::string filter;
    Format format = Format::Pcapng;
    core::Owner owner;
    std::optional<core::LeaseId> lease; // while the capture holds one
    RelayCounters counters;             // as last reported to listeners
};

// What the front ends publish. Called on the loop, after the fact; a
// listener must not destroy the manager from inside.
class CaptureListener {
public:
    virtual ~CaptureListener() = default;
    // Counters changed; at most once per counter interval per capture.
    virtual void on_capture_counters(const CaptureInfo& /*capture*/) {}
    // The capture is over: the stream is closed (or was never relayed), the
    // lease released. `capture.counters` holds the final values.
    virtual void on_capture_finished(const CaptureInfo& capture, FinishReason reason) = 0;
};

struct OpenedCapture {
    CaptureId id = 0;
    UniqueFd fd; // for the client: read end of the pipe, or the packet socket
};

class CaptureManager final : public Listener {
public:
    struct Options {
        // How often counters are read and reported (PropertiesChanged).
        std::uint64_t counter_interval_usec = 1'000'000;
        // Pipe capacity asked of the kernel (F_SETPIPE_SZ): fewer wake-ups for
        // the reader and the relay; the kernel may give less.
        int pipe_size = 1 << 20;
        // After a stop, frames still in the kernel's partly filled ring block
        // are relayed: its retire timeout (PacketSocketOptions, 50 ms) and a
        // margin.
        std::uint64_t settle_usec = 100'000;
        std::string application = "promiscd " PROMISCD_VERSION; // shb_userappl
    };

    CaptureManager(Service& service, Options options);
    explicit CaptureManager(Service& service) : CaptureManager(service, Options{}) {}
    ~CaptureManager() override;
    CaptureManager(const CaptureManager&) = delete;
    CaptureManager& operator=(const CaptureManager&) = delete;

    // Throws core::Error with InvalidArgument for option values outside the
    // limits (naming the option). The front ends check before authorizing.
    void validate(const CaptureRequest& request) const;

    // Opens a capture for owner. Throws core::Error: InvalidArgument,
    // InvalidFilter (libpcap's message), NoSuchInterface, QuotaExceeded (the
    // owner's uid has captures_per_uid captures, or leases), Failed. Nothing
    // is left open when it throws. The capture authorization implies the
    // lease: callers check org.promiscd.capture only.
    OpenedCapture open(const CaptureRequest& request, const core::Owner& owner);

    // Ends a capture (reason "stopped" unless told otherwise); the stream
    // gets its closing statistics. False when there is no such running capture.
    bool stop(CaptureId id, FinishReason reason = FinishReason::Stopped);
    // Ends every capture of this owner (owner-gone).
    void owner_gone(const std::string& transport, const std::string& owner_id);
    // Ends every capture at once (daemon-shutdown); also run from the loop's
    // exit, so captures end before the front ends go.
    void shutdown();

    const CaptureInfo* find(CaptureId id) const;
    std::vector<CaptureInfo> captures() const;
    // Counters as of now (reads the kernel's drop count).
    std::optional<RelayCounters> counters(CaptureId id);

    void add_listener(CaptureListener* l) { listeners_.push_back(l); }
    void remove_listener(CaptureListener* l) { std::erase(listeners_, l); }

    // Service events.
    void on_command(const core::Command& command) override;
    void on_link_removed(int ifindex, const std::string& name) override;

private:
    struct Capture {
        CaptureInfo info;
        std::unique_ptr<Relay> relay; // null for format "socket"
        bool ending = false;
    };

    void finished(CaptureId id, FinishReason reason);
    // The lease ends as the capture does: owner-gone and daemon-shutdown
    // keep their reasons, every other end is the owner's release.
    void release_lease(Capture& capture, FinishReason why);
    void arm_ticker();
    void tick();
    void schedule_reap();
    static int on_tick(sd_event_source* s, std::uint64_t usec, void* userdata);
    static int on_reap(sd_event_source* s, void* userdata);
    static int on_exit(sd_event_source* s, void* userdata);

    Service& service_;
    Options options_;
    CaptureId next_id_ = 1;
    std::map<CaptureId, Capture> captures_;
    // Relays whose stream has ended are destroyed from a deferred source:
    // they may end from inside their own event handlers.
    std::vector<std::unique_ptr<Relay>> doomed_;
    std::vector<CaptureListener*> listeners_;
    EventSourcePtr ticker_;
    EventSourcePtr reaper_;
    EventSourcePtr exit_;
};

} // namespace promiscd::capture
