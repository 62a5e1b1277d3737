// Links of other network namespaces (issue 13), end to end: namespaces the
// test made with `ip netns add` and `unshare --net`, the same link names in
// two of them, a private bus with the project's policy, polkitd with rules
// that allow one namespace only, the daemon as a separate process, and
// clients nobody here wrote (busctl, python3-dbus, tshark, varlink from
// python's standard library).
#include "daemon_stack.hpp"
#include "frames.hpp"
#include "test_paths.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>

using namespace promiscd::testing;
using nlohmann::json;

namespace {

const std::string& root = kRootPath;
const std::string& err = kErrorPrefix;
const std::string access_denied = "org.freedesktop.DBus.Error.AccessDenied";
const std::string kLink = "pdv0"; // the same name in both namespaces
const std::string kPeer = "pdv1";
constexpr uint16_t kEtherType = 0x88b5;

uint64_t inode_of(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0)
        throw std::runtime_error("stat " + path);
    return st.st_ino;
}

// A frame from the peer, tagged with which namespace sent it.
Bytes tagged_frame(char tag, uint8_t seq) {
    Bytes f(6, 0xff);
    f.insert(f.end(), {0x02, 0x00, 0x00, 0x00, 0x00, static_cast<uint8_t>(tag)});
    f.insert(f.end(), {static_cast<uint8_t>(kEtherType >> 8), static_cast<uint8_t>(kEtherType)});
    f.insert(f.end(), {static_cast<uint8_t>(tag), seq});
    while (f.size() < 60)
        f.push_back(seq);
    return f;
}

class NetnsTest : public DaemonTest {
protected:
    void SetUp() override {
        PROMISCD_REQUIRE_ROOT();
        for (auto* ns : {&a_, &b_}) {
            *ns = std::make_unique<Netns>();
            add_veth(**ns, kLink, kPeer);
            (*ns)->exec_ok("ip link set dev " + kLink + " up && ip link set dev " + kPeer + " up");
        }
        DaemonTest::SetUp();
    }
    void TearDown() override {
        DaemonTest::TearDown();
        a_.reset();
        b_.reset();
    }

