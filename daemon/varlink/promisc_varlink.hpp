// The org.promiscd.Promisc varlink interface: the same operations as the D-Bus
// Manager, for servers without a system bus. A lease lives as long as the
// connection that acquired it. Translation only: decisions are the Service's
// and the Authorizer's.
#pragma once

#include "auth/authorizer.hpp"
#include "capture/capture_manager.hpp"
#include "service.hpp"
#include "varlink/varlink_server.hpp"

#include <map>
#include <memory>
#include <set>

namespace promiscd::varlink {

class PromiscVarlink : public Handler, public Listener {
public:
    // captures may be null: OpenCapture is then not implemented.
    PromiscVarlink(Service& service, auth::Authorizer& authorizer,
                   capture::CaptureManager* captures);
    ~PromiscVarlink() override;
    PromiscVarlink(const PromiscVarlink&) = delete;
    PromiscVarlink& operator=(const PromiscVarlink&) = delete;

    // Handler
    void call(const std::shared_ptr<Connection>& connection, Call call) override;
    void closed(Connection& connection) override;

    // Listener
    void on_command(const core::Command& command) override;
    void on_lease_granted(const core::Lease& lease) override;

    static std::string owner_id(const Connection& c) { return "varlink:" + std::to_string(c.id()); }

private:
    using ConnPtr = std::shared_ptr<Connection>;
    using Proceed = std::function<void(const auth::Caller&)>;
    using Refuse = std::function<core::Error(const core::Error&)>; // rewrites a denial
    static auth::Caller caller_of(const Connection& c);
    void authorize(const ConnPtr& c, auth::Action action, Proceed proceed, Refuse refuse = {});
    void method_acquire(const ConnPtr& c, const Call& call);
    void method_release_or_renew(const ConnPtr& c, const Call& call, bool renew);
    void method_revoke(const ConnPtr& c, const Call& call);
    void method_set_policy(const ConnPtr& c, const Call& call);
    void method_monitor(const ConnPtr& c, const Call& call);
    void method_open_capture(const ConnPtr& c, const Call& call);
    void broadcast(const nlohmann::json& event);
    nlohmann::json lease_json(const core::Lease& l) const;
    nlohmann::json link_json(const core::LinkView& v) const;

    Service& service_;
    auth::Authorizer& authorizer_;
    // Acquire calls with "more": lease id -> the connection to tell.
    std::map<core::LeaseId, std::weak_ptr<Connection>> watchers_;
    std::map<uint64_t, std::weak_ptr<Connection>> monitors_;
    // Pending polkit checks per connection, cancelled when it closes.
    std::multimap<uint64_t, uint64_t> tickets_;
    capture::CaptureManager* captures_;
    // Owners of closed connections, whose leases end from a deferred source.
    std::vector<std::string> gone_;
    EventSourcePtr deferred_;
    static int on_deferred(sd_event_source* s, void* userdata);
};

// The interface description (the IDL), as GetInterfaceDescription returns it.
const char* interface_description();

} // namespace promiscd::varlink
