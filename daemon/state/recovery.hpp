// Crash recovery's rules, pure: which leases of an earlier run survive it,
// which flags promiscd still owes a clear, and which it can no longer account
// for. Never guesses: a flag the records do not name is left alone, and one
// whose records are damaged is "unknown" (left alone, logged).
#pragma once

#include "service/lease_service.hpp"
#include "state/record_store.hpp"

#include <functional>
#include <set>
#include <string>
#include <vector>

namespace promiscd::state {

struct SurvivalContext {
    // The bus this run serves is the one the earlier run served: unique
    // names mean the same clients (they are never reused on one bus, and
    // are on another).
    bool same_bus = false;
    std::set<std::string> static_leases; // interfaces configured now
    std::set<std::string> holds;         // --hold interfaces now
    // Whether a D-Bus unique name still has an owner (asked of the bus).
    std::function<bool(const std::string&)> name_has_owner;
};

// Whether one lease of the earlier run lives on:
// - a capture's lease never (its pipe died with the daemon);
// - a varlink lease never (its connection died with the daemon);
// - a configuration lease while it is still configured;
// - a D-Bus lease while its owner is on the same bus.
bool survives(const core::Lease& lease, const SurvivalContext& context);

struct Plan {
    service::Adoption adoption;
    std::vector<core::Lease> ended; // leases that did not survive
    std::vector<int> unknown;       // links whose flag nobody can account for
};

// Decides from the records. `flagged` lists the links whose admin bit is on
// now (ifindex), for the case where the records are unusable.
Plan plan_recovery(const Records& records, const SurvivalContext& context,
                   const std::vector<int>& flagged);

} // namespace promiscd::state
