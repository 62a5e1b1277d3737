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
    case Action::Netns:
        return prefix + ".netns";
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
    case Action::Netns:
        return "use links of other network namespaces";
    }
    return "do this";
}

namespace {

Error denial(const Caller& caller, Action action, const Answer& answer) {
    const std::string what = action_text(action) + " (polkit action " + action_id(action) + ")";
    const std::string who = "uid " + std::to_string(caller.uid);
    switch (answer.verdict) {
    case Verdict::Challenge:
        if (caller.interactive) // polkit could have asked, and no agent did
            return Error(ErrorCode::AccessDenied,
                         who + " is not authorized to " + what +
                             ": authentication is required and no polkit agent answered");
        return Error(ErrorCode::InteractiveAuthorizationRequired,
                     "authentication is required to " + what +
                         "; allow interactive authorization and run a polkit agent");
    case Verdict::Unavailable:
    case Verdict::Error:
        return Error(ErrorCode::AccessDenied,
                     answer.detail + "; " + who + " cannot be authorized to " + what);
    case Verdict::Cancelled:
        return Error(ErrorCode::AccessDenied, "authorization cancelled");
    default:
        return Error(ErrorCode::AccessDenied, who + " is not authorized to " + what);
    }
}

} // namespace

struct Authorizer::Check {
    Caller caller;
    Action action;
    std::map<std::string, std::string> details;
    Done done;
    uint64_t queue_ticket = 0;
    uint64_t polkit_ticket = 0;
    bool started = false;
};

Authorizer::Authorizer(PolkitAuthority* polkit, std::function<uint64_t()> now, QueueLimits limits)
    : polkit_(polkit), now_(std::move(now)), queue_(limits) {}

Authorizer::~Authorizer() {
    // Nobody is told any more; polkit is told to stop asking.
    auto checks = std::move(checks_);
    checks_.clear();
    for (auto& [id, c] : checks)
        if (c->started && polkit_)
            polkit_->cancel(c->polkit_ticket);
}

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
        // A group is a blanket grant on promiscd's own links only.
        if (action != Action::Netns && in_allowed_group(caller))
            done(std::nullopt);
        else
            done(denial(caller, action,
                        {Verdict::Unavailable, "polkit is unavailable (no system bus)"}));
        return 0;
    }
    const uint64_t id = next_id_++;
    auto check = std::make_shared<Check>();
    check->caller = caller;
    check->action = action;
    check->details = details;
    check->done = std::move(done);
    checks_.emplace(id, check);
    auto ticket = queue_.submit(caller.uid, now_(),
                                [this, id](uint64_t queue_ticket) { start(id, queue_ticket); });
    if (!ticket) {
        checks_.erase(id);
        check->done(
            Error(ErrorCode::LimitsExceeded, queue_.refusal(caller.uid, "authorization checks")));
        return 0;
    }
    if (!checks_.count(id))
        return 0; // answered from inside submit()
    check->queue_ticket = *ticket;
    return id;
}

void Authorizer::start(uint64_t id, uint64_t queue_ticket) {
    auto it = checks_.find(id);
    if (it == checks_.end()) {
        queue_.finished(queue_ticket, false, now_());
        return;
    }
    auto check = it->second;
    check->queue_ticket = queue_ticket;
    check->started = true;
    try {
        check->polkit_ticket = polkit_->check(check->caller.subject, action_id(check->action),
                                              check->details, check->caller.interactive,
                                              [this, id](const Answer& a) { answer(id, a); });
    } catch (const std::exception& e) {
        answer(id, {Verdict::Error,
                    std::string("the polkit check could not be sent (") + e.what() + ")"});
    }
}

void Authorizer::answer(uint64_t id, const Answer& a) {
    auto it = checks_.find(id);
    if (it == checks_.end())
        return; // cancelled: nobody to tell
    auto check = it->second;
    checks_.erase(it);
    const bool denied = a.verdict == Verdict::Denied || a.verdict == Verdict::Challenge;
    queue_.finished(check->queue_ticket, denied, now_());
    // A cancellation we asked for finds no check (cancel() removed it); any
    // other answer, Cancelled included, is told to the caller.
    if (a.verdict == Verdict::Allowed ||
        (a.verdict == Verdict::Unavailable && in_allowed_group(check->caller)))
        check->done(std::nullopt);
    else
        check->done(denial(check->caller, check->action, a));
}

void Authorizer::cancel(uint64_t ticket) {
    auto it = checks_.find(ticket);
    if (it == checks_.end())
        return;
    auto check = it->second;
    checks_.erase(it);
    if (check->started)
        polkit_->cancel(check->polkit_ticket); // its answer finds no check
    queue_.withdraw(check->queue_ticket, now_());
}

} // namespace promiscd::auth
