// Who a D-Bus caller is, from the bus driver (GetConnectionCredentials),
// never from /proc or from the client. Cached per unique name, which the bus
// never reuses, and forgotten when the name goes away.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <sdbus-c++/Error.h>
#include <sdbus-c++/IConnection.h>
#include <sdbus-c++/IProxy.h>
#include <string>

namespace promiscd::bus {

struct PeerInfo {
    uint32_t uid = 0;
    uint32_t pid = 0;
    std::string command; // /proc/PID/comm: for display only, never for decisions
};

class PeerCredentials {
public:
    explicit PeerCredentials(sdbus::IConnection& connection);
    ~PeerCredentials();
    PeerCredentials(const PeerCredentials&) = delete;
    PeerCredentials& operator=(const PeerCredentials&) = delete;

    // error is null on success. May call back right away (cached).
    using Callback = std::function<void(const sdbus::Error* error, const PeerInfo& info)>;
    void lookup(const std::string& unique_name, Callback done);
    void forget(const std::string& unique_name) { cache_.erase(unique_name); }
    // Blocking; only for start-up (crash recovery).
    bool name_has_owner(const std::string& name);

private:
    std::unique_ptr<sdbus::IProxy> driver_;
    std::map<std::string, PeerInfo> cache_;
};

} // namespace promiscd::bus
