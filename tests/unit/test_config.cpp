// The configuration file: every key parsed, every mistake named with the key
// and the file, defaults when the file is absent.
#include "config/config.hpp"

#include <gtest/gtest.h>

#include <fstream>

using namespace promiscd;
using namespace promiscd::config;

namespace {

std::string error_of(const std::string& text) {
    try {
        parse(text, "/etc/promiscd/promiscd.json");
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(accepted)";
}

TEST(Config, EmptyObjectGivesDefaults) {
    Config c = parse("{}", "f");
    EXPECT_EQ(c.limits.leases_per_uid, core::Limits{}.leases_per_uid);
    EXPECT_EQ(c.idle_exit_seconds, 30u);
    EXPECT_EQ(c.varlink_max_message_bytes, 65536u);
    EXPECT_TRUE(c.static_leases.empty());
}

TEST(Config, ExampleFileParsesWithEveryKey) {
    std::ifstream f(std::string(PROMISCD_SOURCE_ROOT) + "/etc/promiscd.json.example");
    ASSERT_TRUE(f) << "the example file is missing";
    std::string text((std::istreambuf_iterator<char>(f)), {});
    Config c = parse(text, "example");
    EXPECT_EQ(c.limits.leases_per_uid, 64u);
    EXPECT_EQ(c.limits.leases_total, 16384u);
    EXPECT_EQ(c.limits.captures_per_uid, 8u);
    EXPECT_EQ(c.limits.captures_total, 64u);
    EXPECT_EQ(c.limits.capture_memory_total, 256u << 20);
    EXPECT_EQ(c.limits.conflict_max_clears, 5u);
    EXPECT_EQ(c.limits.conflict_window, 10 * core::usec_per_sec);
    ASSERT_EQ(c.policies.size(), 2u);
    EXPECT_EQ(c.policies[0].first, "veth*");
    EXPECT_EQ(c.policies[0].second, core::Policy::Yield);
    EXPECT_EQ(c.allowed_groups, std::vector<std::string>{"promisc"});
    ASSERT_EQ(c.static_leases.size(), 1u);
    EXPECT_EQ(c.static_leases[0].interface, "ids0");
    EXPECT_EQ(c.static_leases[0].reason, "Suricata tap");
    EXPECT_EQ(c.idle_exit_seconds, 30u);
    EXPECT_EQ(c.limits.max_capture_buffer, 64u << 20);
    EXPECT_EQ(c.varlink_max_connections_per_uid, 16u);
    EXPECT_EQ(c.varlink_max_connections, 256u);
    EXPECT_EQ(c.varlink_max_backlog_bytes, 1u << 20);
    EXPECT_EQ(c.varlink_max_total_backlog_bytes, 32u << 20);
    EXPECT_EQ(c.varlink_idle_timeout_seconds, 60u);
    EXPECT_EQ(c.reads_items_burst, 40000u);
    EXPECT_EQ(c.reads_items_per_second, 10000u);
    EXPECT_EQ(c.authorization.in_flight_total, 32u);
    EXPECT_EQ(c.authorization.queued_per_caller, 16u);
    EXPECT_EQ(c.filters.max_terms, 64u);
    EXPECT_EQ(c.filters.cpu_ms, 2000u);
}

// Every key the example shows is the default: the example documents them.
TEST(Config, ExampleShowsTheDefaults) {
    std::ifstream f(std::string(PROMISCD_SOURCE_ROOT) + "/etc/promiscd.json.example");
    std::string text((std::istreambuf_iterator<char>(f)), {});
    Config c = parse(text, "example");
    Config d;
    EXPECT_EQ(c.limits.leases_per_uid, d.limits.leases_per_uid);
    EXPECT_EQ(c.limits.leases_total, d.limits.leases_total);
    EXPECT_EQ(c.limits.captures_total, d.limits.captures_total);
    EXPECT_EQ(c.limits.capture_memory_total, d.limits.capture_memory_total);
    EXPECT_EQ(c.varlink_max_connections, d.varlink_max_connections);
    EXPECT_EQ(c.varlink_max_backlog_bytes, d.varlink_max_backlog_bytes);
    EXPECT_EQ(c.varlink_max_total_backlog_bytes, d.varlink_max_total_backlog_bytes);
    EXPECT_EQ(c.varlink_idle_timeout_seconds, d.varlink_idle_timeout_seconds);
    EXPECT_EQ(c.authorization.in_flight_total, d.authorization.in_flight_total);
    EXPECT_EQ(c.authorization.in_flight_per_caller, d.authorization.in_flight_per_caller);
    EXPECT_EQ(c.authorization.queued_per_caller, d.authorization.queued_per_caller);
    EXPECT_EQ(c.authorization.queued_total, d.authorization.queued_total);
    EXPECT_EQ(c.filters.max_terms, d.filters.max_terms);
    EXPECT_EQ(c.filters.cpu_ms, d.filters.cpu_ms);
    EXPECT_EQ(c.filters.queue.in_flight_total, d.filters.queue.in_flight_total);
    EXPECT_EQ(c.filters.queue.queued_total, d.filters.queue.queued_total);
    EXPECT_EQ(c.reads_items_burst, d.reads_items_burst);
    EXPECT_EQ(c.reads_items_per_second, d.reads_items_per_second);
}

struct Broken {
    std::string text;
    std::string message;
};
class BrokenFiles : public ::testing::TestWithParam<Broken> {};

TEST_P(BrokenFiles, AreRefusedNamingKeyAndFile) {
    EXPECT_EQ(error_of(GetParam().text), "/etc/promiscd/promiscd.json: " + GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Config, BrokenFiles,
    ::testing::Values(
        Broken{"[]", "the top level must be a JSON object"},
        Broken{R"({"quota": {}})", "unknown key 'quota'"},
        Broken{R"({"reads": {"items_per_second": 0}})",
               "'reads.items_per_second' must be between 1 and 4294967296"},
        Broken{R"({"quotas": {"leases_per_user": 3}})", "unknown key 'quotas.leases_per_user'"},
        Broken{R"({"quotas": {"leases_per_uid": "3"}})",
               "'quotas.leases_per_uid' must be a non-negative integer"},
        Broken{R"({"quotas": {"leases_per_uid": 0}})",
               "'quotas.leases_per_uid' must be between 1 and 1000000"},
        Broken{R"({"quotas": 5})", "'quotas' must be an object"},
        Broken{R"({"conflict": {"window_seconds": -1}})",
               "'conflict.window_seconds' must be a non-negative integer"},
        Broken{R"({"policies": {"match": "x"}})", "'policies' must be an array"},
        Broken{R"({"policies": [{"match": "eth*", "policy": "fight"}]})",
               "'policies[0].policy' must be \"enforce\" or \"yield\", not \"fight\""},
        Broken{R"({"policies": [{"policy": "yield"}]})", "'policies[0].match' is missing or empty"},
        Broken{R"({"policies": [{"match": "a", "policy": "yield", "x": 1}]})",
               "unknown key 'policies[0].x'"},
        Broken{R"({"allowed_groups": ["promisc", 5]})", "'allowed_groups[1]' must be a group name"},
        Broken{R"({"static_leases": [{"interface": "eth/0"}]})",
               "'static_leases[0].interface': invalid interface name 'eth/0': contains '/'"},
        Broken{R"({"static_leases": [{"reason": "x"}]})",
               "'static_leases[0].interface': invalid interface name: it is empty"},
        Broken{R"({"idle_exit_seconds": true})",
               "'idle_exit_seconds' must be a non-negative integer"},
        Broken{R"({"varlink": {"max_message_bytes": 10}})",
               "'varlink.max_message_bytes' must be between 1024 and 16777216"},
        Broken{R"({"max_capture_buffer": 1})",
               "'max_capture_buffer' must be between 65536 and 2147483648"}));

TEST(Config, InvalidJsonNamesTheFile) {
    auto e = error_of("{ nope");
    EXPECT_EQ(e.rfind("/etc/promiscd/promiscd.json: not valid JSON: ", 0), 0u) << e;
}

TEST(Config, MissingFileIsDefaultsUnlessExplicit) {
    EXPECT_NO_THROW(load("/nonexistent/promiscd.json", false));
    try {
        load("/nonexistent/promiscd.json", true);
        FAIL() << "accepted a missing explicit file";
    } catch (const ConfigError& e) {
        EXPECT_EQ(std::string(e.what()),
                  "/nonexistent/promiscd.json: cannot read: No such file or directory");
    }
}

} // namespace
