#include "authorizer.hpp"

#include "config.h"

namespace promiscd::auth {

using core::Error;
using core::ErrorCode;

std::string action_id(Action action) {
    const std::string prefix = PROMISCD_ACTION_PREFIX;
    switch (action) {
    case Action::Acquire:
        return prefix + ".promisc.acquire";
    case Action::Capture:
        return prefix + ".capture";
    case Action::CaptureRawSocket:
        return prefix + ".capture.raw-socket";
    case Action::Manage:
        return prefix + ".manage";
    }
    return prefix + ".manage";
}

std::string action_text(Action action) {
    switch (action) {
    case Action::Acquire:
        return "acquire promiscuous-mode leases";
    case Action::Capture:
        return "capture traffic";
    case Action::CaptureRawSocket:
        return "receive raw packet sockets";
    case Action::Manage:
        return "manage other users' leases and link policies";
    }
    return "do this";
}

namespace {

Error denial(const Caller& caller, Action action, const Answer& answer) {
    const std::string what = action_text(action) + " (polkit action " + action_id(action) + ")";
    switch (answer.verdict) {
    case Verdict::Challenge:
        if (caller.interactive) // polkit could have asked, and no agent did
            return Error(ErrorCode::AccessDenied,
                         "uid " + std::to_string(caller.uid) + " is not authorized to " + what +
                             ": authentication is required and no polkit agent answered");
        return Error(ErrorCode::InteractiveAuthorizationRequired,
                     "authentication is required to " + what +
                         "; allow interactive authorization and run a polkit agent");
    case Verdict::Unavailable:
        return Error(ErrorCode::AccessDenied, answer.detail + "; uid " +
                                                  std::to_string(caller.uid) +
                                                  " cannot be authorized to " + what);
    case Verdict::Cancelled:
        return Error(ErrorCode::AccessDenied, "authorization cancelled");
    default:
        return Error(ErrorCode::AccessDenied,
                     "uid " + std::to_string(caller.uid) + " is not authorized to " + what);
    }
}

} // namespace

bool Authorizer::in_allowed_group(const Caller& caller) const {
    for (gid_t g : caller.groups)
        for (gid_t a : allowed_groups_)
            if (g == a)
                return true;
    return false;
}

uint64_t Authorizer::authorize(const Caller& caller, Action action,
                               const std::map<std::string, std::string>& details, Done done) {
    if (caller.uid == 0) {
        done(std::nullopt);
        return 0;
    }
    if (!polkit_) {
        if (in_allowed_group(caller))
            done(std::nullopt);
        else
            done(denial(caller, action,
                        {Verdict::Unavailable, "polkit is unavailable (no system bus)"}));
        return 0;
    }
    try {
        return polkit_->check(
            caller.subject, action_id(action), details, caller.interactive,
            [this, caller, action, done](const Answer& a) {
                if (a.verdict == Verdict::Cancelled)
                    return;
                if (a.verdict == Verdict::Allowed ||
                    (a.verdict == Verdict::Unavailable && in_allowed_group(caller)))
                    done(std::nullopt);
                else
                    done(denial(caller, action, a));
            });
    } catch (const std::exception& e) {
        done(denial(
            caller, action,
            {Verdict::Unavailable, std::string("polkit is unavailable (") + e.what() + ")"}));
        return 0;
    }
}

void Authorizer::cancel(uint64_t ticket) {
    if (polkit_ && ticket)
        polkit_->cancel(ticket);
}

} // namespace promiscd::auth
