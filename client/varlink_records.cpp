#include "client/varlink_records.hpp"

namespace promiscd::client::varlink {

using nlohmann::json;

std::string str(const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

LinkInfo link_of(const json& j) {
    LinkInfo l;
    l.name = str(j, "name");
    l.index = num<std::int32_t>(j, "index");
    l.admin_flag = j.value("admin_flag", false);
    l.promiscuity = num<std::uint32_t>(j, "promiscuity");
    l.promiscuous = j.value("promiscuous", false);
    l.origin = str(j, "origin");
    l.leases = num<std::uint32_t>(j, "leases");
    l.policy = str(j, "policy");
    if (auto it = j.find("external_changes"); it != j.end() && it->is_number_unsigned())
        l.external_changes = it->get<std::uint64_t>();
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
    return l;
}

LeaseEnd end_of(const json& j, std::string reason) {
    LeaseEnd end;
    end.reason = std::move(reason);
    end.revoked_by = str(j, "revoked_by");
    end.message = str(j, "message");
    if (auto it = j.find("revoked_by_uid"); it != j.end() && it->is_number_unsigned())
        end.revoked_by_uid = it->get<std::uint32_t>();
    return end;
}

} // namespace promiscd::client::varlink
