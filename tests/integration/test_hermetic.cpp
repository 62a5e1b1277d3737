// The suite is hermetic: it passes on a host where another promiscd runs on
// every default path, and that promiscd never hears from it.
//
// The "host" is an isolated one (IsolatedHost: a private mount namespace with
// its own /run and /etc overlay), so the real host is untouched, but inside
// it everything is where an installed promiscd puts it: Debian's system bus
// at /run/dbus/system_bus_socket with the project's bus policy installed, a
// promiscd on it owning org.promiscd.Promisc1, serving varlink on
// /run/promiscd/io.promiscd, keeping its state in /run/promiscd, running as
// its unit does (the dedicated user, two capabilities), and a configuration
// file in /etc/promiscd/promiscd.json that no test expects (tight quotas,
// policy yield, a static lease). Parts of the suite run there, beside it, as
// they run anywhere; a test that reached for a default path would meet that
// daemon or that configuration and fail. Then the bystander must still run,
// have had no D-Bus call (dbus-monitor recorded the bus) and no lease.
#include "isolated_host.hpp"
#include "process.hpp"
#include "test_paths.h"

#include <filesystem>
#include <gtest/gtest.h>
#include <regex>

using namespace promiscd::testing;

namespace {

struct Suite {
    std::string name;   // itest_<name>
    std::string filter; // gtest filter
};

// What runs beside the host's promiscd: the suites that start daemons of
// their own on every transport. The promiscctl suites join once they pin
// their daemon's configuration file and the CLI's varlink socket (beside a
// promiscd on the default paths they fail today, and one test hangs).
const std::vector<Suite> kSuites = {
    {"daemon", "*"},
    {"varlink", "*"},
    {"bus", "*"},
};

// A configuration no test expects: any test daemon that read the host's file
// would refuse a second lease, yield on every link and hold `lo`.
const std::string kHostConfig = R"({
  "quotas": {"leases_per_uid": 1, "leases_total": 1, "captures_per_uid": 0},
  "policies": [{"match": "*", "policy": "yield"}],
  "static_leases": [{"interface": "lo", "reason": "the host's static lease"}]
}
)";

std::string setup_script(const std::string& stage) {
    const std::string user = PROMISCD_DAEMON_USER;
    std::string as_unit;
    if (user != "root")
        as_unit = "setpriv --reuid=" + user + " --regid=" + user +
                  " --init-groups --inh-caps=-all,+net_admin,+net_raw"
                  " --ambient-caps=-all,+net_admin,+net_raw"
                  " --bounding-set=-all,+net_admin,+net_raw -- ";
    return "mkdir -p /run/dbus /run/promiscd\n"
           "chown " +
           user +
           " /run/promiscd\n"
           "dbus-daemon --system --fork --nopidfile\n"
           "dbus-monitor --system > '" +
           stage +
           "/bus-traffic.log' 2>&1 &\n"
           // Its own network namespace, so that even its static lease on lo
           // touches nothing of the real host.
           "unshare -n " +
           as_unit + PROMISCD_DAEMON_BINARY + " --log-target=console --log-level=debug > '" +
           stage + "/bystander.log' 2>&1 &\n";
}

TEST(Hermetic, SuitesPassBesideAPromiscdOnTheDefaultPaths) {
    PROMISCD_REQUIRE_ROOT();
    IsolatedHost::Options o;
    o.writable_copies = {"/usr/share/dbus-1/system.d"};
    o.etc_files = {{"/etc/promiscd/promiscd.json", kHostConfig}};
    TempDir stage;
    o.setup = "install -m 0644 '" PROMISCD_DBUS_POLICY "' /usr/share/dbus-1/system.d/\n" +
              setup_script(stage.path());
    IsolatedHost host(o, "exec sleep infinity");

    // The bystander serves on the default bus and the default socket.
    const std::string log_path = stage / "bystander.log";
    auto on_default_bus = [&] {
        auto r = run(host.inside({}, {"busctl", "--system", "call", "org.freedesktop.DBus",
                                      "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                      "GetNameOwner", "s", PROMISCD_BUS_NAME}));
        return r.ok() ? r.out.substr(3, r.out.size() - 5) : std::string(); // s ":1.N"
    };
    ASSERT_TRUE(wait_until([&] { return !on_default_bus().empty(); }, 10s)) << read_file(log_path);
    const std::string bystander_name = on_default_bus();
    ASSERT_TRUE(wait_until([&] {
        return read_file(log_path).find("watching") != std::string::npos;
    })) << read_file(log_path);
    auto socket = run(host.inside({}, {"test", "-S", "/run/promiscd/io.promiscd"}));
    ASSERT_TRUE(socket.ok()) << "the bystander listens on the default varlink socket\n"
                             << read_file(log_path);
    const size_t ready_at = read_file(log_path).size();
    const size_t traffic_at = read_file(stage / "bus-traffic.log").size();
    pid_t bystander = -1;
    for (const auto& [pid, comm] : host.processes())
        if (comm == "promiscd")
            bystander = pid;
    ASSERT_GT(bystander, 0);

    for (const auto& suite : kSuites) {
        SCOPED_TRACE(suite.name);
        // A test that waits on the host's daemon for ever must not hang this one.
        auto r = run(host.inside({}, {"timeout", "--kill-after=10", "600", "env", "-u",
                                      "DBUS_SYSTEM_BUS_ADDRESS",
                                      std::string(PROMISCD_ITEST_DIR) + "/itest_" + suite.name,
                                      "--gtest_filter=" + suite.filter, "--gtest_brief=1"}));
        EXPECT_EQ(r.status, 0) << "itest_" << suite.name << " beside the host's promiscd:\n"
                               << r.out << r.err;
    }

    EXPECT_FALSE(process_gone(bystander)) << read_file(log_path);
    const auto after = read_file(log_path).substr(ready_at);
    EXPECT_EQ(after.find("lease"), std::string::npos)
        << "the host's promiscd saw a lease come or go:\n"
        << after;
    EXPECT_EQ(after.find("varlink"), std::string::npos) << after;
    const auto traffic = read_file(stage / "bus-traffic.log").substr(traffic_at);
    for (const auto& dest : {std::string(PROMISCD_BUS_NAME), bystander_name})
        EXPECT_EQ(traffic.find("destination=" + dest + " "), std::string::npos)
            << "a call reached the host's promiscd (" << dest << "):\n"
            << traffic;
    host.expect_host_untouched();
}

} // namespace
