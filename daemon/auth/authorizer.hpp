// Decides whether a caller may do something: root always may; anyone else is
// asked of polkit, through a bounded, fair queue of checks (sched::FairQueue).
// Fails closed: every polkit error is a denial, except "polkit is not on the
// bus" (and no bus at all), for which the configuration may name groups that
// are allowed. Shared by every front end, so no policy lives in a front end.
#pragma once

#include "auth/polkit_authority.hpp"
#include "core/errors.hpp"
#include "sched/fair_queue.hpp"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace promiscd::auth {

// Netns: leases and captures in a network namespace other than promiscd's
// (instead of Acquire/Capture; never granted by allowed_groups alone).
enum class Action { Acquire, Capture, CaptureRawSocket, Manage, Netns };

// "org.promiscd.promisc.acquire", ...
std::string action_id(Action action);
// "acquire promiscuous-mode leases", ... (for messages)
std::string action_text(Action action);

struct Caller {
    Subject subject;
    uint32_t uid = 0;
    uint32_t pid = 0;
    std::string command;
    bool interactive = false; // the caller allows interactive authorization
    // Primary and supplementary groups when the transport tells (SO_PEERCRED,
    // SO_PEERGROUPS); used only when polkit is not on the bus.
    std::vector<gid_t> groups;
};

using sched::FairQueue;
using sched::QueueLimits;

class Authorizer {
public:
    // polkit may be null (no bus): then only root and the allowed groups are.
    // now: CLOCK_MONOTONIC microseconds (the queue remembers denials for a while).
    Authorizer(PolkitAuthority* polkit, std::function<uint64_t()> now, QueueLimits limits = {});
    ~Authorizer();
    Authorizer(const Authorizer&) = delete;
    Authorizer& operator=(const Authorizer&) = delete;

    // Groups whose members are allowed everything when polkit is not on the
    // bus (configuration "allowed_groups"); never when polkit answered with
    // an error.
    void set_allowed_groups(std::vector<gid_t> gids) { allowed_groups_ = std::move(gids); }
    void set_limits(const QueueLimits& limits) { queue_.set_limits(limits); }

    // nullopt: allowed; otherwise the error to return to the caller.
    using Done = std::function<void(const std::optional<core::Error>&)>;
    // Calls done right away for root, when the queue is full (LimitsExceeded)
    // and when polkit cannot be asked; later otherwise. Returns a ticket for
    // cancel(), 0 when done has run already.
    uint64_t authorize(const Caller& caller, Action action,
                       const std::map<std::string, std::string>& details, Done done);
    // The caller went away: its check is withdrawn (polkit is told) and done
    // never runs.
    void cancel(uint64_t ticket);

    size_t in_flight() const { return queue_.in_flight(); }
    size_t queued() const { return queue_.queued(); }

private:
    struct Check;
    bool in_allowed_group(const Caller& caller) const;
    void start(uint64_t id, uint64_t queue_ticket);
    void answer(uint64_t id, const Answer& answer);

    PolkitAuthority* polkit_;
    std::function<uint64_t()> now_;
    FairQueue queue_;
    std::vector<gid_t> allowed_groups_;
    std::map<uint64_t, std::shared_ptr<Check>> checks_;
    uint64_t next_id_ = 1;
};

} // namespace promiscd::auth
