// The files the package installs, checked with the tools that will read them:
// xmlwf/xmllint, a private system bus with the project's bus policy, polkitd
// with the project's actions, and systemd-analyze on the unit.
#include "bus_stack.hpp"
#include "process.hpp"
#include "test_paths.h"

#include <filesystem>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <regex>

namespace promiscd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kPrefix = PROMISCD_ACTION_PREFIX;
const std::string kAcquire = kPrefix + ".promisc.acquire";
const std::string kCapture = kPrefix + ".capture";
const std::string kRawSocket = kPrefix + ".capture.raw-socket";
const std::string kManage = kPrefix + ".manage";
const std::vector<std::string> kActions = {kAcquire, kCapture, kRawSocket, kManage};

// A process that stays alive as `user`, to be named in `pkcheck --process`.
// Returns once it runs as the user (pkcheck reads the uid from /proc).
std::unique_ptr<Process> sleeper_as(const TestUser& user) {
    auto p = std::make_unique<Process>(as_user(user, {"sleep", "600"}));
    std::string status = "/proc/" + std::to_string(p->pid()) + "/status";
    bool ready = wait_until([&] {
        return read_file("/proc/" + std::to_string(p->pid()) + "/comm") == "sleep\n" &&
               read_file(status).find("\nUid:\t" + std::to_string(user.uid) + "\t") !=
                   std::string::npos;
    });
    if (!ready)
        throw std::runtime_error("sleeper did not start as uid " + std::to_string(user.uid));
    return p;
}

CommandResult pkcheck(const BusStack& bus, const std::string& action, pid_t pid) {
    return run({"pkcheck", "--action-id", action, "--process", std::to_string(pid)}, bus.env());
}

// pkcheck: 0 authorized, 1 not authorized, 2 authentication required (which
// without an agent is also "no"), 3 dismissed, 127 error.
void expect_denied(const CommandResult& r, const std::string& what) {
    EXPECT_TRUE(r.status == 1 || r.status == 2) << what << ": status " << r.status << "\n"
                                                << r.out << r.err;
}

