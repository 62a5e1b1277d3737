#include "peer_credentials.hpp"

#include <algorithm>
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

PeerCredentials::PeerCredentials(sdbus::IConnection& connection, CredentialLimits limits)
    : driver_(sdbus::createProxy(connection, "org.freedesktop.DBus", "/org/freedesktop/DBus")),
      limits_(limits) {
    driver_->finishRegistration();
}

PeerCredentials::~PeerCredentials() = default;

void PeerCredentials::lookup(const std::string& name, Callback done) {
    if (auto it = cache_.find(name); it != cache_.end()) {
        done(nullptr, it->second);
        return;
    }
    if (auto it = waiting_.find(name); it != waiting_.end()) {
        it->second.push_back(std::move(done));
        return;
    }
    if (queue_.size() >= limits_.queued) {
        sdbus::Error e("org.freedesktop.DBus.Error.LimitsExceeded",
                       "too many callers are waiting to be identified (" +
                           std::to_string(queue_.size()) + "); try again later");
        done(&e, {});
        return;
    }
    waiting_[name].push_back(std::move(done));
    queue_.push_back(name);
    pump();
}

void PeerCredentials::forget(const std::string& name) {
    cache_.erase(name);
    // Whoever waited for it was cancelled with the name; a lookup already
    // asked finds nobody waiting when its reply comes, and is not cached.
    waiting_.erase(name);
    if (auto q = std::find(queue_.begin(), queue_.end(), name); q != queue_.end())
        queue_.erase(q);
}

void PeerCredentials::pump() {
    while (in_flight_ < limits_.in_flight && !queue_.empty()) {
        std::string name = std::move(queue_.front());
        queue_.pop_front();
        ask(name);
    }
}

void PeerCredentials::ask(const std::string& name) {
    ++in_flight_;
    try {
        driver_->callMethodAsync("GetConnectionCredentials")
            .onInterface("org.freedesktop.DBus")
            .withArguments(name)
            .uponReplyInvoke([this, name](const sdbus::Error* error,
                                          std::map<std::string, sdbus::Variant> creds) {
                --in_flight_;
                if (error) {
                    deliver(name, error, {});
                } else if (auto uid = creds.find("UnixUserID");
                           uid == creds.end() || uid->second.peekValueType() != "u") {
                    sdbus::Error e("org.freedesktop.DBus.Error.AccessDenied",
                                   "the bus did not say which user " + name + " is");
                    deliver(name, &e, {});
                } else {
                    PeerInfo info;
                    info.uid = uid->second.get<uint32_t>();
                    if (auto pid = creds.find("ProcessID");
                        pid != creds.end() && pid->second.peekValueType() == "u")
                        info.pid = pid->second.get<uint32_t>();
                    info.command = command_of(info.pid);
                    deliver(name, nullptr, info);
                }
                pump();
            });
    } catch (const sdbus::Error& e) {
        --in_flight_;
        deliver(name, &e, {});
    }
}

void PeerCredentials::deliver(const std::string& name, const sdbus::Error* error,
                              const PeerInfo& info) {
    auto it = waiting_.find(name);
    if (it == waiting_.end())
        return; // forgotten meanwhile: the name has left the bus
    auto callbacks = std::move(it->second);
    waiting_.erase(it);
    if (!error && cache_.size() < limits_.cached)
        cache_[name] = info;
    for (auto& cb : callbacks)
        cb(error, info);
}

bool PeerCredentials::name_has_owner(const std::string& name) {
    bool has = false;
    driver_->callMethod("NameHasOwner")
        .onInterface("org.freedesktop.DBus")
        .withArguments(name)
        .storeResultsTo(has);
    return has;
}

std::string PeerCredentials::bus_id() {
    std::string id;
    driver_->callMethod("GetId").onInterface("org.freedesktop.DBus").storeResultsTo(id);
    return id;
}

} // namespace promiscd::bus
