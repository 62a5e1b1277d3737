// The D-Bus API end to end: a private dbus-daemon with the project's bus
// policy, polkitd with the project's .policy and test rules, the daemon as a
// separate process in a namespace the test made, and clients nobody here
// wrote (busctl, python3-dbus).
#include "daemon_stack.hpp"
#include "test_paths.h"

#include <csignal>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <set>
#include <sys/socket.h>
#include <sys/un.h>

using namespace promiscd::testing;
using nlohmann::json;

namespace {

const std::string& root = kRootPath;
const std::string& manager = kManagerIface;
const std::string& lease_iface = kLeaseIface;
const std::string& err = kErrorPrefix;

const std::string& default_rules = kPromiscGroupRules;

class Bus : public DaemonTest {
protected:
    DaemonStack::Options options() const override {
        DaemonStack::Options o;
        o.polkit_rules = rules();
        o.as_daemon_user = as_daemon_user();
        return o;
    }
    virtual std::string rules() const { return default_rules; }
    // The daemon as the unit runs it: its own user, two ambient capabilities.
    virtual bool as_daemon_user() const { return false; }

    const std::string& dev() const { return stack_->dev(); }
    Netns& ns() { return stack_->ns(); }
    Process& daemon() { return stack_->daemon(); }
    const TempDir& state() const { return stack_->state(); }

    Process& holder(const std::vector<std::string>& args, const TestUser* user = nullptr) {
        return stack_->lease_holder(args, user);
    }
    std::string lease_of(Process& p) { return DaemonStack::lease_of(p); }
    CommandResult busctl(std::vector<std::string> args, const TestUser* user = nullptr) {
        return stack_->busctl(std::move(args), user);
    }
    CommandResult call(const std::string& method, std::vector<std::string> args = {},
                       const TestUser* user = nullptr, const std::string& path = root,
                       const std::string& iface = manager) {
        return stack_->call(method, std::move(args), user, path, iface);
    }
    // A python3-dbus signal monitor (clients/monitor.py), subscribed.
    Process& monitor() {
        auto& m = stack_->spawn({"/usr/bin/python3", std::string(PROMISCD_SOURCE_ROOT) +
                                                         "/tests/integration/clients/monitor.py"});
        EXPECT_NE(m.wait_for_output("READY"), std::string::npos) << m.log();
        return m;
    }
    // The same call through python3-dbus, which shows the error's name:
    // "OK <json>" or "ERROR <name> <message>".
    std::string pycall(const std::string& method, std::vector<std::string> args,
                       const TestUser* user = nullptr, const std::string& path = root,
                       const std::string& iface = manager) {
        std::vector<std::string> argv = {"/usr/bin/python3",
                                         std::string(PROMISCD_SOURCE_ROOT) +
                                             "/tests/integration/clients/call.py",
                                         path, iface, method};
        argv.insert(argv.end(), args.begin(), args.end());
        if (user)
            argv = as_user(*user, argv);
        auto r = run(argv, stack_->env());
        return r.out + r.err;
    }
    json leases() { return stack_->leases(); }
    bool promisc() { return stack_->promisc(); }
    bool promisc(const std::string& dev) { return stack_->promisc(dev); }
};

// 1
TEST_F(Bus, RootAcquiresAndReleases) {
    auto& c = holder({dev()});
    auto path = lease_of(c);
    EXPECT_EQ(path.rfind(root + "/lease/", 0), 0u) << path;
    EXPECT_TRUE(promisc()) << "ip link shows PROMISC while the lease is held";
    auto l = leases();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0][0], path);
    EXPECT_EQ(l[0][2], dev());
    EXPECT_EQ(l[0][3], "active");
    EXPECT_EQ(l[0][5], 0);
    c.write_stdin("release\n");
    EXPECT_NE(c.wait_for_output("ENDED released"), std::string::npos) << c.log();
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));
    EXPECT_TRUE(leases().empty());
}