// A python3-dbus client: calls iface.method on the daemon's name and prints
// "ok" or the D-Bus error name.
CommandResult call_as(const BusStack& bus, const TestUser& user, const std::string& iface,
                      const std::string& method) {
    const std::string script = "import sys, dbus\n"
                               "bus = dbus.SystemBus()\n"
                               "try:\n"
                               "    m = bus.get_object(sys.argv[1], sys.argv[2],"
                               " introspect=False).get_dbus_method(sys.argv[4], sys.argv[3])\n"
                               "    m(timeout=5)\n"
                               "    print('ok')\n"
                               "except dbus.exceptions.DBusException as e:\n"
                               "    print(e.get_dbus_name())\n";
    return run(
        as_user(user, {"/usr/bin/python3", "-c", script, PROMISCD_BUS_NAME, "/", iface, method}),
        bus.env());
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

TEST(Packaging, InstalledXmlIsWellFormed) {
    PROMISCD_REQUIRE_ROOT();
    for (const char* f : {PROMISCD_POLKIT_POLICY, PROMISCD_DBUS_POLICY, PROMISCD_DBUS_XML}) {
        auto r = run({"xmlwf", f});
        EXPECT_TRUE(r.ok() && r.out.empty() && r.err.empty()) << f << ":\n" << r.out << r.err;
    }
    // polkit ships the DTD of .policy files: validate against it too.
    auto r = run({"xmllint", "--noout", "--dtdvalid", "/usr/share/polkit-1/policyconfig-1.dtd",
                  PROMISCD_POLKIT_POLICY});
    EXPECT_TRUE(r.ok()) << r.out << r.err;
}

TEST(Packaging, ConfiguredFilesHaveNoPlaceholdersLeft) {
    PROMISCD_REQUIRE_ROOT();
    const std::regex placeholder("@[A-Z_]+@");
    for (const char* f : {PROMISCD_POLKIT_POLICY, PROMISCD_POLKIT_RULES_EXAMPLE,
                          PROMISCD_DBUS_POLICY, PROMISCD_DBUS_SERVICE, PROMISCD_SYSTEMD_UNIT}) {
        auto text = read_file(f);
        EXPECT_FALSE(text.empty()) << f;
        EXPECT_FALSE(std::regex_search(text, placeholder)) << f;
    }
    auto service = read_file(PROMISCD_DBUS_SERVICE);
    EXPECT_THAT(service, HasSubstr("Name=" PROMISCD_BUS_NAME "\n"));
    EXPECT_THAT(service, HasSubstr("SystemdService=promiscd.service\n"));
    auto unit = read_file(PROMISCD_SYSTEMD_UNIT);
    EXPECT_THAT(unit, HasSubstr("BusName=" PROMISCD_BUS_NAME "\n"));
    EXPECT_THAT(unit, HasSubstr("CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW\n"));
}

TEST(Packaging, PkactionKnowsEachActionWithItsDefaults) {
    PROMISCD_REQUIRE_ROOT();
    BusStack bus;
    bus.start_polkit();

    auto all = run({"pkaction"}, bus.env());
    ASSERT_TRUE(all.ok()) << all.err;
    EXPECT_EQ(trim(all.out), kCapture + "\n" + kRawSocket + "\n" + kManage + "\n" + kAcquire);

    for (const auto& action : kActions) {
        auto r = run({"pkaction", "--action-id", action, "--verbose"}, bus.env());
        ASSERT_TRUE(r.ok()) << action << ":\n" << r.out << r.err;
        EXPECT_THAT(r.out, HasSubstr(action + ":\n"));
        EXPECT_THAT(r.out, HasSubstr("vendor:            promiscd\n"));
        EXPECT_THAT(r.out, HasSubstr("implicit any:      auth_admin\n"));
        EXPECT_THAT(r.out, HasSubstr("implicit inactive: auth_admin\n"));
        EXPECT_THAT(r.out, HasSubstr("implicit active:   auth_admin_keep\n"));
        EXPECT_THAT(r.out, Not(HasSubstr("description:       \n"))) << action;
        EXPECT_THAT(r.out, Not(HasSubstr("message:           \n"))) << action;
    }
    auto imply = [&](const std::string& action) {
        auto r = run({"pkaction", "--action-id", action, "--verbose"}, bus.env());
        std::smatch m;
        static const std::regex re("org\\.freedesktop\\.policykit\\.imply -> ([^\n]*)");
        return std::regex_search(r.out, m, re) ? m[1].str() : std::string();
    };
    EXPECT_EQ(imply(kAcquire), "");
    EXPECT_EQ(imply(kCapture), kAcquire);
    EXPECT_EQ(imply(kRawSocket), kCapture + " " + kAcquire);
    EXPECT_EQ(imply(kManage), kAcquire);
}

TEST(Packaging, ExampleRulesLetGroupPromiscAcquireAndCaptureOnly) {
    PROMISCD_REQUIRE_ROOT();
    BusStack bus;
    bus.start_polkit(read_file(PROMISCD_POLKIT_RULES_EXAMPLE));
    auto allowed = sleeper_as(kAllowedUser);
    auto denied = sleeper_as(kDeniedUser);

    for (const auto& action : {kAcquire, kCapture}) {
        auto r = pkcheck(bus, action, allowed->pid());
        EXPECT_EQ(r.status, 0) << action << ":\n" << r.out << r.err;
    }
    for (const auto& action : {kRawSocket, kManage})
        expect_denied(pkcheck(bus, action, allowed->pid()), action + " for pdallow");
    for (const auto& action : kActions)
        expect_denied(pkcheck(bus, action, denied->pid()), action + " for pddeny");
}

// polkit grants an action to whoever is authorized for an action that implies it.
TEST(Packaging, ImpliedActionsFollowTheirImplyingAction) {
    PROMISCD_REQUIRE_ROOT();
    BusStack bus;
    auto grant_only = [&](const std::string& action) {
        bus.start_polkit("polkit.addRule(function(action, subject) {\n"
                         "    if (action.id == \"" +
                         action +
                         "\" && subject.user == \"pdallow\")\n"
                         "        return polkit.Result.YES;\n"
                         "});\n");
    };
    auto allowed = sleeper_as(kAllowedUser);
    auto authorized = [&](const std::string& action) {
        return pkcheck(bus, action, allowed->pid()).status == 0;
    };

    grant_only(kRawSocket);
    EXPECT_TRUE(authorized(kRawSocket));
    EXPECT_TRUE(authorized(kCapture));
    EXPECT_TRUE(authorized(kAcquire));
    EXPECT_FALSE(authorized(kManage));

    grant_only(kCapture);
    EXPECT_TRUE(authorized(kAcquire));
    EXPECT_FALSE(authorized(kRawSocket));
    EXPECT_FALSE(authorized(kManage));

    grant_only(kManage);
    EXPECT_TRUE(authorized(kAcquire));
    EXPECT_FALSE(authorized(kCapture)) << "managing leases is not reading traffic";
    EXPECT_FALSE(authorized(kRawSocket));

    grant_only(kAcquire);
    EXPECT_FALSE(authorized(kCapture));
    EXPECT_FALSE(authorized(kManage));
}

TEST(Packaging, WithoutRulesOnlyAnAdministratorCouldAuthorize) {
    PROMISCD_REQUIRE_ROOT();
    BusStack bus;
    bus.start_polkit();
    auto allowed = sleeper_as(kAllowedUser);
    for (const auto& action : kActions) {
        auto r = pkcheck(bus, action, allowed->pid());
        EXPECT_EQ(r.status, 2) << action << ":\n" << r.out << r.err;
        EXPECT_THAT(r.err, HasSubstr("requires authentication")) << action;
    }
}

TEST(Packaging, BusPolicyLetsOnlyTheDaemonUserOwnTheName) {
    PROMISCD_REQUIRE_ROOT();
    BusStack::Options opts;
    opts.root_may_own_bus_name = false; // the project's policy alone
    BusStack bus(opts);

    // busctl says only "Access denied"; python3-dbus gives the error name.
    const std::string request_name = "import sys, dbus\n"
                                     "try:\n"
                                     "    print(dbus.SystemBus().request_name(sys.argv[1]))\n"
                                     "except dbus.exceptions.DBusException as e:\n"
                                     "    print(e.get_dbus_name())\n";
    for (const auto& user : {kAllowedUser, kDeniedUser}) {
        auto r = run(as_user(user, {"/usr/bin/python3", "-c", request_name, PROMISCD_BUS_NAME}),
                     bus.env());
        EXPECT_EQ(trim(r.out), "org.freedesktop.DBus.Error.AccessDenied") << user.name << r.err;
    }
    EXPECT_FALSE(bus.name_has_owner(PROMISCD_BUS_NAME));

    std::vector<std::string> request = {"busctl",
                                        "--system",
                                        "call",
                                        "org.freedesktop.DBus",
                                        "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus"};
    request.insert(request.end(), {"RequestName", "su", PROMISCD_BUS_NAME, "0"});
    if (std::string(PROMISCD_DAEMON_USER) != "root")
        request.insert(request.begin(), {"setpriv", "--reuid=" PROMISCD_DAEMON_USER,
                                         "--regid=" PROMISCD_DAEMON_USER, "--init-groups", "--"});
    auto r = run(request, bus.env());
    EXPECT_TRUE(r.ok()) << r.err;
    EXPECT_EQ(r.out, "u 1\n"); // DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
}

TEST(Packaging, BusPolicyLetsEveryoneCallTheDaemonInterfacesOnly) {
    PROMISCD_REQUIRE_ROOT();
    BusStack::Options opts;
    opts.root_may_own_bus_name = false;
    BusStack bus(opts);

    // A stand-in owner of the name (the daemon user may own it): python3-dbus
    // answers Peer itself and every other call with UnknownMethod, so a call
    // that comes back with anything but AccessDenied passed the bus policy.
    const std::string owner = "import sys, dbus, dbus.mainloop.glib\n"
                              "from gi.repository import GLib\n"
                              "dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)\n"
                              "bus = dbus.SystemBus()\n"
                              "bus.request_name(sys.argv[1])\n"
                              "GLib.MainLoop().run()\n";
    std::vector<std::string> argv = {"/usr/bin/python3", "-c", owner, PROMISCD_BUS_NAME};
    if (std::string(PROMISCD_DAEMON_USER) != "root")
        argv.insert(argv.begin(), {"setpriv", "--reuid=" PROMISCD_DAEMON_USER,
                                   "--regid=" PROMISCD_DAEMON_USER, "--init-groups", "--"});
    Process::Options po;
    po.env = bus.env();
    Process service(argv, po);
    ASSERT_TRUE(wait_until([&] { return bus.name_has_owner(PROMISCD_BUS_NAME); })) << service.log();

    const std::string base = PROMISCD_BUS_NAME;
    for (const auto& user : {kAllowedUser, kDeniedUser}) {
        EXPECT_EQ(trim(call_as(bus, user, "org.freedesktop.DBus.Peer", "Ping").out), "ok");
        for (const std::string& iface :
             {base + ".Manager", base + ".Link", base + ".Lease", base + ".Capture",
              std::string("org.freedesktop.DBus.Properties"),
              std::string("org.freedesktop.DBus.Introspectable"),
              std::string("org.freedesktop.DBus.ObjectManager")}) {
            auto r = call_as(bus, user, iface, "NoSuchMethod");
            EXPECT_EQ(trim(r.out), "org.freedesktop.DBus.Error.UnknownMethod")
                << user.name << " " << iface << r.err;
        }
        auto r = call_as(bus, user, "org.example.NotPromiscd", "Anything");
        EXPECT_EQ(trim(r.out), "org.freedesktop.DBus.Error.AccessDenied") << user.name << r.err;
    }
}

TEST(Packaging, SystemdAnalyzeVerifiesTheUnit) {
    PROMISCD_REQUIRE_ROOT();
    // verify needs ExecStart= to exist and the units the service depends on
    // (sysinit.target, dbus.socket, ...): give it a root with the host's
    // units, the configured unit, and a stand-in at the configured path.
    auto unit = read_file(PROMISCD_SYSTEMD_UNIT);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(unit, m, std::regex("\nExecStart=(/[^ \n]+)")));
    const std::string exec_start = m[1].str();

    TempDir root;
    std::filesystem::create_directories(root / "etc/systemd/system");
    std::filesystem::create_directories(root / "usr/lib/systemd");
    std::filesystem::create_directories(
        std::filesystem::path(root / exec_start.substr(1)).parent_path());
    write_file(root / exec_start.substr(1), "#!/bin/sh\n", 0755);
    // ExecReload= uses the system's kill(1).
    std::filesystem::create_directories(root / "bin");
    ASSERT_TRUE(run({"cp", "/bin/kill", root / "bin/kill"}).ok());
    write_file(root / "etc/systemd/system/promiscd.service", unit);
    write_file(root / "etc/systemd/system/promiscd.socket", read_file(PROMISCD_SYSTEMD_SOCKET));
    ASSERT_TRUE(run({"cp", "-a", "/lib/systemd/system", root / "usr/lib/systemd/"}).ok());

    auto r = run({"systemd-analyze", "--root=" + root.path(), "verify", "promiscd.service",
                  "promiscd.socket"});
    EXPECT_TRUE(r.ok()) << r.out << r.err;
    // Unknown or misspelt keys are only warnings: fail on any output.
    EXPECT_EQ(r.out + r.err, "");

    // Resource bounds a flood cannot push past (docs/SECURITY.md).
    for (const char* key : {"\nLimitNOFILE=1024\n", "\nMemoryHigh=", "\nMemoryMax=", "\nTasksMax="})
        EXPECT_NE(unit.find(key), std::string::npos) << key;

    // The hardening, as systemd scores it (lower is better; 2.5 when written,
    // 1.8 since the hostile-input work: it may not get worse).
    auto sec = run({"systemd-analyze", "security", "--offline=yes", PROMISCD_SYSTEMD_UNIT});
    ASSERT_TRUE(sec.ok()) << sec.out << sec.err;
    ASSERT_TRUE(
        std::regex_search(sec.out, m, std::regex("Overall exposure level for [^:]*: ([0-9.]+)")))
        << sec.out;
    EXPECT_LE(std::stod(m[1].str()), 1.8) << sec.out;
}

