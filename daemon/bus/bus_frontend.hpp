// The D-Bus front end, method side: the Manager at the root (with the
// ObjectManager), and the methods of Lease and Capture objects. Each method
// decodes its arguments, identifies the caller through the bus driver, calls
// one operation and encodes the answer; owners are tracked by their unique
// names (NameOwnerChanged). No policy, no message of its own, no audit here.
#pragma once

#include "bus/bus_guard.hpp"
#include "bus/peer_credentials.hpp"
#include "ops/operations.hpp"
#include "ops/requests.hpp"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/Message.h>
#include <sdbus-c++/Types.h>
#include <string>
#include <systemd/sd-bus.h>

namespace promiscd::bus {

// core::Error as the D-Bus error of the contract.
sdbus::Error to_bus_error(const core::Error& e);
// An a{sv} as the operations layer reads options.
ops::Options options_from(const std::map<std::string, sdbus::Variant>& options);

std::string lease_path(core::LeaseId id);
std::string link_path(int ifindex);
std::string capture_path(service::CaptureId id);

class BusFrontend {
public:
    BusFrontend(sdbus::IConnection& connection, PeerCredentials& credentials, BusGuard* guard,
                ops::Operations& operations);
    ~BusFrontend();
    BusFrontend(const BusFrontend&) = delete;
    BusFrontend& operator=(const BusFrontend&) = delete;

    // Root signals, for the object projection.
    void emit_conflict(const std::string& interface, unsigned clears);
    void emit_flag_changed(const std::string& interface, bool on, const std::string& by);

    // Methods of Lease and Capture objects (the objects forward them here;
    // the call is answered later, from the loop).
    void lease_release(sd_bus_message* call, core::LeaseId id);
    void lease_renew(sd_bus_message* call, core::LeaseId id, uint64_t ttl);
    void capture_stop(sd_bus_message* call, service::CaptureId id);

    class Root;

private:
    friend class Root;
    using Proceed = std::function<void(const ops::Caller&)>;
    using Fail = std::function<void(const sdbus::Error&)>;
    // Identify the sender (bus driver, cached per unique name), then
    // proceed; a sender that leaves first gets nothing.
    void with_caller(const std::string& sender, bool interactive, Proceed proceed, Fail fail);
    void with_caller(const sdbus::Message& msg, Proceed proceed, Fail fail);
    void on_name_owner_changed(sdbus::Message& msg);

    sdbus::IConnection& connection_;
    PeerCredentials& credentials_;
    BusGuard* guard_;
    ops::Operations& ops_;
    std::unique_ptr<Root> root_;
    sdbus::Slot name_owner_slot_;
};

} // namespace promiscd::bus