// 2
TEST_F(Bus, AllowedUidAcquiresDeniedUidGetsAccessDenied) {
    auto& denied = holder({dev()}, &kDeniedUser);
    EXPECT_NE(denied.wait_for_output("ERROR org.freedesktop.DBus.Error.AccessDenied"),
              std::string::npos)
        << denied.log();
    EXPECT_NE(denied.log().find("uid 64002 is not authorized"), std::string::npos) << denied.log();
    EXPECT_FALSE(promisc()) << "a denied request changes nothing";
    EXPECT_TRUE(leases().empty());

    auto& allowed = holder({dev()}, &kAllowedUser);
    lease_of(allowed);
    EXPECT_TRUE(promisc());
    auto l = leases();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0][5], kAllowedUser.uid) << "the uid comes from the bus driver";
    EXPECT_EQ(l[0][7], "python3");
}

// 3
TEST_F(Bus, KilledClientsLeaseEndsAndFlagClears) {
    auto& c = holder({dev()});
    lease_of(c);
    ASSERT_TRUE(promisc());
    c.signal(SIGKILL);
    EXPECT_TRUE(wait_until([&] { return !promisc(); })) << daemon().log();
    EXPECT_TRUE(leases().empty());
    EXPECT_NE(daemon().log().find("ended: owner-gone"), std::string::npos);
    // busctl's own lease ends as soon as busctl disconnects.
    auto r = call("AcquireLease", {"sa{sv}", dev(), "0"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_TRUE(wait_until([&] { return leases().empty(); }));
}

// 4
TEST_F(Bus, TwoClientsFlagFollowsTheLast) {
    auto& a = holder({dev()});
    auto& b = holder({dev()});
    lease_of(a);
    lease_of(b);
    a.write_stdin("release\n");
    a.wait_for_output("RELEASED");
    EXPECT_TRUE(promisc()) << "still held by the second client";
    b.write_stdin("release\n");
    b.wait_for_output("RELEASED");
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));
}

// 5
TEST_F(Bus, AdminFlagSurvivesTheLastLease) {
    ns().exec_ok("ip link set dev " + dev() + " promisc on");
    auto& a = holder({dev()});
    lease_of(a);
    a.write_stdin("release\n");
    a.wait_for_output("RELEASED");
    auto links = json::parse(call("ListLinks").out)["data"][0];
    bool seen = false;
    for (const auto& l : links)
        if (l[2] == dev()) {
            seen = true;
            EXPECT_EQ(l[6], "admin");
            EXPECT_EQ(l[7], 0);
        }
    EXPECT_TRUE(seen);
    EXPECT_TRUE(promisc()) << "an administrator's flag survives";
}

// 6
TEST_F(Bus, ExternalClearEnforcedOrYielded) {
    auto& a = holder({dev()});
    lease_of(a);
    ns().exec_ok("ip link set dev " + dev() + " promisc off");
    EXPECT_TRUE(wait_until([&] { return promisc(); })) << "enforce sets it again";

    auto r = call("SetLinkPolicy", {"ss", dev(), "yield"});
    ASSERT_EQ(r.status, 0) << r.err;
    ns().exec_ok("ip link set dev " + dev() + " promisc off");
    EXPECT_NE(a.wait_for_output("STATE overridden"), std::string::npos) << a.log();
    EXPECT_FALSE(promisc()) << "yield leaves the flag as the other agent set it";
    EXPECT_EQ(leases()[0][3], "overridden");
    ns().exec_ok("ip link set dev " + dev() + " promisc on");
    EXPECT_NE(a.wait_for_output("STATE active"), std::string::npos) << a.log();
}

// 7
TEST_F(Bus, DaemonStopsFightingAnotherAgent) {
    auto& a = holder({dev()});
    lease_of(a);
    auto stat_cpu = [&] {
        std::ifstream f("/proc/" + std::to_string(daemon().pid()) + "/stat");
        std::string s((std::istreambuf_iterator<char>(f)), {});
        auto close = s.rfind(')');
        std::istringstream in(s.substr(close + 2));
        std::string field;
        long utime = 0, stime = 0;
        for (int i = 3; i <= 15; ++i) {
            in >> field;
            if (i == 14)
                utime = std::stol(field);
            if (i == 15)
                stime = std::stol(field);
        }
        return utime + stime; // clock ticks
    };
    auto& m = monitor();
    long cpu_before = stat_cpu();
    // Another agent clearing the flag over and over for 2 seconds.
    ns().exec_ok("for i in $(seq 40); do ip link set dev " + dev() +
                 " promisc off; sleep 0.05; done");
    long cpu_ticks = stat_cpu() - cpu_before;
    EXPECT_NE(a.wait_for_output("STATE overridden"), std::string::npos) << a.log();
    EXPECT_NE(daemon().log().find("not fighting it any more"), std::string::npos);
    EXPECT_NE(m.wait_for_output("CONFLICT " + dev() + " 6"), std::string::npos) << m.log();
    EXPECT_EQ(leases()[0][3], "overridden");
    EXPECT_FALSE(promisc()) << "the daemon gave up setting it";
    // The daemon is idle in between events: well under 10% of one core.
    EXPECT_LT(cpu_ticks, sysconf(_SC_CLK_TCK) / 5) << "CPU ticks used: " << cpu_ticks;
}

