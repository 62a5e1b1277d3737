// The configuration file: every key parsed, every mistake named with the key
// and the file, defaults when the file is absent.
#include "config/config.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

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
    EXPECT_EQ(c.dbus_max_queued_messages, 65536u);
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
    EXPECT_EQ(c.dbus_max_queued_messages, d.dbus_max_queued_messages);
    EXPECT_EQ(c.limits.captures_per_uid, d.limits.captures_per_uid);
    EXPECT_EQ(c.limits.max_capture_buffer, d.limits.max_capture_buffer);
    EXPECT_EQ(c.limits.conflict_max_clears, d.limits.conflict_max_clears);
    EXPECT_EQ(c.limits.conflict_window, d.limits.conflict_window);
    EXPECT_EQ(c.idle_exit_seconds, d.idle_exit_seconds);
    EXPECT_EQ(c.varlink_max_message_bytes, d.varlink_max_message_bytes);
    EXPECT_EQ(c.varlink_max_connections_per_uid, d.varlink_max_connections_per_uid);
    EXPECT_EQ(c.limits.namespaces_total, d.limits.namespaces_total);
    EXPECT_EQ(c.namespaces_enabled, d.namespaces_enabled);
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
        Broken{R"({"dbus": {"max_queued_messages": 10}})",
               "'dbus.max_queued_messages' must be between 64 and 4194304"},
        Broken{R"({"dbus": {"max_queued": 100}})", "unknown key 'dbus.max_queued'"},
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

// Found by fuzz_config: a number too large for a double is not a parse_error
// but an out_of_range, which escaped parse() and, on a reload, the daemon.
TEST(Config, NumberOverflowIsAConfigError) {
    for (const char* text :
         {R"({"idle_exit_seconds": 1e400})", R"({"quotas": [2e4294967296]})", R"({"x": -1e999})"}) {
        auto e = error_of(text);
        EXPECT_EQ(e.rfind("/etc/promiscd/promiscd.json: not valid JSON: ", 0), 0u) << e;
    }
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

// ------------------------------------------------- promiscd.json(5)

std::string read_source(const std::string& relative) {
    std::ifstream f(std::string(PROMISCD_SOURCE_ROOT) + "/" + relative);
    EXPECT_TRUE(f) << relative << " is missing";
    return {std::istreambuf_iterator<char>(f), {}};
}

// "policies[0].match" -> "policies[].match".
std::string without_indices(std::string key) {
    for (size_t open = key.find('['); open != std::string::npos; open = key.find('[', open + 1))
        key.erase(open + 1, key.find(']', open) - open - 1);
    return key;
}

// The keys the parser looks for, reading the example (which has every
// object and one element in every array, so every nested key is asked for).
std::set<std::string> parser_keys() {
    std::vector<std::string> asked;
    parse(read_source("etc/promiscd.json.example"), "example", &asked);
    std::set<std::string> keys;
    for (const auto& k : asked)
        keys.insert(without_indices(k));
    return keys;
}

// The man page's entries under KEYS: ".TP" then ".B <key>", with the text up
// to the next entry, subsection or section.
std::map<std::string, std::string> man_entries() {
    std::istringstream in(read_source("etc/promiscd.json.5"));
    std::map<std::string, std::string> entries;
    std::string line, current;
    bool in_keys = false, after_tp = false;
    while (std::getline(in, line)) {
        if (line.rfind(".SH", 0) == 0)
            in_keys = line == ".SH KEYS";
        if (!in_keys)
            continue;
        if (line.rfind(".SS", 0) == 0)
            current.clear();
        if (after_tp && line.rfind(".B ", 0) == 0) {
            current = line.substr(3);
            entries[current];
        } else if (!current.empty() && line != ".TP") {
            entries[current] += line + "\n";
        }
        after_tp = line == ".TP";
        if (after_tp)
            current.clear();
    }
    return entries;
}

// The example's value at a key path ("quotas.leases_total"), when it is a number.
std::optional<uint64_t> example_number(const std::string& key) {
    auto j = nlohmann::json::parse(read_source("etc/promiscd.json.example"));
    std::istringstream parts(key);
    for (std::string part; std::getline(parts, part, '.');) {
        if (!j.is_object() || !j.contains(part))
            return std::nullopt;
        j = j[part];
    }
    if (!j.is_number_unsigned())
        return std::nullopt;
    return j.get<uint64_t>();
}

// Every key the parser knows has its entry in promiscd.json(5), with its
// default; numbers with the default the example shows (which the test above
// holds to the parser's defaults). And the page documents no key the parser
// does not know.
TEST(ConfigManPage, DocumentsEveryKeyTheParserKnowsWithItsDefault) {
    const auto keys = parser_keys();
    // A sample, so that a parser that asks for nothing cannot pass.
    for (const char* k :
         {"quotas.leases_total", "policies[].match", "static_leases[].reason",
          "varlink.idle_timeout_seconds", "filters.cpu_ms", "authorization.checks_waiting",
          "capture_memory_total", "namespaces.enabled", "quotas.namespaces_total"})
        EXPECT_TRUE(keys.count(k)) << "the parser no longer asks for " << k;
    const auto entries = man_entries();
    for (const auto& key : keys) {
        // An object or array that only groups other keys needs no default.
        bool groups_others = false;
        for (const auto& other : keys)
            groups_others |= other.rfind(key + ".", 0) == 0 || other.rfind(key + "[].", 0) == 0;
        auto it = entries.find(key);
        if (it == entries.end()) {
            EXPECT_TRUE(groups_others) << "promiscd.json(5) does not document '" << key << "'";
            continue;
        }
        const std::string& text = it->second;
        if (auto number = example_number(key)) {
            const std::string said = "Default " + std::to_string(*number);
            const size_t at = text.find(said);
            EXPECT_TRUE(at != std::string::npos &&
                        !std::isdigit(static_cast<unsigned char>(text[at + said.size()])))
                << "promiscd.json(5) on '" << key << "' does not say \"" << said
                << "\" (the parser's default):\n"
                << text;
        } else if (text.find("Default") == std::string::npos &&
                   text.find("Required") == std::string::npos) {
            ADD_FAILURE() << "promiscd.json(5) gives no default for '" << key << "':\n" << text;
        }
    }
    for (const auto& [key, text] : entries)
        EXPECT_TRUE(keys.count(key))
            << "promiscd.json(5) documents '" << key << "', which the parser does not know";
}

} // namespace
