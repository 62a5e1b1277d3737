// Crash recovery's rules: which leases of an earlier run survive, which flags
// are cleared, which are left alone as "unknown".
#include "state/recovery.hpp"

#include <gtest/gtest.h>

using namespace promiscd;
using namespace promiscd::state;
using core::Lease;

namespace {

Lease lease(core::LeaseId id, const std::string& iface, const std::string& transport,
            const std::string& owner, bool capture = false) {
    Lease l;
    l.id = id;
    l.interface = iface;
    l.owner = {transport, owner, 1000, 42, "tool"};
    l.capture = capture;
    return l;
}

SurvivalContext context(bool same_bus, std::set<std::string> alive = {}) {
    SurvivalContext c;
    c.same_bus = same_bus;
    c.name_has_owner = [alive](const std::string& n) { return alive.count(n) > 0; };
    return c;
}

} // namespace

struct SurvivalCase {
    const char* name;
    Lease lease;
    SurvivalContext context;
    bool survives;
};

class Survival : public ::testing::TestWithParam<SurvivalCase> {};

TEST_P(Survival, FollowsTheRules) {
    EXPECT_EQ(survives(GetParam().lease, GetParam().context), GetParam().survives)
        << GetParam().name;
}

INSTANTIATE_TEST_SUITE_P(
    Recovery, Survival,
    ::testing::Values(SurvivalCase{"a D-Bus owner still on the same bus keeps its lease",
                                   lease(1, "eth0", "dbus", ":1.5"), context(true, {":1.5"}), true},
                      SurvivalCase{"a D-Bus owner that left loses it",
                                   lease(1, "eth0", "dbus", ":1.5"), context(true, {}), false},
                      SurvivalCase{"on a restarted bus, :1.5 is someone else",
                                   lease(1, "eth0", "dbus", ":1.5"), context(false, {":1.5"}),
                                   false},
                      SurvivalCase{"a varlink connection died with the daemon",
                                   lease(1, "eth0", "varlink", "3"), context(true), false},
                      SurvivalCase{"a capture's pipe died with the daemon",
                                   lease(1, "eth0", "dbus", ":1.5", true), context(true, {":1.5"}),
                                   false},
                      SurvivalCase{"a static lease no longer configured ends",
                                   lease(1, "eth0", "config", "static"), context(true), false}),
    [](const auto& p) { return "Case" + std::to_string(p.index); });

TEST(Recovery, ConfiguredStaticAndHoldLeasesSurvive) {
    auto c = context(false);
    c.static_leases = {"tap0"};
    c.holds = {"eth1"};
    EXPECT_TRUE(survives(lease(1, "tap0", "config", "static"), c));
    EXPECT_FALSE(survives(lease(2, "tap0", "config", "hold"), c));
    EXPECT_TRUE(survives(lease(3, "eth1", "config", "hold"), c));
}

TEST(Recovery, PlanAdoptsClearsAndKeepsIds) {
    Records r;
    r.next_id = 40;
    r.leases = {lease(7, "eth0", "dbus", ":1.5"), lease(52, "eth1", "dbus", ":1.6")};
    r.flags = {{2, "eth0"}, {3, "eth1"}};
    Plan p = plan_recovery(r, context(true, {":1.5"}), {2, 3});
    ASSERT_EQ(p.adoption.leases.size(), 1u);
    EXPECT_EQ(p.adoption.leases[0].id, 7u);
    ASSERT_EQ(p.ended.size(), 1u);
    EXPECT_EQ(p.ended[0].id, 52u);
    EXPECT_EQ(p.adoption.next_id, 53u) << "ids are never reused";
    EXPECT_EQ(p.adoption.flags.size(), 2u) << "both flags are the daemon's; eth1's is cleared";
    EXPECT_TRUE(p.unknown.empty());
}

TEST(Recovery, DamagedLeaseRecordLeavesUnheldFlagsAlone) {
    Records r;
    r.leases = {lease(7, "eth0", "dbus", ":1.5")};
    r.flags = {{2, "eth0"}, {3, "eth1"}};
    r.damaged_leases = 1;
    Plan p = plan_recovery(r, context(true, {":1.5"}), {2, 3});
    ASSERT_EQ(p.adoption.flags.size(), 1u);
    EXPECT_EQ(p.adoption.flags[0].first, 2) << "eth0 is still held: it stays the daemon's";
    EXPECT_EQ(p.unknown, std::vector<int>{3}) << "eth1 may have been the damaged lease's";
    EXPECT_EQ(p.adoption.unknown, p.unknown);
}

TEST(Recovery, DamagedLinkRecordMakesItsFlagUnknown) {
    Records r;
    r.damaged_flags = {4, 5};
    Plan p = plan_recovery(r, context(true), {4});
    EXPECT_EQ(p.unknown, std::vector<int>{4}) << "only a link whose flag is on";
}

TEST(Recovery, UnusableRecordsMakeEveryFlagUnknown) {
    Records r;
    r.unusable = true;
    Plan p = plan_recovery(r, context(true), {2, 9});
    EXPECT_TRUE(p.adoption.leases.empty());
    EXPECT_EQ(p.unknown, (std::vector<int>{2, 9}));
}