// 8
TEST_F(Bus, TtlExpiresRenewExtendsNonOwnerCannotRenew) {
    auto& shortl = holder({dev(), "--ttl", "1"});
    lease_of(shortl);
    EXPECT_NE(shortl.wait_for_output("ENDED expired", 5s), std::string::npos) << shortl.log();
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));

    auto& renewed = holder({dev(), "--ttl", "2"});
    auto path = lease_of(renewed);
    auto expires_before = leases()[0][10].get<uint64_t>();
    renewed.write_stdin("renew 60\n");
    EXPECT_NE(renewed.wait_for_output("RENEWED"), std::string::npos) << renewed.log();
    EXPECT_NE(renewed.wait_for_output("EXPIRES"), std::string::npos) << renewed.log();
    EXPECT_GT(leases()[0][10].get<uint64_t>(), expires_before + 50'000'000);
    std::this_thread::sleep_for(2500ms);
    EXPECT_EQ(renewed.log().find("ENDED"), std::string::npos) << "renewed lease still held";
    EXPECT_TRUE(promisc());

    auto r = pycall("Renew", {"t", "30"}, &kDeniedUser, path, lease_iface);
    EXPECT_EQ(r.rfind("ERROR " + err + "NotOwner lease ", 0), 0u) << r;
    EXPECT_NE(r.find("belongs to someone else"), std::string::npos) << r;
    auto r2 = pycall("Release", {""}, &kAllowedUser, path, lease_iface);
    EXPECT_EQ(r2.rfind("ERROR " + err + "NotOwner", 0), 0u)
        << "pdallow may not manage others' leases: " << r2;
    EXPECT_EQ(leases().size(), 1u);
}

// 10
TEST_F(Bus, LinkDeletedAndCreatedAgain) {
    auto ifb = add_ifb(ns());
    ASSERT_TRUE(wait_until(
        [&] { return call("ListLinks").out.find("\"" + ifb + "\"") != std::string::npos; }));
    auto& a = holder({ifb});
    lease_of(a);
    ASSERT_TRUE(promisc(ifb));
    ns().exec_ok("ip link del dev " + ifb);
    EXPECT_NE(a.wait_for_output("STATE pending"), std::string::npos) << a.log();
    ns().exec_ok("ip link add dev " + ifb + " type ifb");
    EXPECT_NE(a.wait_for_output("STATE active"), std::string::npos) << a.log();
    EXPECT_TRUE(wait_until([&] { return promisc(ifb); }));
}

