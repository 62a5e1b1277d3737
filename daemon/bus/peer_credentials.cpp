#include "peer_credentials.hpp"

#include <fstream>
#include <sdbus-c++/Types.h>

namespace promiscd::bus {

namespace {

std::string command_of(uint32_t pid) {
    if (pid == 0)
        return {};
    std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(f, comm);
    return comm;
}

} // namespace

PeerCredentials::PeerCredentials(sdbus::IConnection& connection)
    : driver_(sdbus::createProxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus")) {
    driver_->finishRegistration();
}

PeerCredentials::~PeerCredentials() = default;

void PeerCredentials::lookup(const std::string& name, Callback done) {
    if (auto it = cache_.find(name); it != cache_.end()) {
        done(nullptr, it->second);
        return;
    }
    driver_->callMethodAsync("GetConnectionCredentials")
        .onInterface("org.freedesktop.DBus")
        .withArguments(name)
        .uponReplyInvoke(
            [this, name, done = std::move(done)](const sdbus::Error* error,
                                                 std::map<std::string, sdbus::Variant> creds) {
                if (error) {
                    done(error, {});
                    return;
                }
                auto uid = creds.find("UnixUserID");
                if (uid == creds.end() || uid->second.peekValueType() != "u") {
                    sdbus::Error e("org.freedesktop.DBus.Error.AccessDenied",
                                   "the bus did not say which user " + name + " is");
                    done(&e, {});
                    return;
                }
                PeerInfo info;
                info.uid = uid->second.get<uint32_t>();
                if (auto pid = creds.find("ProcessID");
                    pid != creds.end() && pid->second.peekValueType() == "u")
                    info.pid = pid->second.get<uint32_t>();
                info.command = command_of(info.pid);
                cache_[name] = info;
                done(nullptr, info);
            });
}

bool PeerCredentials::name_has_owner(const std::string& name) {
    bool has = false;
    driver_->callMethod("NameHasOwner")
        .onInterface("org.freedesktop.DBus")
        .withArguments(name)
        .storeResultsTo(has);
    return has;
}

} // namespace promiscd::bus
