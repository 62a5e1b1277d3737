// Decides whether a caller may do something: root always may; anyone else is
// asked of polkit; when polkit cannot be asked the answer is no (fail closed).
// Shared by every front end, so no policy lives in a front end.
#pragma once

#include "auth/polkit_authority.hpp"
#include "core/errors.hpp"

#include <functional>
#include <optional>
#include <string>

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
};

class Authorizer {
public:
    // polkit may be null: then only root is allowed.
    explicit Authorizer(PolkitAuthority* polkit) : polkit_(polkit) {}

    // nullopt: allowed; otherwise the error to return to the caller.
    using Done = std::function<void(const std::optional<core::Error>&)>;
    // Calls done right away for root (and when polkit cannot be asked),
    // later otherwise. Returns a ticket for cancel(), 0 when already done.
    uint64_t authorize(const Caller& caller, Action action,
                       const std::map<std::string, std::string>& details, Done done);
    // The caller went away: polkit's check is cancelled and done never runs.
    void cancel(uint64_t ticket);

private:
    PolkitAuthority* polkit_;
};

} // namespace promiscd::auth
