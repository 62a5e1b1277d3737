#include "client/varlink_records.hpp"

#include <ctime>
#include <limits>

namespace promiscd::client::varlink {

using nlohmann::json;

std::string str(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool boolean(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_boolean() && it->get<bool>();
}

namespace {

// j[key] when it is a whole number that fits T (JSON text gives unsigned
// numbers, a json built in C++ may hold them signed).
template <typename T>
std::optional<T> whole(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_number_integer())
        return std::nullopt;
    if (it->is_number_unsigned()) {
        const auto v = it->get<std::uint64_t>();
        if (v <= std::numeric_limits<T>::max())
            return static_cast<T>(v);
        return std::nullopt;
    }
    const auto v = it->get<std::int64_t>();
    if (v >= 0 && static_cast<std::uint64_t>(v) <= std::numeric_limits<T>::max())
        return static_cast<T>(v);
    return std::nullopt;
}

} // namespace

LinkInfo link_of(const json& j) {
    LinkInfo l;
    l.name = str(j, "name");
    l.index = num<std::int32_t>(j, "index");
    l.admin_flag = boolean(j, "admin_flag");
    l.promiscuity = num<std::uint32_t>(j, "promiscuity");
    l.promiscuous = boolean(j, "promiscuous");
    l.origin = str(j, "origin");
    l.leases = num<std::uint32_t>(j, "leases");
    l.policy = str(j, "policy");
    l.external_changes = whole<std::uint64_t>(j, "external_changes");
    l.netns = str(j, "netns");
    l.netns_inode = num<std::uint64_t>(j, "netns_inode");
    return l;
}

LeaseInfo lease_of(const json& j) {
    LeaseInfo l;
    l.id = num<std::uint64_t>(j, "id");
    l.interface = str(j, "interface");
    l.state = str(j, "state");
    l.owner = str(j, "owner");
    l.uid = num<std::uint32_t>(j, "uid");
    l.pid = num<std::uint32_t>(j, "pid");
    l.command = str(j, "command");
    l.reason = str(j, "reason");
    l.acquired_usec = num<std::uint64_t>(j, "acquired");
    l.expires_usec = num<std::uint64_t>(j, "expires");
    l.netns = str(j, "netns");
    l.netns_inode = num<std::uint64_t>(j, "netns_inode");
    return l;
}

LeaseEnd end_of(const json& j, std::string reason) {
    LeaseEnd end;
    end.reason = std::move(reason);
    end.revoked_by = str(j, "revoked_by");
    end.message = str(j, "message");
    end.revoked_by_uid = whole<std::uint32_t>(j, "revoked_by_uid");
    return end;
}

namespace {

// A lease record with its D-Bus object path.
LeaseInfo lease_with_path(const json& j) {
    LeaseInfo l = lease_of(j);
    l.path = lease_path(l.id);
    return l;
}

std::uint64_t now_usec() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

} // namespace

void EventDecoder::seed(const json& links, const json& leases) {
    links_.clear();
    leases_.clear();
    if (links.is_array())
        for (const auto& l : links)
            links_[str(l, "name")] = link_of(l);
    if (leases.is_array())
        for (const auto& l : leases) {
            auto x = lease_with_path(l);
            leases_[x.id] = x;
        }
}

std::optional<Event> EventDecoder::decode(const json& j) {
    using Type = Event::Type;
    if (!j.is_object())
        return std::nullopt;
    Event e;
    e.timestamp_usec = num<std::uint64_t>(j, "time");
    const std::string type = str(j, "type");
    const auto l = j.find("lease");
    const LeaseInfo lease = l != j.end() && l->is_object() ? lease_with_path(*l) : LeaseInfo{};
    auto previous = [&] {
        auto prev = leases_.find(lease.id);
        return prev != leases_.end() ? prev->second : lease;
    };
    if (type == "lease-granted") {
        e.type = Type::LeaseGranted;
        e.lease = lease;
        leases_[lease.id] = lease;
    } else if (type == "lease-state" || type == "lease-renewed") {
        e.type = Type::LeaseChanged;
        e.lease = lease;
        e.previous_lease = previous();
        if (type == "lease-renewed") {
            e.changed.push_back("Expires");
        } else {
            if (e.previous_lease.state != lease.state)
                e.changed.push_back("State");
            if (e.previous_lease.expires_usec != lease.expires_usec)
                e.changed.push_back("Expires");
            if (e.previous_lease.interface != lease.interface)
                e.changed.push_back("Interface");
        }
        leases_[lease.id] = lease;
    } else if (type == "lease-ended") {
        e.type = Type::LeaseEnded;
        e.lease = lease;
        e.reason = str(j, "reason");
        e.end = end_of(j, e.reason);
        leases_.erase(lease.id);
    } else if (type == "capture-started" || type == "capture-finished") {
        e.type = type == "capture-started" ? Type::CaptureStarted : Type::CaptureFinished;
        e.capture.id = num<std::uint64_t>(j, "capture");
        e.capture.interface = str(j, "interface");
        e.reason = str(j, "reason");
    } else if (type == "flag") {
        e.type = Type::FlagChanged;
        e.interface = str(j, "interface");
        e.flag_on = boolean(j, "flag");
        e.by = str(j, "by");
        auto& link = links_[e.interface];
        link.name = e.interface;
        link.admin_flag = e.flag_on;
    } else if (type == "conflict") {
        e.type = Type::Conflict;
        e.interface = str(j, "interface");
        e.clears = num<std::uint32_t>(j, "clears");
    } else {
        return std::nullopt; // "subscribed", or a type this client does not know
    }
    return e;
}

Event EventDecoder::stopped() {
    Event e;
    e.type = Event::Type::DaemonStopped;
    e.timestamp_usec = now_usec();
    return e;
}

std::vector<LinkInfo> EventDecoder::links() const {
    std::vector<LinkInfo> out;
    for (const auto& [name, l] : links_)
        out.push_back(l);
    return out;
}

std::vector<LeaseInfo> EventDecoder::leases() const {
    std::vector<LeaseInfo> out;
    for (const auto& [id, l] : leases_)
        out.push_back(l);
    return out;
}

} // namespace promiscd::client::varlink
