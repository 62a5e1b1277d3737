// The varlink front end, the configuration file and idle exit, end to end:
// the daemon as a separate process in a namespace the test made, started by
// hand or by systemd-socket-activate, and a varlink client written in plain
// python (clients/varlink_client.py), not the project's code.
#include "daemon_stack.hpp"
#include "test_paths.h"

#include <csignal>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace promiscd::testing;
using nlohmann::json;

namespace {

const std::string client_py =
    std::string(PROMISCD_SOURCE_ROOT) + "/tests/integration/clients/varlink_client.py";
const std::string& iface = kVarlinkIface;

// A member of "users" (gid 100, present on every Debian system) and a uid in
// no group the daemon knows; used where no polkit can be asked.
std::vector<std::string> as_group_member(std::vector<std::string> argv) {
    std::vector<std::string> out = {"setpriv", "--reuid=64001", "--regid=64001", "--groups=100",
                                    "--"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}
std::vector<std::string> as_stranger(std::vector<std::string> argv) {
    std::vector<std::string> out = {"setpriv", "--reuid=64002", "--regid=64002", "--clear-groups",
                                    "--"};
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

class Varlink : public DaemonTest {
protected:
    DaemonStack::Options options() const override {
        DaemonStack::Options o;
        o.bus = false;
        o.start = false; // each test writes its configuration first
        return o;
    }

    const std::string& dev() const { return stack_->dev(); }
    Netns& ns() { return stack_->ns(); }
    Process& daemon() { return stack_->daemon(); }
    std::string sock() const { return stack_->varlink_path(); }
    std::string config() const { return stack_->config_path(); }
    void start_daemon(std::vector<std::string> extra = {}) {
        stack_->start_daemon(std::move(extra));
    }

    // One call on a fresh connection; returns the client's output lines.
    std::string call(const std::string& method, const json& params = json::object(),
                     const Wrap& as = {}) {
        return stack_->varlink_call(method, params, as);
    }
    // A connection kept open; more calls through write_stdin("call ...").
    Process& client(std::vector<std::string> args, const Wrap& as = {}) {
        return stack_->varlink_client(std::move(args), as);
    }
    json reply_of(const std::string& out) { return DaemonStack::reply_of(out); }
    json leases() { return stack_->varlink_leases(); }
    bool promisc(const std::string& dev) { return stack_->promisc(dev); }
    // The well-behaved client that must keep working through every abuse.
    void still_served(Process& good) {
        auto before = good.log().size();
        good.write_stdin("call " + iface + "ListLinks {}\n");
        EXPECT_NE(good.wait_for_output("REPLY {\"links\"", 5s, before), std::string::npos)
            << good.log() << daemon().log();
    }
};

TEST_F(Varlink, SocketActivationLeaseAndIdleExit) {
    write_file(config(), R"({"idle_exit_seconds": 1})");
    auto activate = [&] { stack_->start_socket_activated(); };
    auto comm = [&] { return read_file("/proc/" + std::to_string(daemon().pid()) + "/comm"); };
    activate();
    EXPECT_EQ(comm(), "systemd-socket-\n") << "promiscd is not running before the first connection";

    auto& holder = client({"--more", iface + "Acquire", json{{"interface", dev()}}.dump()});
    EXPECT_NE(holder.wait_for_output("REPLY {\"lease\""), std::string::npos) << holder.log();
    EXPECT_EQ(comm(), "promiscd\n") << "the first connection started it";
    EXPECT_TRUE(promisc(dev())) << "a lease over varlink sets the flag";
    EXPECT_NE(daemon().log().find("serving varlink"), std::string::npos);

    holder.write_stdin("quit\n");
    EXPECT_TRUE(wait_until([&] { return !promisc(dev()); })) << "closing the connection ends it";
    auto status = daemon().wait(20s);
    ASSERT_TRUE(status) << "no idle exit\n" << daemon().log();
    EXPECT_EQ(*status, 0);
    EXPECT_NE(daemon().log().find("idle for 1 s; exiting"), std::string::npos) << daemon().log();

    // As systemd would: listen again; the next connection starts it again.
    activate();
    auto out = call(iface + "ListLinks");
    EXPECT_NE(out.find("\"" + dev() + "\""), std::string::npos) << out;
    EXPECT_EQ(comm(), "promiscd\n");
}

TEST_F(Varlink, IntrospectionAndUnknownMethods) {
    start_daemon();
    auto info = reply_of(call("org.varlink.service.GetInfo"));
    EXPECT_EQ(info["product"], "promiscd");
    EXPECT_EQ(info["interfaces"], json({"org.varlink.service", "org.promiscd.promisc"}));
    auto desc = reply_of(call("org.varlink.service.GetInterfaceDescription",
                              {{"interface", "org.promiscd.promisc"}}))["description"]
                    .get<std::string>();
    EXPECT_NE(desc.find("interface org.promiscd.promisc\n"), std::string::npos);
    for (const char* m : {"method ListLinks()", "method Acquire(", "method Release(",
                          "method Renew(", "method Revoke(", "method SetLinkPolicy(",
                          "method OpenCapture(", "method Monitor()", "error NoSuchInterface"})
        EXPECT_NE(desc.find(m), std::string::npos) << m;
    EXPECT_NE(call("org.varlink.service.GetInterfaceDescription", {{"interface", "x.y"}})
                  .find("ERROR org.varlink.service.InterfaceNotFound {\"interface\": \"x.y\"}"),
              std::string::npos);
    EXPECT_NE(call(iface + "Frobnicate").find("ERROR org.varlink.service.MethodNotFound"),
              std::string::npos);
    EXPECT_NE(call("com.example.Nope.Call").find("ERROR org.varlink.service.InterfaceNotFound"),
              std::string::npos);
    EXPECT_NE(call(iface + "Monitor").find("ERROR org.varlink.service.ExpectedMore"),
              std::string::npos);
}

TEST_F(Varlink, LeaseLifecycleAndErrors) {
    start_daemon();
    auto& a = client({"--more", iface + "Acquire",
                      json{{"interface", dev()}, {"reason", "itest"}, {"ttl", 60}}.dump()});
    ASSERT_NE(a.wait_for_output("REPLY {\"lease\""), std::string::npos) << a.log();
    auto l = leases();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0]["interface"], dev());
    EXPECT_EQ(l[0]["state"], "active");
    EXPECT_EQ(l[0]["reason"], "itest");
    EXPECT_EQ(l[0]["uid"], 0);
    EXPECT_EQ(l[0]["owner"].get<std::string>().rfind("varlink:", 0), 0u);
    EXPECT_TRUE(l[0]["expires"].is_number());
    auto id = l[0]["id"].get<uint64_t>();

    // State changes stream to the owner ("more").
    EXPECT_NE(
        call(iface + "SetLinkPolicy", {{"interface", dev()}, {"policy", "yield"}}).find("REPLY {}"),
        std::string::npos);
    ns().exec_ok("ip link set dev " + dev() + " promisc off");
    EXPECT_NE(a.wait_for_output("\"state\": \"overridden\""), std::string::npos) << a.log();

    // Not the owner, not a manager (no polkit here, not in an allowed group).
    auto other = call(iface + "Release", {{"id", id}}, as_stranger);
    EXPECT_NE(other.find("ERROR " + iface + "NotOwner"), std::string::npos) << other;
    EXPECT_NE(call(iface + "Release", {{"id", 999}}).find("ERROR " + iface + "NoSuchLease"),
              std::string::npos);
    EXPECT_NE(call(iface + "Acquire", {{"interface", "nosuch0"}})
                  .find("ERROR " + iface +
                        "NoSuchInterface {\"message\": \"interface 'nosuch0' does not exist\"}"),
              std::string::npos);
    EXPECT_NE(
        call(iface + "Acquire", {{"interface", "a/b"}}).find("ERROR " + iface + "InvalidArgument"),
        std::string::npos);
    EXPECT_NE(call(iface + "Acquire", {{"interface", dev()}}, as_stranger)
                  .find("ERROR " + iface + "AccessDenied"),
              std::string::npos);

    // Closing the connection that acquired it ends the lease.
    a.write_stdin("quit\n");
    EXPECT_TRUE(wait_until([&] { return leases().empty(); })) << daemon().log();

    // Without "more", the same connection can release it.
    auto& b = client({iface + "Acquire", json{{"interface", dev()}}.dump()});
    ASSERT_NE(b.wait_for_output("REPLY {\"lease\""), std::string::npos) << b.log();
    auto id2 = leases()[0]["id"].get<uint64_t>();
    b.write_stdin("call " + iface + "Release {\"id\": " + std::to_string(id2) + "}\n");
    EXPECT_NE(b.wait_for_output("REPLY {}"), std::string::npos) << b.log();
    EXPECT_TRUE(leases().empty());
}

TEST_F(Varlink, OpenCapturePassesTheStreamAndHoldsALease) {
    start_daemon();
    auto& cap = client({"--peek-fd", iface + "OpenCapture",
                        json{{"interface", dev()}, {"filter", "udp port 9"}}.dump()});
    EXPECT_NE(cap.wait_for_output("HEAD 0a0d0d0a"), std::string::npos)
        << "a pcapng stream arrives with the reply (SCM_RIGHTS): " << cap.log();
    EXPECT_NE(cap.log().find("REPLY {\"capture\": "), std::string::npos) << cap.log();
    auto l = leases();
    ASSERT_EQ(l.size(), 1u) << "promisc (the default) holds a lease";
    EXPECT_EQ(l[0]["owner"].get<std::string>().rfind("varlink:", 0), 0u);
    EXPECT_TRUE(promisc(dev()));
    EXPECT_NE(call(iface + "OpenCapture", {{"interface", dev()}, {"filter", "udp port"}})
                  .find("ERROR " + iface + "InvalidFilter"),
              std::string::npos);
    EXPECT_NE(call(iface + "OpenCapture", {{"interface", dev()}, {"format", "raw"}})
                  .find("ERROR " + iface + "InvalidArgument"),
              std::string::npos);
    EXPECT_NE(call(iface + "OpenCapture", {{"interface", dev()}}, as_stranger)
                  .find("ERROR " + iface + "AccessDenied"),
              std::string::npos);
    // The connection closes: the capture ends and its lease with it.
    cap.write_stdin("quit\n");
    EXPECT_TRUE(wait_until([&] { return leases().empty(); })) << daemon().log();
    EXPECT_TRUE(wait_until([&] { return !promisc(dev()); }));
}

TEST_F(Varlink, MonitorStreamsEvents) {
    start_daemon();
    auto& m = client({"--more", iface + "Monitor"});
    ASSERT_NE(m.wait_for_output("\"type\": \"subscribed\""), std::string::npos) << m.log();
    auto& a = client({iface + "Acquire", json{{"interface", dev()}}.dump()});
    a.wait_for_output("REPLY");
    EXPECT_NE(m.wait_for_output("\"type\": \"lease-granted\""), std::string::npos) << m.log();
    EXPECT_NE(m.wait_for_output("\"by\": \"promiscd\", \"flag\": true"), std::string::npos)
        << m.log();
    ns().exec_ok("ip link set dev " + dev() + " promisc off");
    EXPECT_NE(m.wait_for_output("\"by\": \"another agent\", \"flag\": false"), std::string::npos)
        << m.log();
    a.write_stdin("quit\n");
    EXPECT_NE(m.wait_for_output("\"reason\": \"owner-gone\""), std::string::npos) << m.log();
}

TEST_F(Varlink, AbusiveClientsDoNotHurtOthers) {
    write_file(
        config(),
        R"({"varlink": {"max_message_bytes": 2048, "max_connections_per_uid": 4, "max_backlog_bytes": 65536}})");
    start_daemon();
    auto& good = client({});
    still_served(good);
    auto pid = daemon().pid();
    auto rss = [&] {
        std::ifstream f("/proc/" + std::to_string(pid) + "/status");
        for (std::string line; std::getline(f, line);)
            if (line.rfind("VmRSS:", 0) == 0)
                return std::stol(line.substr(6));
        return 0L;
    };

    // Larger than the configured limit: an error, then the connection closes.
    auto big = run(
        {"/usr/bin/python3", client_py, sock(), "--exit", "--raw",
         "b'{\"method\": \"" + iface + "ListLinks\", \"parameters\": {\"x\": \"' + b'a' * 3000"});
    EXPECT_NE(big.out.find("ERROR org.varlink.service.InvalidParameter"), std::string::npos)
        << big.out << big.err;
    still_served(good);
    // Not JSON: disconnected at once.
    auto garbage = run({"/usr/bin/python3", client_py, sock(), "--exit", "--raw", "b'{nope\\0'"});
    EXPECT_NE(garbage.status, 0);
    EXPECT_EQ(garbage.out.find("REPLY"), std::string::npos);
    still_served(good);
    // A JSON value that is not an object; a wrong parameter type.
    EXPECT_NE(run({"/usr/bin/python3", client_py, sock(), "--exit", "--raw", "b'[1,2]\\0'"})
                  .out.find("ERROR org.varlink.service.InvalidParameter"),
              std::string::npos);
    EXPECT_NE(
        call(iface + "Acquire", {{"interface", 5}})
            .find("ERROR " + iface +
                  "InvalidArgument {\"message\": \"parameter 'interface' must be a string\"}"),
        std::string::npos);
    EXPECT_NE(call(iface + "Acquire", {{"interface", dev()}, {"tll", 5}})
                  .find("ERROR " + iface +
                        "InvalidArgument {\"message\": \"unknown option 'tll' (known options: "
                        "ttl, reason, wait, netns)\"}"),
              std::string::npos);
    // systemd's allowInteractiveAuthentication: a boolean on every method
    // that may ask polkit, never taken for an option.
    EXPECT_NE(call(iface + "Release", {{"id", 1}, {"allowInteractiveAuthentication", "yes"}})
                  .find("ERROR " + iface +
                        "InvalidArgument {\"message\": \"parameter "
                        "'allowInteractiveAuthentication' must be a boolean\"}"),
              std::string::npos);
    EXPECT_NE(call(iface + "Release", {{"id", 999}, {"allowInteractiveAuthentication", false}})
                  .find("ERROR " + iface + "NoSuchLease"),
              std::string::npos);
    still_served(good);
    // Half a message, then silence: the others are served meanwhile.
    auto& half = client({"--raw", "b'{\"method\": \"org.promi'"});
    still_served(good);
    // Connections per uid: the fifth of uid 0 is refused with a reason.
    auto& c3 = client({});
    auto& c4 = client({});
    still_served(good);
    auto refused = call(iface + "ListLinks");
    EXPECT_NE(refused.find("ERROR " + iface + "QuotaExceeded"), std::string::npos) << refused;
    EXPECT_NE(refused.find("(limit 4)"), std::string::npos) << refused;
    half.write_stdin("quit\n");
    half.wait(5s);
    c3.write_stdin("quit\n");
    c3.wait(5s);
    c4.write_stdin("quit\n");
    c4.wait(5s);
    still_served(good);

    // A monitor that never reads while events pour in is cut off; memory stays
    // bounded and the good client keeps working.
    long rss_before = rss();
    Process deaf({"/usr/bin/python3", "-c",
                  "import socket,time,sys\n"
                  "s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
                  "s.sendall(b'{\"method\":\"" +
                      iface +
                      "Monitor\",\"more\":true}\\0')\n"
                      "print(s.recv(200), flush=True)\n" // the first reply only, then never again
                      "time.sleep(60)\n",
                  sock()});
    ASSERT_NE(deaf.wait_for_output("subscribed"), std::string::npos) << deaf.log();
    std::string batch;
    for (int i = 0; i < 20000; ++i)
        batch += "link set dev " + dev() + (i % 2 ? " promisc off\n" : " promisc on\n");
    write_file(stack_->state() / "batch", batch);
    ns().exec_ok("ip -batch " + stack_->state() / "batch");
    EXPECT_NE(daemon().wait_for_output("does not read its replies", 20s), std::string::npos)
        << daemon().log().substr(0, 2000);
    still_served(good);
    // ASan's quarantine and shadow memory make RSS meaningless (scripts/test
    // runs this test against a sanitized promiscd too).
    if (!runs_under_asan(pid)) {
        EXPECT_LT(rss() - rss_before, 16 * 1024)
            << "RSS grew by more than 16 MiB (kB: " << rss() - rss_before << ")";
    }
}

TEST_F(Varlink, ConfigQuotasPoliciesAndConflicts) {
    write_file(config(), R"({
        "quotas": {"leases_per_uid": 2, "leases_total": 3, "captures_per_uid": 0},
        "max_capture_buffer": 65536,
        "allowed_groups": ["users"],
        "conflict": {"max_clears": 1, "window_seconds": 60},
        "policies": [{"match": ")" +
                             dev() + R"(", "policy": "yield"}]
    })");
    auto ifb = add_ifb(ns());
    start_daemon();
    auto links = reply_of(call(iface + "ListLinks"))["links"];
    for (const auto& l : links) {
        if (l["name"] == dev()) {
            EXPECT_EQ(l["policy"], "yield") << "policies: pattern match";
        }
        if (l["name"] == ifb) {
            EXPECT_EQ(l["policy"], "enforce");
        }
    }
    // quotas: leases_per_uid = 2 for a user (root is bounded by the total
    // only), then leases_total = 3.
    auto& a = client({iface + "Acquire", json{{"interface", ifb}}.dump()}, as_group_member);
    auto& b = client({iface + "Acquire", json{{"interface", ifb}}.dump()}, as_group_member);
    a.wait_for_output("REPLY");
    b.wait_for_output("REPLY");
    auto third = call(iface + "Acquire", {{"interface", ifb}}, as_group_member);
    EXPECT_NE(third.find("uid 64001 already holds 2 leases (limit 2)"), std::string::npos) << third;
    auto& c = client({iface + "Acquire", json{{"interface", ifb}}.dump()});
    c.wait_for_output("REPLY");
    auto fourth = call(iface + "Acquire", {{"interface", ifb}});
    EXPECT_NE(fourth.find("the daemon already holds 3 leases (limit 3)"), std::string::npos)
        << "quotas.leases_total: " << fourth;
    // quotas.captures_per_uid = 0 and max_capture_buffer = 64 KiB.
    auto capture =
        call(iface + "OpenCapture", {{"interface", dev()}, {"promisc", false}}, as_group_member);
    EXPECT_NE(capture.find("ERROR " + iface + "QuotaExceeded"), std::string::npos) << capture;
    auto big = call(iface + "OpenCapture", {{"interface", dev()}, {"buffer_size", 1 << 20}});
    EXPECT_NE(big.find("ERROR " + iface + "InvalidArgument"), std::string::npos) << big;
    EXPECT_NE(big.find("65536"), std::string::npos) << "the message names the limit: " << big;
    // conflict: max_clears = 1 -> the second clear within the window is a conflict.
    auto& m = client({"--more", iface + "Monitor"});
    m.wait_for_output("subscribed");
    ns().exec_ok("ip link set dev " + ifb + " promisc off");
    EXPECT_TRUE(wait_until([&] { return promisc(ifb); }));
    ns().exec_ok("ip link set dev " + ifb + " promisc off");
    EXPECT_NE(m.wait_for_output("\"type\": \"conflict\""), std::string::npos) << m.log();
    EXPECT_EQ(leases()[0]["state"], "overridden");
}

