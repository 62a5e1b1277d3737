// The D-Bus front end: the Manager and ObjectManager at the root, a Link
// object per link and a Lease object per lease, owners tracked by their
// unique names. It translates; the decisions are the Service's and the
// Authorizer's.
#pragma once

#include "auth/authorizer.hpp"
#include "bus/peer_credentials.hpp"
#include "capture/capture_manager.hpp"
#include "service.hpp"

#include <functional>
#include <map>
#include <memory>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/Message.h>
#include <set>
#include <string>

namespace promiscd::bus {

class BusFrontend : public Listener, public capture::CaptureListener {
public:
    // Without a capture manager, OpenCapture answers NotSupported.
    BusFrontend(Service& service, sdbus::IConnection& connection, PeerCredentials& credentials,
                auth::Authorizer& authorizer, capture::CaptureManager* captures = nullptr);
    ~BusFrontend() override;
    BusFrontend(const BusFrontend&) = delete;
    BusFrontend& operator=(const BusFrontend&) = delete;

    // Publish objects for the links and leases the service has now
    // (after start-up and crash recovery).
    void publish();

    void on_command(const core::Command& command) override;
    void on_link_changed(const core::LinkView& link) override;
    void on_link_removed(int ifindex, const std::string& name) override;
    void on_capture_counters(const capture::CaptureInfo& capture) override;
    void on_capture_finished(const capture::CaptureInfo& capture,
                             capture::FinishReason reason) override;

    static std::string lease_path(core::LeaseId id);
    static std::string link_path(int ifindex);
    static std::string capture_path(capture::CaptureId id);

    // Implementation details shared with the object classes in the .cpp.
    class Root;
    class LinkObject;
    class LeaseObject;
    class CaptureObject;
    struct Pending;
    using Fail = std::function<void(const sdbus::Error&)>;
    using Proceed = std::function<void(const auth::Caller&)>;
    // Identify the caller of `msg` and, when `action` is set, authorize it;
    // then proceed, or fail with the error to return. Cancelled (neither
    // runs) when the caller disconnects first.
    void with_caller(const sdbus::Message& msg, std::optional<auth::Action> action,
                     const std::map<std::string, std::string>& details, Proceed proceed, Fail fail);
    // Like with_caller, for an operation on a lease: its owner may; anyone
    // else needs org.promiscd.manage, else NotOwner.
    void with_lease_owner_or_manager(const sdbus::Message& msg, core::LeaseId id,
                                     std::function<void(const auth::Caller&, bool owner)> proceed,
                                     Fail fail);
    // Like with_lease_owner_or_manager, for a capture.
    void with_capture_owner_or_manager(const sdbus::Message& msg, capture::CaptureId id,
                                       Proceed proceed, Fail fail);
    Service& service() { return service_; }
    capture::CaptureManager* captures() { return captures_; }
    void add_capture_object(capture::CaptureId id);
    uint64_t realtime(core::Usec monotonic) const;

private:
    void on_name_owner_changed(sdbus::Message& msg);
    void forget(const std::shared_ptr<Pending>& pending);
    // For a caller who does not own `what`: proceed if authorized for
    // org.promiscd.manage, else fail with NotOwner.
    void require_manager(const auth::Caller& caller, const std::string& what,
                         std::function<void()> proceed, Fail fail);
    void apply(const core::Command& command);
    void add_lease_object(core::LeaseId id);
    void audit_denied(const core::LeaseRequest& request, const auth::Caller* caller,
                      const std::string& why);
    void refresh_link(const std::string& name);

    Service& service_;
    sdbus::IConnection& connection_;
    PeerCredentials& credentials_;
    auth::Authorizer& authorizer_;
    std::unique_ptr<Root> root_;
    std::map<int, std::unique_ptr<LinkObject>> links_;
    std::map<core::LeaseId, std::unique_ptr<LeaseObject>> leases_;
    capture::CaptureManager* captures_;
    std::map<capture::CaptureId, std::unique_ptr<CaptureObject>> capture_objects_;
    std::multimap<std::string, std::shared_ptr<Pending>> pending_; // by sender
    sdbus::Slot name_owner_slot_;
    // Objects whose lease or link is gone are unregistered from a deferred
    // event source: a lease may end inside its own method call, and sd-bus
    // must not lose the object it is dispatching to.
    std::vector<std::unique_ptr<LeaseObject>> doomed_leases_;
    std::vector<std::unique_ptr<LinkObject>> doomed_links_;
    std::vector<std::unique_ptr<CaptureObject>> doomed_captures_;
    EventSourcePtr reaper_;
    void schedule_reap();
    static int on_reap(sd_event_source* s, void* userdata);
};

// core::Error as the D-Bus error of the contract.
sdbus::Error to_bus_error(const core::Error& e);

} // namespace promiscd::bus
