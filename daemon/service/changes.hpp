// One ordered stream of changes out of the services, published after the
// kernel acknowledged what a change reports. Everything that shows state
// (D-Bus objects, varlink Monitor, the audit journal, STATUS=, idle exit) is
// a projection of it, applied change by change.
#pragma once

#include "capture/relay.hpp"
#include "core/arbiter.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <systemd/sd-event.h>
#include <variant>
#include <vector>

namespace promiscd::service {

using CaptureId = std::uint64_t;

enum class CaptureFormat { Pcapng, Pcap, Socket };
std::string_view to_string(CaptureFormat format);
// "pcapng", "pcap", "socket"; anything else: nullopt.
std::optional<CaptureFormat> parse_format(std::string_view name);

// A capture as the projections show it.
struct CaptureInfo {
    CaptureId id = 0;
    std::string interface;   // raw name, or "any"
    int ifindex = 0;         // 0 for "any"
    std::uint64_t netns = 0; // the namespace's inode; 0: promiscd's own
    std::string filter;
    CaptureFormat format = CaptureFormat::Pcapng;
    core::Owner owner;
    std::optional<core::LeaseId> lease; // while the capture holds one
    capture::RelayCounters counters;    // as last reported
};

struct LeaseAdded {
    core::Lease lease; // with its first state
};
// Its state or expiry changed; `lease` holds the new values, `from` the
// state before when the state changed.
struct LeaseChanged {
    core::Lease lease;
    std::optional<core::LeaseState> from;
};
struct LeaseEnded {
    core::Lease lease;
    core::EndReason reason = core::EndReason::Released;
    std::optional<core::Revocation> revocation;
};
struct LinkAdded {
    core::LinkView link;
};
// Any part of the view changed (flags, counts, origin, policy, leases, name).
struct LinkChanged {
    core::LinkView link;
    core::LinkView before;
};
struct LinkRemoved {
    int ifindex = 0;
    std::string name;
};
// The admin bit changed: by promiscd (after the kernel acknowledged), or by
// another agent (seen in RTM_NEWLINK), even when enforce undoes it at once.
struct FlagChanged {
    int ifindex = 0;
    std::string name;
    bool on = false;
    bool by_daemon = false;
};
struct Conflict {
    int ifindex = 0;
    std::string name;
    unsigned clears = 0;
};
struct CaptureStarted {
    CaptureInfo capture;
};
struct CaptureCounters {
    CaptureInfo capture;
};
struct CaptureFinished {
    CaptureInfo capture;
    capture::FinishReason reason = capture::FinishReason::Stopped;
};

using Change =
    std::variant<LeaseAdded, LeaseChanged, LeaseEnded, LinkAdded, LinkChanged, LinkRemoved,
                 FlagChanged, Conflict, CaptureStarted, CaptureCounters, CaptureFinished>;

class ChangeListener {
public:
    virtual ~ChangeListener() = default;
    // Must not throw. May call back into the services (which may publish:
    // such changes are delivered after this one, in order).
    virtual void on_change(const Change& change) = 0;
};

class ChangeStream {
public:
    ChangeStream() = default;
    // With an event loop, changes are delivered right after the event being
    // dispatched (a deferred source of high priority): a request's reply goes
    // out before the signals that follow from it, and no projection runs
    // inside a method call. Without one (tests), at once.
    explicit ChangeStream(sd_event* event);
    ~ChangeStream();
    ChangeStream(const ChangeStream&) = delete;
    ChangeStream& operator=(const ChangeStream&) = delete;

    void subscribe(ChangeListener* l) { listeners_.push_back(l); }
    void unsubscribe(ChangeListener* l);
    // Delivered to every listener in subscription order; a change published
    // while one is being delivered waits until that one has reached everyone.
    void publish(Change change);
    // Delivers what is queued now (also from the deferred source).
    void flush();
    uint64_t published() const { return published_; }

private:
    static int on_defer(sd_event_source* s, void* userdata);

    std::vector<ChangeListener*> listeners_;
    std::vector<Change> queue_;
    bool delivering_ = false;
    uint64_t published_ = 0;
    sd_event_source* defer_ = nullptr;
};

} // namespace promiscd::service