    // pdallow: the host's links, and namespace A only (named and by inode:
    // the daemon passes both); pddeny: nothing. Each check is logged.
    DaemonStack::Options options() const override {
        DaemonStack::Options o;
        o.polkit_rules = R"js(
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.promiscd.") != 0)
        return polkit.Result.NOT_HANDLED;
    polkit.log("CHECK " + action.id + " " + subject.user + " netns=" + action.lookup("netns") +
               " inode=" + action.lookup("netns_inode") + " op=" + action.lookup("operation"));
    if (subject.user != "pdallow")
        return polkit.Result.NO;
    if (action.id == "org.promiscd.promisc.acquire" || action.id == "org.promiscd.capture")
        return polkit.Result.YES;
    if (action.id == "org.promiscd.netns" && action.lookup("netns") == ")js" +
                         a_->name() + R"js(" && action.lookup("netns_inode") == ")js" +
                         std::to_string(inode_of(a_->path())) + R"js(")
        return polkit.Result.YES;
    return polkit.Result.NO;
});
)js";
        o.polkit_debug = true;
        return o;
    }

    Netns& a() { return *a_; }
    Netns& b() { return *b_; }
    Process& daemon() { return stack().daemon(); }
    CommandResult call(const std::string& method, std::vector<std::string> args = {},
                       const TestUser* user = nullptr, const std::string& path = root,
                       const std::string& iface = kManagerIface) {
        return stack().call(method, std::move(args), user, path, iface);
    }
    // A python3-dbus client holding a lease on link in netns; the lease's
    // path, or "" (and the client's ERROR line in the log).
    std::string acquire(const std::string& link, const std::string& netns,
                        const TestUser* user = nullptr) {
        auto& h = stack().lease_holder({link, "--netns", netns}, user);
        auto pos = h.wait_for_output("LEASE ", 10s);
        if (pos == std::string::npos)
            return {};
        auto line = h.log().substr(pos + 6);
        return line.substr(0, line.find(' '));
    }
    // AcquireLease(link, {"netns": netns}) through python3-dbus, which shows
    // the error's name: "ERROR <name> <message>".
    std::string error_of(const std::string& link, const std::string& netns,
                         const TestUser* user = nullptr, const std::string& sig = "s") {
        std::vector<std::string> argv = {"/usr/bin/python3",
                                         std::string(PROMISCD_SOURCE_ROOT) +
                                             "/tests/integration/clients/call.py",
                                         root,
                                         kManagerIface,
                                         "AcquireLease",
                                         "sa{sv}",
                                         link,
                                         json{{"netns", {sig, netns}}}.dump()};
        if (user)
            argv = as_user(*user, argv);
        auto r = run(argv, stack().env());
        EXPECT_FALSE(r.ok()) << r.out;
        return r.out + r.err;
    }
    json property(const std::string& path, const std::string& iface, const std::string& name) {
        auto r = stack().busctl({"get-property", PROMISCD_BUS_NAME, path, iface, name});
        EXPECT_TRUE(r.ok()) << r.err;
        return r.ok() ? json::parse(r.out)["data"] : json();
    }
    bool promisc_in(const Netns& ns, const std::string& dev = kLink) {
        auto s = link_state(ns, dev);
        return s && s->promisc();
    }
    size_t daemon_fds() {
        size_t n = 0;
        for ([[maybe_unused]] const auto& e :
             std::filesystem::directory_iterator("/proc/" + std::to_string(daemon().pid()) + "/fd"))
            ++n;
        return n;
    }
    long daemon_rss_kib() {
        std::ifstream in("/proc/" + std::to_string(daemon().pid()) + "/status");
        for (std::string line; std::getline(in, line);)
            if (line.rfind("VmRSS:", 0) == 0)
                return std::stol(line.substr(6));
        return -1;
    }
    // clients/capture_client.py (python3-dbus); see its usage.
    Process& capture_client(const std::string& iface, const std::string& options,
                            std::vector<std::string> extra = {}) {
        std::vector<std::string> argv = {"/usr/bin/python3",
                                         std::string(PROMISCD_SOURCE_ROOT) +
                                             "/tests/integration/clients/capture_client.py",
                                         iface, options};
        argv.insert(argv.end(), extra.begin(), extra.end());
        Process::Options o;
        o.stdin_pipe = true;
        return stack().spawn(argv, o);
    }
    std::string capture_path(Process& c) {
        auto pos = c.wait_for_output("CAPTURE ", 10s);
        if (pos == std::string::npos) {
            ADD_FAILURE() << "no capture: " << c.log();
            return {};
        }
        auto line = c.log().substr(pos + 8);
        return line.substr(0, line.find(' '));
    }

    std::unique_ptr<Netns> a_, b_;
};

// ------------------------------------------------------------------ identity

