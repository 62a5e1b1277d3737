// The operations layer: every request of every transport goes through here,
// in one shape (hostnamed's method_set_*): validate and check what can be
// checked cheaply, no-op check, authorize (fail closed, through the bounded
// queue), act through the services, audit, reply. Front ends only decode and
// encode, so the same request gets the same answer, error name and message on
// D-Bus and on varlink. Replies run from the loop, maybe before the call
// returns; none runs after caller_gone().
#pragma once

#include "auth/authorizer.hpp"
#include "net/netns.hpp"
#include "ops/audit.hpp"
#include "ops/caller.hpp"
#include "service/capture_service.hpp"
#include "service/lease_service.hpp"

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>

namespace promiscd::ops {

struct Unit {};
template <typename T>
using Result = std::variant<T, core::Error>;
template <typename T>
using Reply = std::function<void(Result<T>)>;

class Operations {
public:
    // captures may be null (no capture in this daemon).
    Operations(service::LeaseService& leases, service::CaptureService* captures,
               auth::Authorizer& authorizer, Audit& audit);
    ~Operations();
    Operations(const Operations&) = delete;
    Operations& operator=(const Operations&) = delete;

    // request.owner is set from the caller.
    void acquire(const Caller& caller, core::LeaseRequest request, Reply<core::LeaseId> reply);
    // The owner's release; anyone else's is a revocation (org.promiscd.manage,
    // else NotOwner).
    void release(const Caller& caller, core::LeaseId id, Reply<Unit> reply);
    void renew(const Caller& caller, core::LeaseId id, core::Usec ttl, Reply<Unit> reply);
    // One's own lease: the same as release (no authorization). Anyone else's:
    // org.promiscd.manage; the reason reaches the owner and the audit record.
    void revoke(const Caller& caller, core::LeaseId id, std::string reason, Reply<Unit> reply);
    void set_link_policy(const Caller& caller, std::string interface, core::Policy policy,
                         Reply<Unit> reply);
    void open_capture(const Caller& caller, service::CaptureRequest request,
                      Reply<service::OpenedCapture> reply);
    void stop_capture(const Caller& caller, service::CaptureId id, Reply<Unit> reply);

    // The caller left (its bus name went away, its connection closed): what
    // it was waiting for is dropped and never answered; its leases and
    // captures end (owner-gone).
    void caller_gone(const std::string& transport, const std::string& id);
    // Only the first half of caller_gone(): drop what it waits for (safe from
    // inside a transport's own callbacks); the leases end with caller_gone().
    void cancel_pending(const std::string& transport, const std::string& id);

    size_t pending() const { return pending_.size(); }
    // Option "netns" refused (Failed) when false: config namespaces.enabled.
    void set_namespaces_enabled(bool enabled) { namespaces_enabled_ = enabled; }
    service::LeaseService& leases() { return leases_; }
    service::CaptureService* captures() { return captures_; }

private:
    struct Pending;
    using PendingPtr = std::shared_ptr<Pending>;
    PendingPtr track(const Caller& caller);
    void untrack(const PendingPtr& p);
    // Authorize `action` for caller, then run `proceed`; a refusal goes to
    // `refused` (which may rewrite it). Nothing runs once the caller is gone.
    void authorized(const Caller& caller, auth::Action action,
                    std::map<std::string, std::string> details, std::function<void()> proceed,
                    std::function<void(const core::Error&)> refused);
    // For a caller who does not own the thing: org.promiscd.manage, else
    // NotOwner naming it.
    void as_manager(const Caller& caller, const std::string& what,
                    std::map<std::string, std::string> details, std::function<void()> proceed,
                    std::function<void(const core::Error&)> refused);
    core::Revocation revocation_by(const Caller& caller, std::string message) const;
    // After org.promiscd.netns (and the raw socket's action): opens the
    // namespace again, qualifies the link, starts the capture.
    void open_netns_capture(const Caller& caller, service::CaptureRequest request,
                            const net::Netns& ns, Reply<service::OpenedCapture> reply,
                            std::function<void(const core::Error&)> refuse);
    void start_capture(const Caller& caller, service::CaptureRequest request,
                       Reply<service::OpenedCapture> reply,
                       std::function<void(const core::Error&)> refuse);
    // The namespace a request names, open; nullptr for none or promiscd's
    // own. Throws core::Error.
    std::shared_ptr<net::Netns> open_netns(const std::string& spec,
                                           const std::string& interface) const;
    // The namespace open_netns() found, opened again (after authorization);
    // throws core::Error(Failed) when the name now leads elsewhere.
    static net::Netns reopen(const net::Netns& named);

    service::LeaseService& leases_;
    service::CaptureService* captures_;
    auth::Authorizer& authorizer_;
    Audit& audit_;
    std::multimap<std::string, PendingPtr> pending_; // by caller key
    bool namespaces_enabled_ = true;
};

} // namespace promiscd::ops