// 11
TEST_F(Bus, CrashRecoveryAdoptsLiveLeasesWithoutFlicker) {
    auto& a = holder({dev()});
    auto& b = holder({dev()});
    auto pa = lease_of(a);
    auto pb = lease_of(b);
    ASSERT_TRUE(promisc());
    Process monitor(ns().wrap({"ip", "-o", "monitor", "link"}));
    std::this_thread::sleep_for(200ms);
    daemon().signal(SIGKILL);
    daemon().wait(5s);
    EXPECT_TRUE(promisc()) << "nobody cleared it while the daemon was down";
    stack_->start_daemon();
    auto l = leases();
    ASSERT_EQ(l.size(), 2u) << daemon().log();
    std::set<std::string> before = {pa, pb}, after = {l[0][0], l[1][0]};
    EXPECT_EQ(after, before) << "same object paths after the restart";
    EXPECT_EQ(l[0][3], "active");
    EXPECT_EQ(l[1][3], "active");
    // The adopted leases work through their old object paths.
    a.write_stdin("release\n");
    EXPECT_NE(a.wait_for_output("RELEASED"), std::string::npos) << a.log();
    EXPECT_TRUE(promisc());
    b.write_stdin("release\n");
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));
    std::this_thread::sleep_for(100ms);
    monitor.stop();
    // The monitor saw the link's changes; the flag went off once, at the end,
    // and never in between (no flicker across the restart).
    std::istringstream lines(monitor.log());
    bool off_seen = false;
    for (std::string line; std::getline(lines, line);) {
        if (line.find(dev() + "@") == std::string::npos ||
            line.find("Deleted") != std::string::npos)
            continue;
        bool on = line.find("PROMISC") != std::string::npos;
        EXPECT_FALSE(off_seen && on) << "flag flickered: " << monitor.log();
        off_seen |= !on;
    }
    EXPECT_TRUE(off_seen) << "the monitor saw the final clear: " << monitor.log();
}

// 11b: a crashed run whose clients are gone: the flags it set are cleared.
TEST_F(Bus, CrashRecoveryClearsFlagsOfGoneOwners) {
    auto& a = holder({dev()});
    lease_of(a);
    daemon().signal(SIGKILL);
    daemon().wait(5s);
    a.signal(SIGKILL);
    a.wait(5s);
    ASSERT_TRUE(promisc());
    stack_->start_daemon();
    EXPECT_TRUE(wait_until([&] { return !promisc(); })) << daemon().log();
    EXPECT_TRUE(leases().empty());
}

// 11c: a damaged record is moved aside and nothing is guessed: the flag it
// might have accounted for is left alone, and its origin says "unknown".
TEST_F(Bus, DamagedRecordIsMovedAsideAndFlagsLeftAlone) {
    auto& a = holder({dev()});
    auto path = lease_of(a);
    const std::string id = path.substr(path.rfind('/') + 1);
    daemon().signal(SIGKILL);
    daemon().wait(5s);
    ASSERT_TRUE(promisc());
    // The lease's record is damaged while promiscd is down.
    write_file(state() / ("leases/" + id), "{ this is not json");
    stack_->start_daemon();
    EXPECT_NE(daemon().log().find("leases/" + id + " is unusable"), std::string::npos)
        << daemon().log();
    EXPECT_NE(daemon().log().find("left alone"), std::string::npos) << daemon().log();
    EXPECT_TRUE(promisc()) << "a flag nobody can account for is left alone";
    bool moved = false;
    for (const auto& e : std::filesystem::directory_iterator(state() / "leases"))
        moved |= e.path().filename().string().rfind(id + ".damaged-", 0) == 0;
    EXPECT_TRUE(moved);
    auto origin = busctl({"get-property", PROMISCD_BUS_NAME,
                          root + "/link/" + std::to_string(stack_->ifindex_of(dev())),
                          std::string(PROMISCD_BUS_NAME) + ".Link", "Origin"});
    EXPECT_NE(origin.out.find("\"unknown\""), std::string::npos) << origin.out << origin.err;
}

// 12
TEST_F(Bus, SigtermClearsFlagsAndTellsOwners) {
    auto& a = holder({dev()});
    auto& b = holder({dev()});
    lease_of(a);
    lease_of(b);
    daemon().signal(SIGTERM);
    EXPECT_EQ(daemon().wait(10s), 0) << daemon().log();
    EXPECT_NE(a.wait_for_output("ENDED daemon-shutdown"), std::string::npos) << a.log();
    EXPECT_NE(b.wait_for_output("ENDED daemon-shutdown"), std::string::npos) << b.log();
    EXPECT_FALSE(promisc());
    // Nothing is left to recover: no lease and no flag on record.
    EXPECT_TRUE(std::filesystem::is_empty(state() / "leases"));
    EXPECT_TRUE(std::filesystem::is_empty(state() / "links"));
}

