// Who a D-Bus caller is, from the bus driver (GetConnectionCredentials),
// never from /proc or from the client. Cached per unique name, which the bus
// never reuses, and forgotten when the name goes away. Lookups in flight are
// bounded (they count against the bus's limit of pending replies), the rest
// wait in a bounded queue; concurrent lookups of one name share one call.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <sdbus-c++/Error.h>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IProxy.h>
#include <string>
#include <vector>

namespace promiscd::bus {

struct PeerInfo {
    uint32_t uid = 0;
    uint32_t pid = 0;
    std::string command; // /proc/PID/comm: for display only, never for decisions
};

struct CredentialLimits {
    unsigned in_flight = 32;
    unsigned queued = 1024; // names waiting for a slot
    size_t cached = 65536;  // names remembered (beyond: asked each time)
};

class PeerCredentials {
public:
    explicit PeerCredentials(sdbus::IConnection& connection, CredentialLimits limits = {});
    ~PeerCredentials();
    PeerCredentials(const PeerCredentials&) = delete;
    PeerCredentials& operator=(const PeerCredentials&) = delete;

    // error is null on success. May call back right away (cached, or the
    // queue is full: org.freedesktop.DBus.Error.LimitsExceeded).
    using Callback = std::function<void(const sdbus::Error* error, const PeerInfo& info)>;
    void lookup(const std::string& unique_name, Callback done);
    // The name left the bus: forget it, and drop its queued lookups.
    void forget(const std::string& unique_name);
    // Blocking; only for start-up (crash recovery).
    bool name_has_owner(const std::string& name);
    // The bus's id (org.freedesktop.DBus.GetId). Blocking; start-up only.
    std::string bus_id();
    sdbus::IProxy& driver() { return *driver_; }

    size_t in_flight() const { return in_flight_; }
    size_t cached() const { return cache_.size(); }

private:
    void pump();
    void ask(const std::string& name);
    void deliver(const std::string& name, const sdbus::Error* error, const PeerInfo& info);

    std::unique_ptr<sdbus::IProxy> driver_;
    CredentialLimits limits_;
    std::map<std::string, PeerInfo> cache_;
    std::map<std::string, std::vector<Callback>> waiting_; // queued or in flight
    std::deque<std::string> queue_;                        // names not yet asked
    unsigned in_flight_ = 0;
};

} // namespace promiscd::bus
