// Decides whether a caller may do something: root always may; anyone else is
// asked of polkit; when polkit cannot be asked the answer is no (fail closed).
// Shared by every front end, so no policy lives in a front end.
#pragma once

#include "auth/polkit_authority.hpp"
#include "core/errors.hpp"

#include <functional>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace promiscd::auth {

enum class Action { Acquire, Capture, CaptureRawSocket, Manage };

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
    // SO_PEERGROUPS); used only when polkit cannot be asked.
    std::vector<gid_t> groups;
};

class Authorizer {
public:
    // polkit may be null (no bus): then only root and the allowed groups are.
    explicit Authorizer(PolkitAuthority* polkit) : polkit_(polkit) {}

    // Groups whose members are allowed everything when polkit cannot be
    // asked (configuration "allowed_groups").
    void set_allowed_groups(std::vector<gid_t> gids) { allowed_groups_ = std::move(gids); }

    // nullopt: allowed; otherwise the error to return to the caller.
    using Done = std::function<void(const std::optional<core::Error>&)>;
    // Calls done right away for root (and when polkit cannot be asked),
    // later otherwise. Returns a ticket for cancel(), 0 when already done.
    uint64_t authorize(const Caller& caller, Action action,
                       const std::map<std::string, std::string>& details, Done done);
    // The caller went away: polkit's check is cancelled and done never runs.
    void cancel(uint64_t ticket);

private:
    bool in_allowed_group(const Caller& caller) const;

    PolkitAuthority* polkit_;
    std::vector<gid_t> allowed_groups_;
};

} // namespace promiscd::auth