TEST_F(NetnsTest, SameNamesInTwoNamespacesAreTwoIndependentLinks) {
    ASSERT_FALSE(promisc_in(a()));
    ASSERT_FALSE(promisc_in(b()));
    // A by name (root, busctl); B by path (python3-dbus).
    const auto lease_a = acquire(kLink, a().name());
    ASSERT_FALSE(lease_a.empty()) << stack().logs();
    EXPECT_TRUE(promisc_in(a())) << "ip -n A link shows PROMISC";
    EXPECT_FALSE(promisc_in(b())) << "B's link of the same name is another link";
    EXPECT_FALSE(stack().promisc()) << "and so is the host's";

    auto& holder = stack().lease_holder({kLink, "--netns", b().path()});
    const auto lease_b = DaemonStack::lease_of(holder);
    ASSERT_FALSE(lease_b.empty());
    EXPECT_TRUE(promisc_in(b()));

    // The lease says which namespace; its interface is the link's own name.
    EXPECT_EQ(property(lease_a, kLeaseIface, "Interface"), kLink);
    EXPECT_EQ(property(lease_a, kLeaseIface, "NetNS"), a().name());
    EXPECT_EQ(property(lease_a, kLeaseIface, "NetNSInode"), inode_of(a().path()));
    EXPECT_EQ(property(lease_b, kLeaseIface, "NetNS"), b().path());
    EXPECT_EQ(property(lease_b, kLeaseIface, "NetNSInode"), inode_of(b().path()));

    // Two Link objects named pdv0, each with its namespace and kernel index.
    auto links = DaemonStack::reply_of(stack().varlink_call(kVarlinkIface + "ListLinks"));
    std::map<uint64_t, json> ours;
    for (const auto& l : links["links"])
        if (l["name"] == kLink)
            ours[l.value("netns_inode", uint64_t{0})] = l;
    ASSERT_EQ(ours.size(), 2u) << links.dump(1);
    const auto& la = ours[inode_of(a().path())];
    EXPECT_EQ(la["netns"], a().name());
    EXPECT_EQ(la["index"], link_state(a(), kLink)->ifindex);
    EXPECT_EQ(la["admin_flag"], true);
    EXPECT_EQ(la["leases"], 1);
    EXPECT_EQ(ours[inode_of(b().path())]["index"], link_state(b(), kLink)->ifindex);

    // Releasing A's lease clears A's flag only.
    ASSERT_TRUE(call("Release", {}, nullptr, lease_a, kLeaseIface).ok());
    EXPECT_FALSE(promisc_in(a()));
    EXPECT_TRUE(promisc_in(b()));
    // Leases of the varlink transport: B's too, and both name the namespace.
    auto leases = DaemonStack::reply_of(stack().varlink_call(kVarlinkIface + "ListLeases"));
    ASSERT_EQ(leases["leases"].size(), 1u) << leases;
    EXPECT_EQ(leases["leases"][0]["interface"], kLink);
    EXPECT_EQ(leases["leases"][0]["netns"], b().path());
    EXPECT_EQ(leases["leases"][0]["netns_inode"], inode_of(b().path()));

    holder.write_stdin("release\n");
    EXPECT_NE(holder.wait_for_output("RELEASED"), std::string::npos) << holder.log();
    EXPECT_FALSE(promisc_in(b()));
    // Nobody uses either namespace: promiscd stops watching them.
    EXPECT_NE(daemon().wait_for_output("stopped watching network namespace '" + b().path()),
              std::string::npos)
        << daemon().log();
}

TEST_F(NetnsTest, ACaptureSeesOnlyItsNamespacesFrames) {
    const std::string opts = R"({"netns": ["s", ")" + a().name() +
                             R"("], "filter": ["s", "ether proto 0x88b5"], "count": ["t", 4]})";
    auto& c = capture_client(kLink, opts, {"--tshark", stack().state() / "tshark.json"});
    const auto path = capture_path(c);
    ASSERT_FALSE(path.empty());
    EXPECT_EQ(property(path, std::string(PROMISCD_BUS_NAME) + ".Capture", "NetNSInode"),
              inode_of(a().path()));
    EXPECT_EQ(property(path, std::string(PROMISCD_BUS_NAME) + ".Capture", "Interface"), kLink);
    EXPECT_TRUE(promisc_in(a())) << "the capture holds a lease in A";
    EXPECT_FALSE(promisc_in(b()));
    {
        FrameSender from_a(a(), kPeer);
        FrameSender from_b(b(), kPeer);
        for (uint8_t i = 0; i < 4; ++i) {
            from_b.send(tagged_frame('B', i));
            from_a.send(tagged_frame('A', i));
        }
    }
    ASSERT_NE(c.wait_for_output("TSHARK 0", 30s), std::string::npos) << c.log();
    auto j = json::parse(read_file(stack().state() / "tshark.json"));
    ASSERT_EQ(j.size(), 4u) << j.dump(1);
    for (uint8_t i = 0; i < 4; ++i)
        EXPECT_EQ(j[i]["_source"]["layers"]["frame_raw"][0], hex(tagged_frame('A', i))) << int(i);
    EXPECT_NE(c.wait_for_output("FINISHED " + path + " count-reached"), std::string::npos)
        << c.log();
    EXPECT_FALSE(promisc_in(a())) << "the capture's lease ended with it";
}

