// Static leases: the configuration file's ("config:static") and --hold's
// ("config:hold"). What to release and what to acquire so that the leases
// held match what is configured; pure, so a reload's effect is testable.
#pragma once

#include "core/arbiter.hpp"

#include <map>
#include <string>
#include <vector>

namespace promiscd {

inline constexpr const char* kStaticOwner = "static"; // the configuration file
inline constexpr const char* kHoldOwner = "hold";     // promiscd --hold

struct StaticLease {
    std::string owner; // kStaticOwner or kHoldOwner
    std::string interface;
    std::string reason;
};

struct StaticPlan {
    std::vector<core::LeaseId> release;      // no longer configured
    std::vector<core::LeaseRequest> acquire; // configured and not held
};

// `held`: every lease the daemon holds (only "config" ones are looked at).
// `pid`: the daemon's, for the owner of new leases.
StaticPlan plan_static(const std::vector<StaticLease>& wanted,
                       const std::map<core::LeaseId, core::Lease>& held, uint32_t pid);

} // namespace promiscd
