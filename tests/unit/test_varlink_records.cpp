// The decoding of promiscd's varlink records and Monitor events that
// promiscctl --transport=varlink and libpromisc share.
#include "client/varlink_records.hpp"

#include <gtest/gtest.h>

namespace promiscd::client::varlink {
namespace {

using nlohmann::json;
using Type = Event::Type;

json lease(std::uint64_t id, const std::string& state, std::uint64_t expires = 0) {
    return {{"id", id},       {"interface", "eth0"}, {"state", state},    {"owner", "varlink:3"},
            {"uid", 1000},    {"pid", 42},           {"command", "tool"}, {"reason", ""},
            {"acquired", 10}, {"expires", expires}};
}

TEST(VarlinkRecords, MistypedMembersReadAsEmptyAndNeverThrow) {
    const json odd = {{"name", 7}, {"admin_flag", "yes"}, {"promiscuity", "3"}, {"leases", -1.5}};
    LinkInfo l;
    ASSERT_NO_THROW(l = link_of(odd));
    EXPECT_EQ(l.name, "");
    EXPECT_FALSE(l.admin_flag);
    EXPECT_EQ(l.promiscuity, 0u);
    EventDecoder d;
    EXPECT_NO_THROW(d.decode({{"type", "flag"}, {"interface", 1}, {"flag", "on"}}));
    EXPECT_FALSE(d.decode(json::array()).has_value());
    EXPECT_FALSE(d.decode("lease-granted").has_value());
}

TEST(VarlinkRecords, ChangesCarryThePreviousRecordAndWhatChanged) {
    EventDecoder d;
    d.seed(json::array({{{"name", "eth0"}, {"admin_flag", true}}}),
           json::array({lease(1, "active")}));
    EXPECT_EQ(d.link_count(), 1u);
    ASSERT_EQ(d.leases().size(), 1u);
    EXPECT_EQ(d.leases()[0].path, lease_path(1));

    auto granted =
        d.decode({{"type", "lease-granted"}, {"time", 5}, {"lease", lease(2, "pending")}});
    ASSERT_TRUE(granted);
    EXPECT_EQ(granted->type, Type::LeaseGranted);
    EXPECT_EQ(granted->timestamp_usec, 5u);
    EXPECT_EQ(granted->lease.id, 2u);
    EXPECT_EQ(d.lease_count(), 2u);

    auto changed = d.decode({{"type", "lease-state"}, {"lease", lease(2, "active", 99)}});
    ASSERT_TRUE(changed);
    EXPECT_EQ(changed->type, Type::LeaseChanged);
    EXPECT_EQ(changed->previous_lease.state, "pending");
    EXPECT_EQ(changed->lease.state, "active");
    EXPECT_EQ(changed->changed, (std::vector<std::string>{"State", "Expires"}));

    auto renewed = d.decode({{"type", "lease-renewed"}, {"lease", lease(2, "active", 120)}});
    ASSERT_TRUE(renewed);
    EXPECT_EQ(renewed->changed, std::vector<std::string>{"Expires"});
    EXPECT_EQ(renewed->previous_lease.expires_usec, 99u);
}

TEST(VarlinkRecords, EndsSayWhoRevokedAndForgetTheLease) {
    EventDecoder d;
    d.seed(json::array(), json::array({lease(4, "active")}));
    auto ended = d.decode({{"type", "lease-ended"},
                           {"reason", "revoked"},
                           {"revoked_by", ":1.7 (uid 0)"},
                           {"revoked_by_uid", 0},
                           {"message", "maintenance"},
                           {"lease", lease(4, "active")}});
    ASSERT_TRUE(ended);
    EXPECT_EQ(ended->type, Type::LeaseEnded);
    EXPECT_EQ(ended->reason, "revoked");
    EXPECT_EQ(ended->end.revoked_by, ":1.7 (uid 0)");
    EXPECT_EQ(ended->end.revoked_by_uid, std::optional<std::uint32_t>(0));
    EXPECT_EQ(ended->end.message, "maintenance");
    EXPECT_EQ(d.lease_count(), 0u);
}

TEST(VarlinkRecords, FlagsFollowTheLinkAndUnknownTypesAreSkipped) {
    EventDecoder d;
    auto flag =
        d.decode({{"type", "flag"}, {"interface", "eth1"}, {"flag", true}, {"by", "promiscd"}});
    ASSERT_TRUE(flag);
    EXPECT_EQ(flag->type, Type::FlagChanged);
    EXPECT_TRUE(flag->flag_on);
    EXPECT_EQ(flag->by, "promiscd");
    ASSERT_EQ(d.links().size(), 1u);
    EXPECT_TRUE(d.links()[0].admin_flag);
    EXPECT_FALSE(d.decode({{"type", "subscribed"}}).has_value());
    EXPECT_FALSE(d.decode({{"type", "from-the-future"}}).has_value());
    auto conflict = d.decode({{"type", "conflict"}, {"interface", "eth1"}, {"clears", 3}});
    ASSERT_TRUE(conflict);
    EXPECT_EQ(conflict->clears, 3u);
    EXPECT_EQ(EventDecoder::stopped().type, Type::DaemonStopped);
    EXPECT_GT(EventDecoder::stopped().timestamp_usec, 0u);
}

} // namespace
} // namespace promiscd::client::varlink