// ------------------------------------------------------------------ life

TEST_F(NetnsTest, PidNamedNamespaceEndsWhenItsLastProcessExits) {
    // A process alone in a new namespace: nothing else holds it (no mount).
    auto& sleeper = stack().spawn({"unshare", "--net", "--", "sleep", "600"});
    const std::string pid = std::to_string(sleeper.pid());
    const std::string ns_file = "/proc/" + pid + "/ns/net";
    for (int i = 0; i < 100 && inode_of(ns_file) == inode_of("/proc/self/ns/net"); ++i)
        std::this_thread::sleep_for(20ms);
    const uint64_t inode = inode_of(ns_file);
    ASSERT_NE(inode, inode_of("/proc/self/ns/net"));
    auto lo_promisc = [&] {
        auto r = run({"nsenter", "--net=" + ns_file, "ip", "-j", "link", "show", "lo"});
        return r.ok() && r.out.find("PROMISC") != std::string::npos;
    };

    auto& holder = stack().lease_holder({"lo", "--netns", "pid:" + pid});
    const auto lease = DaemonStack::lease_of(holder);
    ASSERT_FALSE(lease.empty()) << stack().logs();
    EXPECT_TRUE(lo_promisc()) << "lo in the process's namespace is promiscuous";
    EXPECT_EQ(property(lease, kLeaseIface, "NetNSInode"), inode);
    auto& c =
        capture_client("lo", R"({"netns": ["s", "pid:)" + pid + R"("], "promisc": ["b", false]})");
    const auto capture = capture_path(c);
    ASSERT_FALSE(capture.empty());

    sleeper.signal(SIGKILL);
    EXPECT_NE(holder.wait_for_output("ENDED netns-gone", 10s), std::string::npos)
        << holder.log() << stack().logs();
    EXPECT_NE(c.wait_for_output("FINISHED " + capture + " netns-gone", 10s), std::string::npos)
        << c.log();
    EXPECT_NE(c.wait_for_output("EOF "), std::string::npos) << c.log();
    EXPECT_TRUE(stack().leases().empty());
    EXPECT_NE(daemon().wait_for_output("stopped watching network namespace 'pid:" + pid),
              std::string::npos)
        << daemon().log();
}

// A namespace of `ip netns` deleted while leased: nothing holds it any more
// but promiscd's own sockets (the mount went): its leases end netns-gone.
TEST_F(NetnsTest, DeletedNamedNamespaceEndsItsLeases) {
    auto& holder = stack().lease_holder({kLink, "--netns", b().name()});
    ASSERT_FALSE(DaemonStack::lease_of(holder).empty());
    const std::string name = b().name();
    b_.reset(); // ip netns del
    EXPECT_NE(holder.wait_for_output("ENDED netns-gone", 15s), std::string::npos)
        << holder.log() << stack().logs();
    EXPECT_NE(daemon().wait_for_output("stopped watching network namespace '" + name),
              std::string::npos)
        << daemon().log();
    EXPECT_TRUE(stack().leases().empty());
}

// ------------------------------------------------------------------ crash recovery