TEST_F(Bus, LosingTheBusClearsFlagsAndExits) {
    auto& a = holder({dev()});
    lease_of(a);
    ASSERT_TRUE(promisc());
    ::kill(stack_->bus().bus_pid(), SIGKILL);
    auto status = daemon().wait(10s);
    ASSERT_TRUE(status) << "promiscd keeps running without its bus\n" << daemon().log();
    EXPECT_EQ(*status, 1) << daemon().log();
    EXPECT_NE(daemon().log().find("lost the system bus"), std::string::npos) << daemon().log();
    EXPECT_FALSE(promisc()) << "nobody can hold a lease without the bus: the flag is cleared";
}

// 13
TEST_F(Bus, PolkitUnavailableFailsClosedRootStillWorks) {
    stack_->bus().stop_polkit();
    auto& user = holder({dev()}, &kAllowedUser);
    EXPECT_NE(user.wait_for_output("ERROR org.freedesktop.DBus.Error.AccessDenied"),
              std::string::npos)
        << user.log();
    EXPECT_NE(user.log().find("polkit is unavailable"), std::string::npos) << user.log();
    EXPECT_FALSE(promisc());
    auto& rootc = holder({dev()});
    lease_of(rootc);
    EXPECT_TRUE(promisc());
}

// 15
TEST_F(Bus, BadInputGetsNamedErrorsAndChangesNothing) {
    struct Case {
        std::vector<std::string> args;
        std::string error;
        std::string message;
    };
    const std::vector<Case> cases = {
        {{"AcquireLease", "sa{sv}", dev(), "1", "tll", "t", "5"},
         err + "InvalidArgument",
         "unknown option 'tll'"},
        {{"AcquireLease", "sa{sv}", dev(), "1", "ttl", "s", "5"},
         err + "InvalidArgument",
         "option 'ttl' must be an unsigned integer, not a string"},
        {{"AcquireLease", "sa{sv}", dev(), "1", "ttl", "as", "0"},
         err + "InvalidArgument",
         "option 'ttl' must be an unsigned integer, not D-Bus type 'as'"},

        {{"AcquireLease", "sa{sv}", "eth/0", "0"}, err + "InvalidArgument", "contains '/'"},
        {{"AcquireLease", "sa{sv}", "", "0"}, err + "InvalidArgument", "it is empty"},
        {{"AcquireLease", "sa{sv}", "nosuchlink0", "0"},
         err + "NoSuchInterface",
         "interface 'nosuchlink0' does not exist"},
        {{"AcquireLease", "sa{sv}", dev(), "1", "ttl", "t", "99999999999"},
         err + "InvalidArgument",
         "is longer than the limit of"},
        {{"AcquireLease", "sa{sv}", "v\\q", "0"}, err + "InvalidArgument", "must be followed by"},
        {{"RevokeLease", "os", root + "/lease/999", "x"},
         err + "NoSuchLease",
         "there is no lease 999"},
        {{"RevokeLease", "os", root + "/link/1", "x"}, err + "NoSuchLease", "no lease at"},
        {{"SetLinkPolicy", "ss", dev(), "maybe"},
         err + "InvalidArgument",
         "unknown policy 'maybe'"},
        {{"SetLinkPolicy", "ss", "nosuchlink0", "yield"},
         err + "NoSuchInterface",
         "does not exist"},
    };
    for (const auto& c : cases) {
        std::vector<std::string> args(c.args.begin() + 1, c.args.end());
        auto r = call(c.args[0], args);
        EXPECT_NE(r.status, 0) << c.args[0];
        EXPECT_NE(r.err.find(c.message), std::string::npos)
            << "expected '" << c.message << "' in: " << r.err;
        // busctl prints the message; the error name is checked by python below.
    }
    // The error names as a client library sees them.
    auto py = run({"/usr/bin/python3", "-c",
                   "import dbus,sys\n"
                   "m=dbus.Interface(dbus.SystemBus().get_object('" PROMISCD_BUS_NAME "','" +
                       root + "'),'" + manager +
                       "')\n"
                       "for args in [('" +
                       dev() +
                       "',{'tll':dbus.UInt64(5)}),('eth/0',{}),"
                       "('nosuchlink0',{})]:\n"
                       "  try: m.AcquireLease(*args)\n"
                       "  except dbus.DBusException as e: print(e.get_dbus_name())\n"},
                  stack_->env());
    EXPECT_EQ(py.out,
              err + "InvalidArgument\n" + err + "InvalidArgument\n" + err + "NoSuchInterface\n")
        << py.err;
    auto leases_path = call("Release", {}, nullptr, root + "/lease/77", lease_iface);
    EXPECT_NE(leases_path.status, 0);
    EXPECT_NE(leases_path.err.find("Unknown object"), std::string::npos) << leases_path.err;
    EXPECT_FALSE(promisc());
    EXPECT_TRUE(leases().empty());
}

