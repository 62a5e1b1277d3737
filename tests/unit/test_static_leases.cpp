// Static leases follow the configuration: what a (re)load releases and takes.
#include "static_leases.hpp"

#include <gtest/gtest.h>

using namespace promiscd;

namespace {

core::Lease held(core::LeaseId id, const std::string& owner, const std::string& iface,
                 const std::string& transport = "config") {
    core::Lease l;
    l.id = id;
    l.interface = iface;
    l.owner = {transport, owner, 0, 1, "promiscd"};
    return l;
}

} // namespace

TEST(StaticLeases, TakesWhatIsConfiguredAndNotHeld) {
    auto plan = plan_static({{kStaticOwner, "tap0", "ids"}, {kHoldOwner, "eth0", "hold"}}, {}, 7);
    ASSERT_EQ(plan.acquire.size(), 2u);
    EXPECT_TRUE(plan.release.empty());
    for (const auto& r : plan.acquire) {
        EXPECT_EQ(r.owner.transport, "config");
        EXPECT_TRUE(r.wait) << "a static lease waits for its link";
        EXPECT_EQ(r.owner.pid, 7u);
    }
}

TEST(StaticLeases, ReloadReleasesWhatWasDroppedAndKeepsTheRest) {
    std::map<core::LeaseId, core::Lease> leases = {
        {1, held(1, kStaticOwner, "tap0")},
        {2, held(2, kStaticOwner, "tap1")},
        {3, held(3, kHoldOwner, "tap1")},
        {4, held(4, ":1.9", "tap1", "dbus")},
    };
    auto plan = plan_static({{kStaticOwner, "tap0", ""}, {kHoldOwner, "tap1", ""}}, leases, 7);
    EXPECT_EQ(plan.release, std::vector<core::LeaseId>{2}) << "tap1 left the file";
    EXPECT_TRUE(plan.acquire.empty()) << "the rest is held already; clients are not touched";
}

TEST(StaticLeases, DuplicatesAreReleased) {
    std::map<core::LeaseId, core::Lease> leases = {{1, held(1, kStaticOwner, "tap0")},
                                                   {2, held(2, kStaticOwner, "tap0")}};
    auto plan = plan_static({{kStaticOwner, "tap0", ""}}, leases, 7);
    EXPECT_EQ(plan.release, std::vector<core::LeaseId>{2});
}
