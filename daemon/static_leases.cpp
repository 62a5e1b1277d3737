#include "static_leases.hpp"

#include <set>

namespace promiscd {

StaticPlan plan_static(const std::vector<StaticLease>& wanted,
                       const std::map<core::LeaseId, core::Lease>& held, uint32_t pid) {
    std::map<std::pair<std::string, std::string>, const StaticLease*> want;
    for (const auto& w : wanted)
        want.emplace(std::pair{w.owner, w.interface}, &w);
    StaticPlan plan;
    std::set<std::pair<std::string, std::string>> have;
    for (const auto& [id, l] : held) {
        if (l.owner.transport != "config")
            continue;
        auto key = std::pair{l.owner.id, l.interface};
        if (!want.count(key) || have.count(key))
            plan.release.push_back(id); // dropped from the configuration, or a duplicate
        else
            have.insert(key);
    }
    for (const auto& [key, w] : want) {
        if (have.count(key))
            continue;
        core::LeaseRequest req;
        req.interface = w->interface;
        req.owner = {"config", w->owner, 0, pid, "promiscd"};
        req.reason = w->reason;
        req.wait = true;
        plan.acquire.push_back(std::move(req));
    }
    return plan;
}

} // namespace promiscd