// SIGKILL with leases in two namespaces held; one namespace goes while
// promiscd is down, the other lives: its lease is adopted (same path, no
// flicker of its flag), and it still works, up to the final clear.
TEST_F(NetnsTest, CrashRecoveryAdoptsANamespacesLeaseWithoutFlicker) {
    auto& holder = stack().lease_holder({kLink, "--netns", a().name()});
    const auto path = DaemonStack::lease_of(holder);
    ASSERT_FALSE(path.empty());
    ASSERT_TRUE(promisc_in(a()));
    // A second namespace that will be gone after the crash (a process's).
    auto& sleeper = stack().spawn({"unshare", "--net", "--", "sleep", "600"});
    const std::string pid = std::to_string(sleeper.pid());
    for (int i = 0;
         i < 100 && inode_of("/proc/" + pid + "/ns/net") == inode_of("/proc/self/ns/net"); ++i)
        std::this_thread::sleep_for(20ms);
    auto& doomed = stack().lease_holder({"lo", "--netns", "pid:" + pid});
    const auto doomed_path = DaemonStack::lease_of(doomed);
    ASSERT_FALSE(doomed_path.empty());

    Process monitor(a().wrap({"ip", "-o", "monitor", "link"}));
    std::this_thread::sleep_for(200ms);
    daemon().signal(SIGKILL);
    daemon().wait(5s);
    sleeper.signal(SIGKILL);
    sleeper.wait(5s);
    EXPECT_TRUE(promisc_in(a())) << "nobody cleared it while the daemon was down";
    stack().start_daemon();

    auto l = stack().leases();
    ASSERT_EQ(l.size(), 1u) << daemon().log();
    EXPECT_EQ(l[0][0], path) << "the same object path after the restart";
    EXPECT_EQ(l[0][3], "active");
    EXPECT_EQ(property(path, kLeaseIface, "NetNSInode"), inode_of(a().path()));
    EXPECT_NE(daemon().log().find("ended: netns-gone (while promiscd was not running"),
              std::string::npos)
        << daemon().log();
    // Adopted: releasing it through its old path clears the flag in A.
    holder.write_stdin("release\n");
    EXPECT_NE(holder.wait_for_output("RELEASED"), std::string::npos) << holder.log();
    EXPECT_TRUE(wait_until([&] { return !promisc_in(a()); }));
    std::this_thread::sleep_for(100ms);
    monitor.stop();
    std::istringstream lines(monitor.log());
    bool off_seen = false;
    for (std::string line; std::getline(lines, line);) {
        if (line.find(kLink + "@") == std::string::npos)
            continue;
        const bool on = line.find("PROMISC") != std::string::npos;
        EXPECT_FALSE(off_seen && on) << "flag flickered: " << monitor.log();
        off_seen |= !on;
    }
    EXPECT_TRUE(off_seen) << "the monitor saw the final clear: " << monitor.log();
}

// A crashed run's lease in a namespace whose owner is gone: the next run
// opens the namespace to clear the flag it had set there, then lets go.
TEST_F(NetnsTest, CrashRecoveryClearsAFlagItSetInANamespace) {
    auto& holder = stack().lease_holder({kLink, "--netns", a().path()});
    ASSERT_FALSE(DaemonStack::lease_of(holder).empty());
    daemon().signal(SIGKILL);
    daemon().wait(5s);
    holder.signal(SIGKILL);
    holder.wait(5s);
    ASSERT_TRUE(promisc_in(a()));
    ASSERT_FALSE(promisc_in(b()));
    stack().start_daemon();
    EXPECT_TRUE(wait_until([&] { return !promisc_in(a()); })) << daemon().log();
    EXPECT_TRUE(stack().leases().empty());
    EXPECT_NE(daemon().wait_for_output("stopped watching network namespace"), std::string::npos)
        << daemon().log();
}

// ------------------------------------------------------------------ the unit's privileges

// The daemon as its unit runs it: its own user, with the unit's four ambient
// capabilities. They suffice to enter a namespace by name, to open another
// user's process's namespace, to capture there, and to see it go.
class NetnsAsDaemonUser : public NetnsTest {
protected:
    DaemonStack::Options options() const override {
        auto o = NetnsTest::options();
        o.as_daemon_user = true;
        return o;
    }
};

TEST_F(NetnsAsDaemonUser, TheUnitsCapabilitiesSuffice) {
    if (std::string(PROMISCD_DAEMON_USER) == "root")
        GTEST_SKIP() << "built with daemon_user=root";
    auto& holder = stack().lease_holder({kLink, "--netns", a().name()});
    ASSERT_FALSE(DaemonStack::lease_of(holder).empty()) << stack().logs();
    EXPECT_TRUE(promisc_in(a()));

    // Another user's process, alone in its namespace.
    auto& sleeper = stack().spawn(as_user(
        kDeniedUser, {"unshare", "--user", "--map-root-user", "--net", "--", "sleep", "600"}));
    const std::string pid = std::to_string(sleeper.pid());
    ASSERT_TRUE(wait_until([&] {
        struct stat st {};
        return ::stat(("/proc/" + pid + "/ns/net").c_str(), &st) == 0 &&
               st.st_ino != inode_of("/proc/self/ns/net");
    })) << sleeper.log();
    auto& c =
        capture_client("lo", R"({"netns": ["s", "pid:)" + pid + R"("], "promisc": ["b", false]})");
    const auto capture = capture_path(c);
    ASSERT_FALSE(capture.empty()) << stack().logs();
    sleeper.signal(SIGKILL);
    EXPECT_NE(c.wait_for_output("FINISHED " + capture + " netns-gone", 10s), std::string::npos)
        << c.log() << stack().logs();

    holder.write_stdin("release\n");
    EXPECT_NE(holder.wait_for_output("RELEASED"), std::string::npos) << holder.log();
    EXPECT_FALSE(promisc_in(a()));
}

