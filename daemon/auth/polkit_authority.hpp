// polkit's Authority over plain D-Bus (sdbus-c++, no GLib): asynchronous
// CheckAuthorization with cancellation, so a check waiting for a password
// never stalls the loop, and a caller that goes away gets nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IProxy.h>
#include <string>

namespace promiscd::auth {

// Who is asking, as polkit identifies subjects. Built from the bus driver's
// or the kernel's view (SO_PEERCRED), never from anything a client sent.
struct Subject {
    enum class Kind { BusName, UnixProcess } kind = Kind::BusName;
    std::string bus_name;    // BusName: the caller's unique name
    uint32_t pid = 0;        // UnixProcess
    uint64_t start_time = 0; // UnixProcess: from /proc/PID/stat, 0 lets polkit look it up
    uint32_t uid = 0;        // UnixProcess
};

enum class Verdict {
    Allowed,
    Denied,    // polkit said no
    Challenge, // authentication would be needed, and interaction was not allowed
    // polkit is not on the bus (nobody owns its name and none can be
    // activated): the one case the configuration's allowed_groups are for.
    Unavailable,
    // Any other failure (the bus refused or timed out the call, polkit
    // answered with an error): a denial, never a reason to fall back.
    Error,
    Cancelled,
};

struct Answer {
    Verdict verdict = Verdict::Denied;
    std::string detail; // for Unavailable and Error: why
};

class PolkitAuthority {
public:
    explicit PolkitAuthority(sdbus::IConnection& connection);
    ~PolkitAuthority();
    PolkitAuthority(const PolkitAuthority&) = delete;
    PolkitAuthority& operator=(const PolkitAuthority&) = delete;

    using Callback = std::function<void(const Answer&)>;
    // Starts a check; `done` runs later from the loop (never re-entrantly).
    // Returns a ticket for cancel().
    uint64_t check(const Subject& subject, const std::string& action,
                   const std::map<std::string, std::string>& details, bool interactive,
                   Callback done);
    // Cancels a pending check: polkit is told (CancelCheckAuthorization) and
    // `done` runs with Verdict::Cancelled.
    void cancel(uint64_t ticket);
    size_t pending() const { return pending_.size(); }

private:
    struct Pending {
        Callback done;
        std::string cancellation_id;
    };
    void finish(uint64_t ticket, const Answer& answer);

    std::unique_ptr<sdbus::IProxy> proxy_;
    std::map<uint64_t, Pending> pending_;
    uint64_t next_ticket_ = 1;
    std::string id_prefix_;
};

} // namespace promiscd::auth