// The global bounds beside the per-uid ones: captures in all, their kernel
// ring memory in all, and connections that sit idle holding nothing.
TEST_F(Varlink, CapturesAndIdleConnectionsHaveGlobalBounds) {
    write_file(config(), R"({
        "quotas": {"captures_total": 3},
        "capture_memory_total": 2097152,
        "varlink": {"idle_timeout_seconds": 1}
    })");
    start_daemon();
    auto open = [&](int buffer) -> Process& {
        return client(
            {iface + "OpenCapture",
             json{{"interface", dev()}, {"promisc", false}, {"buffer_size", buffer}}.dump()});
    };
    auto& a = open(1 << 20);
    EXPECT_NE(a.wait_for_output("FD "), std::string::npos) << a.log();
    auto& b = open(1 << 20);
    EXPECT_NE(b.wait_for_output("FD "), std::string::npos) << b.log();
    // 2 MiB of rings are reserved: not one more 64 KiB.
    auto refused = call(iface + "OpenCapture",
                        {{"interface", dev()}, {"promisc", false}, {"buffer_size", 65536}});
    EXPECT_NE(refused.find("ERROR " + iface + "QuotaExceeded"), std::string::npos) << refused;
    EXPECT_NE(refused.find("2 MiB"), std::string::npos) << "names the limit: " << refused;
    // b's capture ends with its connection, and its memory is free again.
    b.write_stdin("quit\n");
    Process* c = nullptr;
    EXPECT_TRUE(wait_until([&] {
        Process& p = open(65536);
        wait_until([&] {
            return p.log().find("FD ") != std::string::npos ||
                   p.log().find("ERROR") != std::string::npos;
        });
        if (p.log().find("FD ") != std::string::npos)
            c = &p;
        else
            p.write_stdin("quit\n");
        return c != nullptr;
    })) << daemon().log();
    auto& d = open(65536);
    EXPECT_NE(d.wait_for_output("FD "), std::string::npos) << d.log();
    // Three captures (a, c, d) are open: quotas.captures_total.
    auto fourth = call(iface + "OpenCapture",
                       {{"interface", dev()}, {"promisc", false}, {"buffer_size", 65536}});
    EXPECT_NE(fourth.find("ERROR " + iface + "QuotaExceeded"), std::string::npos) << fourth;
    EXPECT_NE(fourth.find("(limit 3)"), std::string::npos) << fourth;

    // A connection that says nothing is closed after the idle timeout; one
    // that holds a capture is not.
    auto& silent = client({"--raw", "b''"});
    EXPECT_NE(silent.wait_for_output("EOF", 10s), std::string::npos) << silent.log();
    EXPECT_EQ(a.log().find("EOF"), std::string::npos) << "a holds a capture: " << a.log();
    auto& good = client({});
    still_served(good);
}