// ------------------------------------------------------------------ authorization

TEST_F(NetnsTest, AuthorizationIsPerNamespace) {
    // pdallow: A yes (its own action, with the namespace in the details).
    const auto lease = acquire(kLink, a().name(), &kAllowedUser);
    ASSERT_FALSE(lease.empty()) << stack().logs();
    EXPECT_TRUE(promisc_in(a()));
    const auto checks = stack().bus().logs();
    EXPECT_NE(checks.find("CHECK org.promiscd.netns pdallow netns=" + a().name() +
                          " inode=" + std::to_string(inode_of(a().path())) + " op=acquire"),
              std::string::npos)
        << checks;
    EXPECT_EQ(checks.find("CHECK org.promiscd.promisc.acquire pdallow netns=" + a().name()),
              std::string::npos)
        << "the host's action is not asked for another namespace's link";

    // B, named any way, and a process's namespace: no.
    for (const auto& spec : {b().name(), b().path()}) {
        const auto e = error_of(kLink, spec, &kAllowedUser);
        EXPECT_NE(e.find("ERROR " + access_denied +
                         " uid 64001 is not authorized to use links of other network namespaces "
                         "(polkit action org.promiscd.netns)"),
                  std::string::npos)
            << spec << ": " << e;
    }
    EXPECT_FALSE(promisc_in(b())) << "a refusal changes nothing";
    // A uid that may use the host's links only is refused every namespace
    // (pddeny may not even do that; the host's dev works for pdallow).
    EXPECT_FALSE(error_of(kLink, a().name(), &kDeniedUser).empty());
    auto host = call("AcquireLease", {"sa{sv}", stack().dev(), "0"}, &kAllowedUser);
    EXPECT_TRUE(host.ok()) << host.err;

    // A capture in B: the same action, refused; over varlink too.
    const Wrap as_allowed = [](std::vector<std::string> argv) {
        return as_user(kAllowedUser, std::move(argv));
    };
    auto v = stack().varlink_call(kVarlinkIface + "OpenCapture",
                                  {{"interface", kLink}, {"netns", b().name()}}, as_allowed);
    EXPECT_NE(v.find("ERROR " + kVarlinkIface + "AccessDenied"), std::string::npos) << v;
    v = stack().varlink_call(kVarlinkIface + "Acquire",
                             {{"interface", kLink}, {"netns", b().name()}}, as_allowed);
    EXPECT_NE(v.find("ERROR " + kVarlinkIface + "AccessDenied"), std::string::npos) << v;
    EXPECT_FALSE(promisc_in(b()));
    // The raw socket in A: org.promiscd.netns is not enough; its own action
    // (which pdallow does not have) is asked as well.
    v = stack().varlink_call(kVarlinkIface + "OpenCapture",
                             {{"interface", kLink}, {"netns", a().name()}, {"format", "socket"}},
                             as_allowed);
    EXPECT_NE(v.find("ERROR " + kVarlinkIface + "AccessDenied"), std::string::npos) << v;
    EXPECT_NE(v.find("org.promiscd.capture.raw-socket"), std::string::npos) << v;
}

// ------------------------------------------------------------------ errors