TEST(BusStackHarness, TestUsersExistForTheBusAndPolkitdOnly) {
    PROMISCD_REQUIRE_ROOT();
    BusStack bus;
    auto r = run(bus.with_test_users({"id", "-nG", kAllowedUser.name}));
    EXPECT_EQ(r.out, std::string(kAllowedUser.name) + " " + kPromiscGroup + "\n") << r.err;
    r = run(bus.with_test_users({"id", "-nG", kDeniedUser.name}));
    EXPECT_EQ(r.out, std::string(kDeniedUser.name) + "\n") << r.err;
    // The host's view is unchanged.
    EXPECT_FALSE(run({"id", kAllowedUser.name}).ok());
}

TEST(BusStackHarness, PolkitdStopsAndRestarts) {
    PROMISCD_REQUIRE_ROOT();
    BusStack bus;
    EXPECT_FALSE(bus.name_has_owner("org.freedesktop.PolicyKit1"));
    bus.start_polkit();
    EXPECT_TRUE(bus.polkit_running());
    EXPECT_TRUE(bus.name_has_owner("org.freedesktop.PolicyKit1"));
    bus.stop_polkit();
    EXPECT_FALSE(bus.polkit_running());
    EXPECT_FALSE(bus.name_has_owner("org.freedesktop.PolicyKit1"));
    // A check with polkitd gone fails as an error, not as an answer.
    auto r = run({"pkaction"}, bus.env());
    EXPECT_FALSE(r.ok());
    bus.start_polkit("polkit.addRule(function(a, s) { return polkit.Result.YES; });");
    auto sleeper = sleeper_as(kDeniedUser);
    EXPECT_EQ(pkcheck(bus, kManage, sleeper->pid()).status, 0);
}

TEST(BusStackHarness, TearsDownEverything) {
    PROMISCD_REQUIRE_ROOT();
    std::string dir;
    pid_t bus_pid = -1, polkit_pid = -1;
    {
        BusStack bus;
        bus.start_polkit();
        dir = bus.dir();
        bus_pid = bus.bus_pid();
        polkit_pid = bus.polkit_pid();
    }
    EXPECT_FALSE(std::filesystem::exists(dir));
    for (pid_t pid : {bus_pid, polkit_pid}) {
        auto status = read_file("/proc/" + std::to_string(pid) + "/status");
        EXPECT_TRUE(status.empty() || status.find("State:\tZ") != std::string::npos) << pid;
    }
    // The bind mounts lived in the processes' own mount namespaces.
    EXPECT_THAT(read_file("/proc/self/mountinfo"), Not(HasSubstr(dir)));
}

} // namespace
} // namespace promiscd::testing