TEST_F(Varlink, AllowedGroupsStandInForPolkitWhenThereIsNone) {
    write_file(config(), R"({"allowed_groups": ["users"]})");
    start_daemon();
    auto member = call(iface + "Acquire", {{"interface", dev()}}, as_group_member);
    EXPECT_NE(member.find("REPLY {\"lease\""), std::string::npos) << member;
    auto stranger = call(iface + "Acquire", {{"interface", dev()}}, as_stranger);
    EXPECT_NE(stranger.find("ERROR " + iface + "AccessDenied"), std::string::npos) << stranger;
    EXPECT_NE(stranger.find("polkit is unavailable"), std::string::npos) << stranger;
}

TEST_F(Varlink, StaticLeasesFollowTheConfigOnSighup) {
    auto ifb = add_ifb(ns());
    write_file(config(),
               R"({"static_leases": [{"interface": ")" + ifb + R"(", "reason": "tap"}]})");
    start_daemon();
    EXPECT_TRUE(wait_until([&] { return promisc(ifb); })) << daemon().log();
    auto l = leases();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0]["owner"], "config:static");
    EXPECT_EQ(l[0]["reason"], "tap");

    // A broken file on reload: reported, the old configuration kept.
    write_file(config(), R"({"static_leases": [{"interface": ")" + ifb + R"(", "bogus": 1}]})");
    daemon().signal(SIGHUP);
    EXPECT_NE(daemon().wait_for_output("unknown key 'static_leases[0].bogus'"), std::string::npos)
        << daemon().log();
    EXPECT_NE(daemon().log().find("keeping the previous configuration"), std::string::npos);
    EXPECT_TRUE(promisc(ifb));
    EXPECT_EQ(leases().size(), 1u);

    // Removed from the file: SIGHUP releases it.
    write_file(config(), "{}");
    daemon().signal(SIGHUP);
    EXPECT_TRUE(wait_until([&] { return !promisc(ifb); })) << daemon().log();
    EXPECT_TRUE(leases().empty());
}