TEST_F(NetnsTest, BadNamespacesAreClearErrorsAndChangeNothing) {
    const std::string invalid = err + "InvalidArgument";
    // In /run/netns, where namespace files are looked up: a plain file, and
    // a namespace of another kind (a UTS namespace bind-mounted there).
    const std::string plain = "/run/netns/pdplain" + std::to_string(::getpid());
    const std::string uts = "/run/netns/pduts" + std::to_string(::getpid());
    struct Cleanup {
        std::string plain, uts;
        ~Cleanup() {
            run(std::vector<std::string>{"umount", uts});
            ::unlink(uts.c_str());
            ::unlink(plain.c_str());
        }
    } cleanup{plain, uts};
    std::ofstream(plain) << "not a namespace\n";
    std::ofstream(uts).flush();
    ASSERT_TRUE(run(std::vector<std::string>{"mount", "--bind", "/proc/self/ns/uts", uts}).ok());
    struct Case {
        std::string netns, error, message;
    };
    const std::vector<Case> cases = {
        {"pdnosuch-" + std::to_string(::getpid()), invalid, "does not exist"},
        {"../etc", invalid, "has no '/'"},
        {"pid:0", invalid, "after 'pid:' comes a process id"},
        {"pid:x", invalid, "after 'pid:' comes a process id"},
        {"pid:2147483647", invalid, "there is no process 2147483647"},
        {"/etc/hostname", invalid, "promiscd opens namespace files only as /proc/PID/ns/net"},
        {"/proc/self/ns/net", invalid, "promiscd opens namespace files only"},
        {"/proc/1/root/run/netns/x", invalid, "promiscd opens namespace files only"},
        {"/run/netns/../../etc/hostname", invalid, "promiscd opens namespace files only"},
        {"/proc/1/ns/mnt", invalid, "promiscd opens namespace files only"},
        {"/proc/1/ns/net/", invalid, "promiscd opens namespace files only"},
        {plain, invalid, "is not a namespace file"},
        {uts, invalid, "is a namespace of another kind"},
        {"relative/path", invalid, "has no '/'"},
    };
    error_of(kLink, "pid:0"); // sd-bus makes two eventfds at the first asynchronous call
    const size_t fds = daemon_fds();
    for (const auto& c : cases) {
        const auto e = error_of(kLink, c.netns);
        EXPECT_NE(e.find("ERROR " + c.error + " network namespace "), std::string::npos) << e;
        EXPECT_NE(e.find(c.message), std::string::npos) << c.netns << ": " << e;
        // The same answer over varlink.
        auto v = stack().varlink_call(kVarlinkIface + "Acquire",
                                      {{"interface", kLink}, {"netns", c.netns}});
        EXPECT_NE(v.find("ERROR " + kVarlinkIface + "InvalidArgument"), std::string::npos) << v;
        EXPECT_NE(v.find(c.message), std::string::npos) << v;
    }
    const auto wrong = error_of(kLink, "5", nullptr, "u");
    EXPECT_NE(wrong.find(invalid + " option 'netns' must be a string, not an unsigned integer"),
              std::string::npos)
        << wrong;
    // A link the namespace lacks: NoSuchInterface naming both.
    auto e = error_of("pdnosuch0", a().name());
    EXPECT_NE(e.find(err + "NoSuchInterface interface 'pdnosuch0' in network namespace " +
                     std::to_string(inode_of(a().path())) + " does not exist"),
              std::string::npos)
        << e;
    EXPECT_TRUE(stack().leases().empty());
    EXPECT_FALSE(promisc_in(a()));
    EXPECT_FALSE(promisc_in(b()));
    EXPECT_NE(daemon().wait_for_output("stopped watching network namespace '" + a().name()),
              std::string::npos)
        << "the namespace opened for the failed request is closed again: " << daemon().log();
    EXPECT_EQ(daemon_fds(), fds) << "nothing is left open";

    // promiscd's own namespace, named: a lease on its own link.
    const auto own = acquire(stack().dev(), stack().ns().path());
    ASSERT_FALSE(own.empty());
    EXPECT_EQ(property(own, kLeaseIface, "NetNSInode"), 0);
    EXPECT_TRUE(stack().promisc());

    // Switched off in the configuration: refused, saying so.
    stack().write_config(R"({"namespaces": {"enabled": false}})");
    daemon().signal(SIGHUP);
    ASSERT_NE(daemon().wait_for_output("reloaded the configuration"), std::string::npos);
    e = error_of(kLink, a().name());
    EXPECT_NE(e.find("ERROR org.freedesktop.DBus.Error.Failed links of other network namespaces "
                     "are switched off in promiscd's configuration (namespaces.enabled)"),
              std::string::npos)
        << e;
    EXPECT_FALSE(promisc_in(a()));
}