TEST_F(Bus, InteractiveFlagIsPassedOnlyWhenAllowed) {
    // pdallow may not manage: the .policy default (auth_admin) needs a
    // password. Without the interactive flag the answer says so; with it,
    // polkit could have asked an agent, there is none, so access is denied.
    auto no = busctl({"--allow-interactive-authorization=no", "call", PROMISCD_BUS_NAME, root,
                      manager, "SetLinkPolicy", "ss", dev(), "yield"},
                     &kAllowedUser);
    EXPECT_NE(no.err.find("authentication is required to manage"), std::string::npos) << no.err;
    auto py = pycall("SetLinkPolicy", {"ss", dev(), "yield"}, &kAllowedUser);
    EXPECT_EQ(py.rfind("ERROR org.freedesktop.DBus.Error.InteractiveAuthorizationRequired", 0), 0u)
        << py;
    auto yes = busctl({"--allow-interactive-authorization=yes", "call", PROMISCD_BUS_NAME, root,
                       manager, "SetLinkPolicy", "ss", dev(), "yield"},
                      &kAllowedUser);
    EXPECT_NE(yes.status, 0);
    EXPECT_NE(yes.err.find("Access denied"), std::string::npos) << yes.err;
    EXPECT_EQ(json::parse(call("ListLinks").out)["data"][0].dump().find("yield"), std::string::npos)
        << "no policy changed";
}

