// The records of org.promiscd.promisc (Link, Lease, and how a lease ended)
// decoded into the client's structs, for every varlink client of the project:
// promiscctl --transport=varlink and libpromisc read them the same way.
// Missing or mistyped members read as empty or zero, never throw.
#pragma once

#include "client/promisc_client.hpp"

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace promiscd::client::varlink {

// j[key] when it is a string, else "".
std::string str(const nlohmann::json& j, const char* key);

// j[key] when it is a boolean, else false.
bool boolean(const nlohmann::json& j, const char* key);

// j[key] when it is a number, else T{}.
template <typename T>
T num(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<T>() : T{};
}

// A Link record (ListLinks). path is left empty (varlink has no objects).
LinkInfo link_of(const nlohmann::json& j);
// A Lease record (ListLeases, Acquire, Monitor events). path is left empty.
LeaseInfo lease_of(const nlohmann::json& j);
// How a lease ended, from an Acquire's last reply or a lease-ended event:
// reason, and for a revocation who revoked it and why.
LeaseEnd end_of(const nlohmann::json& j, std::string reason);

// The events of a Monitor stream as Events, with the state they apply to:
// seeded with ListLinks and ListLeases, it fills in a changed lease's
// previous record and the names of what changed, as D-Bus's signals do.
// Leases carry their D-Bus object path (lease_path()), which promiscctl
// shows whatever the transport.
class EventDecoder {
public:
    // Replies of ListLinks and ListLeases.
    void seed(const nlohmann::json& links, const nlohmann::json& leases);
    // One reply's "event" member; nothing for "subscribed" and for types
    // this client does not know.
    std::optional<Event> decode(const nlohmann::json& event);
    // The stream closed: DaemonStopped, now.
    static Event stopped();

    std::size_t link_count() const noexcept { return links_.size(); }
    std::size_t lease_count() const noexcept { return leases_.size(); }
    std::vector<LinkInfo> links() const;
    std::vector<LeaseInfo> leases() const;

private:
    std::map<std::string, LinkInfo> links_;
    std::map<std::uint64_t, LeaseInfo> leases_;
};

} // namespace promiscd::client::varlink
