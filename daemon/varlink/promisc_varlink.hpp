// The org.promiscd.promisc varlink interface: the same operations as the D-Bus
// Manager, for servers without a system bus. Each method decodes its
// parameters, identifies the caller (SO_PEERCRED), calls one operation and
// encodes the answer. A lease lives as long as the connection that acquired
// it. Monitor streams and Acquire-with-"more" replies are projections of the
// change stream.
#pragma once

#include "ops/operations.hpp"
#include "service/changes.hpp"
#include "varlink/promisc_calls.hpp"
#include "varlink/varlink_server.hpp"
#include "varlink/varlink_service.hpp"

#include <map>
#include <memory>
#include <set>

namespace promiscd::varlink {

class PromiscVarlink final : public Handler, public service::ChangeListener {
public:
    explicit PromiscVarlink(ops::Operations& operations);
    ~PromiscVarlink() override;
    PromiscVarlink(const PromiscVarlink&) = delete;
    PromiscVarlink& operator=(const PromiscVarlink&) = delete;

    // Handler
    void call(const std::shared_ptr<Connection>& connection, Call call) override;
    void closed(Connection& connection) override;
    bool holds(const Connection& connection) const override;
    std::string internal_error() const override;

    // ChangeListener
    void on_change(const service::Change& change) override;

    static std::string owner_id(const Connection& c) { return std::to_string(c.id()); }

private:
    using ConnPtr = std::shared_ptr<Connection>;
    // The caller behind a connection, or an error when it cannot be trusted.
    std::optional<ops::Caller> caller_of(const ConnPtr& c, bool interactive);
    // One operation each, for a call decode_call() accepted, once the
    // caller is known.
    void operate(const ConnPtr& c, const Call& call, const ops::Caller& caller, calls::Acquire r);
    void operate(const ConnPtr& c, const Call& call, const ops::Caller& caller, calls::Release r);
    void operate(const ConnPtr& c, const Call& call, const ops::Caller& caller, calls::Renew r);
    void operate(const ConnPtr& c, const Call& call, const ops::Caller& caller, calls::Revoke r);
    void operate(const ConnPtr& c, const Call& call, const ops::Caller& caller,
                 calls::SetLinkPolicy r);
    void operate(const ConnPtr& c, const Call& call, const ops::Caller& caller,
                 calls::OpenCapture r);
    void operate(const ConnPtr& c, const Call& call, const ops::Caller& caller,
                 calls::StopCapture r);
    void monitor(const ConnPtr& c, const Call& call);
    void broadcast(nlohmann::json event);
    nlohmann::json lease_json(const core::Lease& l) const;
    nlohmann::json link_json(const core::LinkView& v) const;

    ops::Operations& ops_;
    service::LeaseService& leases_;
    Service service_; // org.varlink.service, and the errors for unknown calls
    // Acquire calls with "more": lease id -> the connection to tell.
    std::map<core::LeaseId, std::weak_ptr<Connection>> watchers_;
    std::map<uint64_t, std::weak_ptr<Connection>> monitors_;
    // Owners of closed connections, whose leases end from a deferred source.
    std::vector<std::string> gone_;
    EventSourcePtr deferred_;
    static int on_deferred(sd_event_source* s, void* userdata);
};

// The interface description (the IDL), as GetInterfaceDescription returns it.
const char* interface_description();

} // namespace promiscd::varlink