TEST_F(Bus, ObjectsAndProperties) {
    auto tree = busctl({"tree", PROMISCD_BUS_NAME});
    EXPECT_EQ(tree.status, 0) << tree.err;
    auto links = json::parse(call("ListLinks").out)["data"][0];
    int index = -1;
    for (const auto& l : links)
        if (l[2] == dev())
            index = l[1];
    ASSERT_GT(index, 0);
    auto link_path = root + "/link/" + std::to_string(index);
    auto& a = holder({dev(), "--reason", "itest"});
    auto path = lease_of(a);
    auto get = [&](const std::string& p, const std::string& iface, const std::string& prop) {
        auto r = busctl({"get-property", PROMISCD_BUS_NAME, p, iface, prop});
        EXPECT_EQ(r.status, 0) << r.err;
        return r.ok() ? json::parse(r.out)["data"] : json();
    };
    const std::string link_iface = std::string(PROMISCD_BUS_NAME) + ".Link";
    EXPECT_EQ(get(link_path, link_iface, "Name"), dev());
    EXPECT_EQ(get(link_path, link_iface, "AdminFlag"), true);
    EXPECT_EQ(get(link_path, link_iface, "Promiscuous"), true);
    EXPECT_EQ(get(link_path, link_iface, "Origin"), "daemon");
    EXPECT_EQ(get(link_path, link_iface, "Leases"), 1);
    EXPECT_EQ(get(link_path, link_iface, "Policy"), "enforce");
    EXPECT_EQ(get(path, lease_iface, "Interface"), dev());
    EXPECT_EQ(get(path, lease_iface, "Reason"), "itest");
    EXPECT_EQ(get(path, lease_iface, "Expires"), 0);
    EXPECT_GT(get(path, lease_iface, "Acquired").get<uint64_t>(), 1'600'000'000'000'000ull);
    // Properties are read-only.
    auto set = busctl({"set-property", PROMISCD_BUS_NAME, path, lease_iface, "Reason", "s", "x"});
    EXPECT_NE(set.status, 0);
    // ObjectManager lists links and leases.
    auto objs = call("GetManagedObjects", {}, nullptr, root, "org.freedesktop.DBus.ObjectManager");
    EXPECT_EQ(objs.status, 0) << objs.err;
    EXPECT_NE(objs.out.find(path), std::string::npos);
    EXPECT_NE(objs.out.find(link_path), std::string::npos);
}

TEST_F(Bus, SignalsFollowLinksAndLeases) {
    auto& m = monitor();
    auto ifb = add_ifb(ns());
    const auto link_path = root + "/link/" + std::to_string(stack_->ifindex_of(ifb));
    EXPECT_NE(m.wait_for_output("ADDED " + link_path + " " + PROMISCD_BUS_NAME + ".Link"),
              std::string::npos)
        << m.log();
    auto& a = holder({ifb});
    auto path = lease_of(a);
    EXPECT_NE(m.wait_for_output("ADDED " + path + " " + lease_iface), std::string::npos) << m.log();
    // What the daemon decided, then what the kernel reports.
    EXPECT_NE(m.wait_for_output("CHANGED " + link_path + " AdminFlag=1 Leases=1 Origin=daemon"),
              std::string::npos)
        << m.log();
    EXPECT_NE(m.wait_for_output("CHANGED " + link_path + " Promiscuity=1 Promiscuous=1"),
              std::string::npos)
        << m.log();
    a.write_stdin("release\n");
    EXPECT_NE(m.wait_for_output("ENDED " + path + " released"), std::string::npos) << m.log();
    EXPECT_NE(m.wait_for_output("REMOVED " + path + " " + lease_iface), std::string::npos)
        << m.log();
    EXPECT_NE(m.wait_for_output("CHANGED " + link_path + " AdminFlag=0 Leases=0 Origin=none"),
              std::string::npos)
        << m.log();
    ns().exec_ok("ip link del dev " + ifb);
    EXPECT_NE(m.wait_for_output("REMOVED " + link_path + " " + PROMISCD_BUS_NAME + ".Link"),
              std::string::npos)
        << m.log();
}

TEST_F(Bus, DeniedRequestsAreAudited) {
    auto& denied = holder({dev()}, &kDeniedUser);
    denied.wait_for_output("ERROR");
    EXPECT_NE(daemon().wait_for_output("acquire on " + dev() + " refused to :"), std::string::npos)
        << daemon().log();
    EXPECT_NE(daemon().log().find("PROMISCD_OPERATION=acquire"), std::string::npos)
        << daemon().log();
    EXPECT_NE(daemon().log().find("PROMISCD_OWNER_UID=64002 "), std::string::npos)
        << daemon().log();
    EXPECT_NE(daemon().log().find("PROMISCD_REASON=uid 64002 is not authorized"), std::string::npos)
        << daemon().log();
}

// The sd_notify protocol as systemd would see it: READY=1 only once the name
// is owned, WATCHDOG=1 pings when WatchdogSec= is set, STOPPING=1 on SIGTERM.
TEST_F(Bus, NotifiesSystemd) {
    stack_->stop_daemon();
    int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    auto sock_path = state() / "notify";
    std::snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    std::string got;
    auto receive_until = [&](const std::string& what) {
        return wait_until([&] {
            char buf[4096];
            ssize_t n;
            while ((n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
                got.append(buf, static_cast<size_t>(n));
                got += '\n';
                if (what == "READY=1" && got.find(what) != std::string::npos) {
                    EXPECT_TRUE(stack_->bus().name_has_owner(PROMISCD_BUS_NAME))
                        << "READY=1 before the bus name was owned";
                }
            }
            return got.find(what) != std::string::npos;
        });
    };
    stack_->launch_daemon({}, {{"NOTIFY_SOCKET", sock_path}, {"WATCHDOG_USEC", "200000"}});
    EXPECT_TRUE(receive_until("READY=1")) << got << daemon().log();
    EXPECT_TRUE(receive_until("WATCHDOG=1")) << got;
    EXPECT_TRUE(receive_until("STATUS=0 leases")) << got;
    auto& a = holder({dev()});
    lease_of(a);
    EXPECT_TRUE(receive_until("STATUS=1 leases (1 active)")) << got;
    daemon().signal(SIGTERM);
    EXPECT_TRUE(receive_until("STOPPING=1")) << got;
    EXPECT_EQ(daemon().wait(10s), 0);
    ::close(fd);
}

// The daemon as its unit runs it: the dedicated user with CAP_NET_ADMIN and
// CAP_NET_RAW only, owning the bus name by the project's policy and asking
// polkit about other users' processes.
class DedicatedUser : public Bus {
    bool as_daemon_user() const override { return true; }
};

TEST_F(DedicatedUser, RunsUnprivilegedWithTheUnitsCapabilities) {
    if (std::string(PROMISCD_DAEMON_USER) == "root")
        GTEST_SKIP() << "built with daemon_user=root";
    auto status = read_file("/proc/" + std::to_string(daemon().pid()) + "/status");
    EXPECT_NE(status.find("CapEff:\t0000000000283000"), std::string::npos)
        << "CAP_NET_ADMIN|CAP_NET_RAW, and for other network namespaces "
           "CAP_SYS_PTRACE|CAP_SYS_ADMIN, only:\n"
        << status;
    auto& allowed = holder({dev()}, &kAllowedUser);
    lease_of(allowed);
    EXPECT_TRUE(promisc());
    auto& denied = holder({dev()}, &kDeniedUser);
    EXPECT_NE(denied.wait_for_output("ERROR org.freedesktop.DBus.Error.AccessDenied"),
              std::string::npos)
        << denied.log();
    daemon().signal(SIGTERM);
    EXPECT_EQ(daemon().wait(10s), 0) << daemon().log();
    EXPECT_FALSE(promisc()) << daemon().log();
}

// 9
class Manage : public Bus {
    std::string rules() const override {
        return R"js(
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.promiscd.") != 0)
        return polkit.Result.NOT_HANDLED;
    if (subject.user == "pdallow")
        return polkit.Result.YES;
    return polkit.Result.NO;
});
)js";
    }
};