// Every namespace watched costs descriptors: a global bound, from the
// configuration, refuses one more (and changes nothing).
TEST_F(NetnsTest, NamespacesHaveAGlobalBound) {
    stack().write_config(R"({"quotas": {"namespaces_total": 1}})");
    daemon().signal(SIGHUP);
    ASSERT_NE(daemon().wait_for_output("reloaded the configuration"), std::string::npos);
    auto& holder = stack().lease_holder({kLink, "--netns", a().name()});
    ASSERT_FALSE(DaemonStack::lease_of(holder).empty());
    const auto e = error_of(kLink, b().name());
    EXPECT_NE(e.find("ERROR " + err +
                     "QuotaExceeded promiscd already watches 1 network namespaces (limit 1, "
                     "quotas.namespaces_total)"),
              std::string::npos)
        << e;
    EXPECT_FALSE(promisc_in(b()));
    // A second lease in the namespace already watched needs none more.
    auto& second = stack().lease_holder({kLink, "--netns", a().path()});
    EXPECT_FALSE(DaemonStack::lease_of(second).empty());
    holder.write_stdin("release\n");
    second.write_stdin("release\n");
    ASSERT_NE(daemon().wait_for_output("stopped watching network namespace"), std::string::npos);
    EXPECT_FALSE(acquire(kLink, b().name()).empty()) << "room again once A is let go";
    EXPECT_TRUE(promisc_in(b()));
}

// ------------------------------------------------------------------ cost

// Namespaces nobody leases cost promiscd nothing: 500 of them appear, one
// is leased; the daemon's files and memory grow for that one only.
TEST_F(NetnsTest, FiveHundredNamespacesCostOnlyTheLeasedOne) {
    // A failing call first: sd-bus makes its lazy eventfds on the first
    // asynchronous call.
    error_of(kLink, "pid:0");
    const size_t fds = daemon_fds();
    const long rss = daemon_rss_kib();

    const std::string prefix = "pdbulk" + std::to_string(::getpid()) + "-";
    std::string add, del;
    for (int i = 0; i < 500; ++i) {
        add += "netns add " + prefix + std::to_string(i) + "\n";
        del += "netns del " + prefix + std::to_string(i) + "\n";
    }
    struct Cleanup {
        std::string batch;
        ~Cleanup() {
            TempDir d;
            std::ofstream(d / "del") << batch;
            run({"ip", "-force", "-batch", d / "del"});
        }
    } cleanup{del};
    {
        TempDir d;
        std::ofstream(d / "add") << add;
        auto r = run({"ip", "-batch", d / "add"});
        ASSERT_TRUE(r.ok()) << r.err;
    }
    EXPECT_EQ(daemon_fds(), fds) << "500 new namespaces opened nothing in promiscd";

    const auto lease = acquire(kLink, a().name());
    ASSERT_FALSE(lease.empty());
    const size_t leased_fds = daemon_fds();
    EXPECT_GT(leased_fds, fds);
    EXPECT_LE(leased_fds, fds + 6) << "one namespace: its fd, three netlink sockets, the "
                                      "mount-table watch";
    EXPECT_LT(daemon_rss_kib(), rss + 2048) << "RSS grew by a namespace's sockets, not 500";
    ASSERT_TRUE(call("Release", {}, nullptr, lease, kLeaseIface).ok());
    ASSERT_NE(daemon().wait_for_output("stopped watching network namespace"), std::string::npos);
    EXPECT_EQ(daemon_fds(), fds) << "and it is all closed with the last lease";
}

} // namespace