TEST_F(Varlink, BrokenConfigRefusesToStart) {
    write_file(config(), R"({"quotas": {"leases_per_uid": "many"}})");
    Process::Options o;
    o.log_path = stack_->state() / "promiscd.log";
    Process d(ns().wrap(stack_->daemon_argv()), o);
    auto status = d.wait(10s);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, 1);
    EXPECT_NE(d.log().find(config() + ": 'quotas.leases_per_uid' must be a non-negative integer"),
              std::string::npos)
        << d.log();
    auto missing = run({PROMISCD_DAEMON_BINARY, "--no-bus", "--config=/nonexistent.json",
                        "--state-dir=" + stack_->state().path(), "--no-varlink"});
    EXPECT_EQ(missing.status, 1);
    EXPECT_NE(missing.err.find("/nonexistent.json: cannot read"), std::string::npos) << missing.err;
}

// Both front ends share one core.
TEST(VarlinkAndBus, LeasesAreListedOnBothTransports) {
    PROMISCD_REQUIRE_ROOT();
    DaemonStack::Options opts;
    opts.polkit_rules = "";
    DaemonStack stack(opts);
    auto& dbus_holder = stack.lease_holder({stack.dev()});
    ASSERT_NE(dbus_holder.wait_for_output("LEASE "), std::string::npos) << dbus_holder.log();
    auto& varlink_holder =
        stack.varlink_client({iface + "Acquire", json{{"interface", stack.dev()}}.dump()});
    ASSERT_NE(varlink_holder.wait_for_output("REPLY"), std::string::npos) << varlink_holder.log();

    auto over_varlink = stack.varlink_call(iface + "ListLeases");
    EXPECT_NE(over_varlink.find("\"owner\": \":1."), std::string::npos) << over_varlink;
    EXPECT_NE(over_varlink.find("\"owner\": \"varlink:"), std::string::npos) << over_varlink;
    auto over_bus = run(
        {"busctl", "--system", "call", PROMISCD_BUS_NAME, kRootPath, kManagerIface, "ListLeases"},
        stack.env());
    EXPECT_NE(over_bus.out.find("a(otsssuusstt) 2 "), std::string::npos) << over_bus.out;
    EXPECT_NE(over_bus.out.find("\"varlink:"), std::string::npos) << over_bus.out;
}

} // namespace