TEST_F(Manage, RevokeByManagerAndDeniedForOthers) {
    auto& victim = holder({dev()});
    auto path = lease_of(victim);
    auto denied = pycall("RevokeLease", {"os", path, "no"}, &kDeniedUser);
    EXPECT_EQ(denied.rfind("ERROR org.freedesktop.DBus.Error.AccessDenied uid 64002 is not "
                           "authorized to manage",
                           0),
              0u)
        << denied;
    EXPECT_EQ(leases().size(), 1u);
    auto ok = call("RevokeLease", {"os", path, "maintenance"}, &kAllowedUser);
    EXPECT_EQ(ok.status, 0) << ok.err;
    EXPECT_NE(victim.wait_for_output("ENDED revoked"), std::string::npos) << victim.log();
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));
}

// 14
class SlowPolkit : public Bus {
    std::string rules() const override {
        return R"js(
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.promiscd.") != 0)
        return polkit.Result.NOT_HANDLED;
    if (subject.user == "pdallow") {
        polkit.spawn(["sleep", "2"]);
        return polkit.Result.YES;
    }
    return polkit.Result.NO;
});
)js";
    }
};

TEST_F(SlowPolkit, OthersAreServedWhileACheckWaits) {
    auto& slow = holder({dev()}, &kAllowedUser);
    // Let its request reach polkit.
    std::this_thread::sleep_for(300ms);
    auto list = call("ListLinks", {}, &kDeniedUser);
    EXPECT_EQ(list.status, 0) << list.err;
    EXPECT_EQ(slow.log().find("LEASE"), std::string::npos)
        << "ListLinks was answered while the slow check was still pending";
    auto& rootc = holder({dev()});
    lease_of(rootc);
    EXPECT_EQ(slow.log().find("LEASE"), std::string::npos)
        << "root's lease was granted while the slow check was still pending";
    EXPECT_NE(slow.wait_for_output("LEASE", 10s), std::string::npos) << slow.log();
    EXPECT_EQ(leases().size(), 2u);
}

TEST_F(SlowPolkit, CallerGoneWhileCheckPendingGetsNothing) {
    auto& slow = holder({dev()}, &kAllowedUser);
    std::this_thread::sleep_for(300ms);
    slow.signal(SIGKILL);
    slow.wait(5s);
    std::this_thread::sleep_for(2500ms); // past polkit's answer
    EXPECT_TRUE(leases().empty()) << daemon().log();
    EXPECT_FALSE(promisc());
}

} // namespace
