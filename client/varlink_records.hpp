// The records of org.promiscd.promisc (Link, Lease, and how a lease ended)
// decoded into the client's structs, for every varlink client of the project:
// promiscctl --transport=varlink and libpromisc read them the same way.
// Missing or mistyped members read as empty or zero, never throw.
#pragma once

#include "client/promisc_client.hpp"

#include <nlohmann/json.hpp>
#include <string>

namespace promiscd::client::varlink {

// j[key] when it is a string, else "".
std::string str(const nlohmann::json& j, const char* key);

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

} // namespace promiscd::client::varlink
