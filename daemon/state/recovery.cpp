#include "state/recovery.hpp"

#include <algorithm>

namespace promiscd::state {

bool survives(const core::Lease& l, const SurvivalContext& c) {
    if (l.capture)
        return false;
    if (l.owner.transport == "config") {
        if (l.owner.id == "hold")
            return c.holds.count(l.interface) > 0;
        return l.owner.id == "static" && c.static_leases.count(l.interface) > 0;
    }
    if (l.owner.transport == "dbus")
        return c.same_bus && c.name_has_owner && c.name_has_owner(l.owner.id);
    return false;
}

Plan plan_recovery(const Records& r, const SurvivalContext& c, const std::vector<int>& flagged) {
    Plan p;
    if (r.unusable) {
        p.adoption.next_id = r.next_id;
        p.unknown = flagged;
        p.adoption.unknown = p.unknown;
        return p;
    }
    core::LeaseId next = r.next_id;
    std::set<std::string> held;
    for (const auto& l : r.leases) {
        next = std::max(next, l.id + 1);
        if (survives(l, c)) {
            p.adoption.leases.push_back(l);
            held.insert(l.interface);
        } else {
            p.ended.push_back(l);
        }
    }
    p.adoption.next_id = next;
    for (const auto& [idx, name] : r.flags) {
        // A damaged lease record may have been the one holding this link:
        // its flag is left alone rather than cleared under a live client.
        if (r.damaged_leases > 0 && !held.count(name))
            p.unknown.push_back(idx);
        else
            p.adoption.flags.emplace_back(idx, name);
    }
    for (int idx : r.damaged_flags)
        if (std::find(flagged.begin(), flagged.end(), idx) != flagged.end())
            p.unknown.push_back(idx);
    p.adoption.unknown = p.unknown;
    return p;
}

} // namespace promiscd::state
