// promiscctl over varlink: the daemon socket-activated by
// systemd-socket-activate (no bus), auto's fallback when there is no bus, a
// lease taken over varlink seen over D-Bus, and the error when nothing
// listens. Every command is a separate promiscctl process; the flag is
// checked with `ip link` in a namespace the test made.
#include "bus_stack.hpp"
#include "netns.hpp"
#include "process.hpp"
#include "test_paths.h"

#include <csignal>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

using namespace promiscd::testing;
using nlohmann::json;

namespace {

const std::string kCtl = PROMISCD_CTL_BINARY;

class CtlVarlink : public ::testing::Test {
protected:
    void SetUp() override {
        PROMISCD_REQUIRE_ROOT();
        ns_ = std::make_unique<Netns>();
        dev_ = add_veth(*ns_).name;
        sock_ = state_ / "io.promiscd";
        config_ = state_ / "promiscd.json";
        write_file(config_, "{}\n");
    }
    void TearDown() override {
        // SIGTERM and status 0, and no sanitizer report (LeakSanitizer
        // reports at exit): before the log is printed, which then says why.
        if (daemon_)
            expect_clean_stop(*daemon_);
        if (HasFailure() && daemon_)
            std::cerr << "---- promiscd log ----\n" << daemon_->log() << '\n';
        procs_.clear();
        daemon_.reset();
        ns_.reset();
    }

    std::vector<std::string> daemon_argv() {
        return {
            PROMISCD_DAEMON_BINARY,         "--log-target=console", "--log-level=debug", "--no-bus",
            "--state-dir=" + state_.path(), "--config=" + config_,  "--varlink=" + sock_};
    }
    // promiscd started by hand, serving only varlink.
    void start_daemon() {
        Process::Options o;
        o.log_path = state_ / "promiscd.log";
        daemon_ = std::make_unique<Process>(ns_->wrap(daemon_argv()), o);
        ASSERT_TRUE(wait_until([&] {
            return daemon_->log().find("watching") != std::string::npos || !daemon_->running();
        })) << daemon_->log();
        ASSERT_TRUE(daemon_->running()) << daemon_->log();
    }
    // No bus anywhere: the tests pin the bus address to nothing, as well as
    // the socket, so no promiscd of the host's can answer.
    std::map<std::string, std::string> pinned(std::map<std::string, std::string> env = {}) {
        env.emplace("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=" + (state_ / "no-bus-here"));
        env.emplace("PROMISCD_VARLINK_SOCKET", sock_);
        return env;
    }
    // promiscctl ARGS to completion over the test's socket.
    CommandResult ctl(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
        std::vector<std::string> argv = {kCtl, "--no-pager", "--transport=varlink",
                                         "--varlink-socket=" + sock_};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv, pinned(std::move(env)));
    }
    Process& spawn(std::vector<std::string> args) {
        std::vector<std::string> argv = {kCtl, "--no-pager", "--transport=varlink",
                                         "--varlink-socket=" + sock_};
        argv.insert(argv.end(), args.begin(), args.end());
        Process::Options o;
        o.new_session = false; // signals go to promiscctl alone
        o.env = pinned();
        procs_.push_back(std::make_unique<Process>(argv, o));
        return *procs_.back();
    }
    bool promisc() {
        auto s = link_state(*ns_, dev_);
        return s && s->promisc();
    }

    TempDir state_;
    std::string sock_;
    std::string config_;
    std::unique_ptr<Netns> ns_;
    std::string dev_;
    std::unique_ptr<Process> daemon_;
    std::vector<std::unique_ptr<Process>> procs_;
};

TEST_F(CtlVarlink, SocketActivatedStatusHoldRunAndIdleExit) {
    write_file(config_, R"({"idle_exit_seconds": 1})");
    Process::Options o;
    o.log_path = state_ / "promiscd.log";
    std::vector<std::string> argv = {"systemd-socket-activate", "-l", sock_, "--fdname=varlink"};
    auto d = daemon_argv();
    argv.insert(argv.end(), d.begin(), d.end());
    daemon_ = std::make_unique<Process>(ns_->wrap(argv), o);
    ASSERT_TRUE(wait_until([&] {
        return daemon_->log().find("Listening on") != std::string::npos;
    })) << daemon_->log();
    auto comm = [&] { return read_file("/proc/" + std::to_string(daemon_->pid()) + "/comm"); };
    EXPECT_EQ(comm(), "systemd-socket-\n") << "promiscd is not running before the first connection";

    // status starts it and prints the links.
    auto st = ctl({"status"});
    ASSERT_EQ(st.status, 0) << st.err;
    EXPECT_NE(st.out.find("IDX LINK"), std::string::npos) << st.out;
    EXPECT_NE(st.out.find(" " + dev_ + " "), std::string::npos) << st.out;
    EXPECT_NE(st.out.find(" lo "), std::string::npos) << st.out;
    EXPECT_EQ(comm(), "promiscd\n") << "the first connection started it";

    // monitor follows what hold does.
    auto& mon = spawn({"monitor"});
    ASSERT_NE(mon.wait_for_output("Monitoring promiscd"), std::string::npos) << mon.log();

    auto& hold = spawn({"hold", dev_, "--reason", "vl-test"});
    ASSERT_NE(hold.wait_for_output("Holding lease"), std::string::npos) << hold.log();
    EXPECT_TRUE(wait_until([&] { return promisc(); })) << "a lease over varlink sets the flag";
    auto ls = ctl({"--json", "leases"});
    ASSERT_EQ(ls.status, 0) << ls.err;
    auto leases = json::parse(ls.out);
    ASSERT_EQ(leases.size(), 1u) << ls.out;
    EXPECT_EQ(leases[0]["interface"], dev_);
    EXPECT_EQ(leases[0]["reason"], "vl-test");
    EXPECT_EQ(leases[0]["state"], "active");
    EXPECT_EQ(leases[0]["owner"].get<std::string>().rfind("varlink:", 0), 0u) << ls.out;
    EXPECT_NE(mon.wait_for_output(" granted to root"), std::string::npos) << mon.log();
    EXPECT_NE(mon.wait_for_output("promiscuous flag on, set by promiscd"), std::string::npos)
        << mon.log();

    // SIGTERM to promiscctl closes the connection and with it the lease.
    hold.signal(SIGTERM);
    auto hs = hold.wait(5s);
    ASSERT_TRUE(hs) << hold.log();
    EXPECT_EQ(*hs, 0) << hold.log();
    EXPECT_NE(hold.log().find("Released lease"), std::string::npos) << hold.log();
    EXPECT_TRUE(wait_until([&] { return !promisc(); })) << "closing the connection ends it";
    EXPECT_NE(mon.wait_for_output("promiscuous flag off, cleared by promiscd"), std::string::npos)
        << mon.log();

    // run holds a lease while its command runs, and exits with its status.
    auto r = ctl({"run", dev_, "--", "ip", "-n", ns_->name(), "link", "show", dev_});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("PROMISC"), std::string::npos) << r.out;
    EXPECT_EQ(ctl({"run", dev_, "--", "sh", "-c", "exit 7"}).status, 7);
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));

    // Errors map to the same exit codes as over D-Bus.
    auto nolink = ctl({"hold", "nosuchlink0"});
    EXPECT_EQ(nolink.status, 1);
    EXPECT_NE(nolink.err.find("nosuchlink0"), std::string::npos) << nolink.err;
    EXPECT_EQ(ctl({"release", "999"}).status, 1);
    EXPECT_EQ(ctl({"policy", dev_, "yield"}).status, 0);
    EXPECT_NE(ctl({"--json", "status", dev_}).out.find("\"policy\":\"yield\""), std::string::npos);

    // Nothing held, no connection left: the daemon exits after the timeout.
    mon.signal(SIGTERM);
    EXPECT_TRUE(mon.wait(5s));
    auto status = daemon_->wait(20s);
    ASSERT_TRUE(status) << "no idle exit\n" << daemon_->log();
    EXPECT_EQ(*status, 0);
    EXPECT_NE(daemon_->log().find("idle for 1 s; exiting"), std::string::npos) << daemon_->log();
}

TEST_F(CtlVarlink, MonitorShowsEnforceSettingTheFlagAgain) {
    start_daemon();
    auto& mon = spawn({"monitor"});
    ASSERT_NE(mon.wait_for_output("Monitoring promiscd"), std::string::npos) << mon.log();
    auto& mj = spawn({"--json", "monitor"});
    ASSERT_NE(mj.wait_for_output("Monitoring promiscd"), std::string::npos) << mj.log();
    auto& hold = spawn({"hold", dev_});
    ASSERT_NE(hold.wait_for_output("Holding lease"), std::string::npos) << hold.log();
    ASSERT_TRUE(wait_until([&] { return promisc(); }));
    // Someone clears the flag once; policy enforce sets it again at once.
    ns_->exec_ok("ip link set dev " + dev_ + " promisc off");
    const std::string off = "link " + dev_ + ": promiscuous flag off, cleared outside promiscd\n";
    const std::string again = "link " + dev_ +
                              ": promiscuous flag on again, set back by promiscd (policy "
                              "enforce: its leases still hold)\n";
    auto at = mon.wait_for_output(off);
    ASSERT_NE(at, std::string::npos) << mon.log();
    EXPECT_NE(mon.wait_for_output(again, 5s, at), std::string::npos) << mon.log();
    EXPECT_TRUE(promisc());
    ASSERT_TRUE(wait_until([&] { return mj.log().find("\"restored\":true") != std::string::npos; }))
        << mj.log();
    std::vector<json> flags;
    std::istringstream lines(mj.log());
    for (std::string line; std::getline(lines, line);)
        if (!line.empty() && line[0] == '{' && json::parse(line)["event"] == "flag-changed")
            flags.push_back(json::parse(line));
    ASSERT_EQ(flags.size(), 3u) << mj.log();
    EXPECT_EQ(flags[0]["interface"], dev_);
    EXPECT_EQ(flags[0]["flag"], true);
    EXPECT_EQ(flags[0]["by"], "promiscd");
    EXPECT_EQ(flags[0]["restored"], false);
    EXPECT_EQ(flags[1]["flag"], false);
    EXPECT_EQ(flags[1]["by"], "another agent");
    EXPECT_EQ(flags[2]["flag"], true);
    EXPECT_EQ(flags[2]["by"], "promiscd");
    EXPECT_EQ(flags[2]["restored"], true);
    hold.signal(SIGTERM);
    EXPECT_TRUE(hold.wait(5s));
}

// The new contract: Acquire's last reply and Monitor's lease-ended say who
// revoked a lease and why.
TEST_F(CtlVarlink, RevokedHoldSaysWhoAndWhy) {
    start_daemon();
    auto& mon = spawn({"monitor"});
    ASSERT_NE(mon.wait_for_output("Monitoring promiscd"), std::string::npos) << mon.log();
    auto& hold = spawn({"hold", dev_});
    ASSERT_NE(hold.wait_for_output("Holding lease"), std::string::npos) << hold.log();
    auto ls = ctl({"--json", "leases"});
    ASSERT_EQ(ls.status, 0) << ls.err;
    auto id = std::to_string(json::parse(ls.out).at(0)["id"].get<std::uint64_t>());
    auto rv = ctl({"revoke", id, "--reason", "maintenance"});
    EXPECT_EQ(rv.status, 0) << rv.err;
    EXPECT_EQ(hold.wait(5s), 1) << hold.log();
    const std::string line =
        "lease " + id + " on " + dev_ + " ended: revoked by [^\\n]*uid 0[^\\n]*: maintenance\\n";
    EXPECT_TRUE(std::regex_search(hold.log(), std::regex("promiscctl: " + line))) << hold.log();
    EXPECT_TRUE(wait_until([&] { return std::regex_search(mon.log(), std::regex(line)); }))
        << mon.log();
}

TEST_F(CtlVarlink, AutoFallsBackToVarlinkWithoutBus) {
    start_daemon();
    std::map<std::string, std::string> env = {
        {"DBUS_SYSTEM_BUS_ADDRESS", "unix:path=" + (state_ / "no-bus-here")},
        {"PROMISCD_VARLINK_SOCKET", sock_}};
    auto r = run({kCtl, "--no-pager", "status"}, env);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find(" " + dev_ + " "), std::string::npos) << r.out;
    auto l = run({kCtl, "--json", "leases"}, env);
    ASSERT_EQ(l.status, 0) << l.err;
    EXPECT_EQ(json::parse(l.out), json::array());
    // Neither a bus nor the socket: D-Bus's error, and both hints.
    env["PROMISCD_VARLINK_SOCKET"] = state_ / "none";
    auto none = run({kCtl, "status"}, env);
    EXPECT_EQ(none.status, 4) << none.err;
    EXPECT_NE(none.err.find("cannot connect to the system bus"), std::string::npos) << none.err;
    EXPECT_NE(none.err.find("varlink socket " + (state_ / "none")), std::string::npos) << none.err;
}

TEST_F(CtlVarlink, LeaseOverVarlinkListedOverDBus) {
    BusStack stack;
    stack.start_polkit();
    Process::Options o;
    o.env = stack.env();
    o.log_path = state_ / "promiscd.log";
    daemon_ = std::make_unique<Process>(
        ns_->wrap({PROMISCD_DAEMON_BINARY, "--log-target=console", "--state-dir=" + state_.path(),
                   "--config=" + config_, "--varlink=" + sock_}),
        o);
    ASSERT_TRUE(wait_until([&] { return stack.name_has_owner(PROMISCD_BUS_NAME); }))
        << daemon_->log();

    auto& hold = spawn({"hold", dev_, "--reason", "over-varlink"});
    ASSERT_NE(hold.wait_for_output("Holding lease"), std::string::npos) << hold.log();
    auto r = run({kCtl, "--transport=dbus", "--varlink-socket=" + sock_, "--json", "leases"},
                 stack.env());
    ASSERT_EQ(r.status, 0) << r.err;
    auto leases = json::parse(r.out);
    ASSERT_EQ(leases.size(), 1u) << r.out;
    EXPECT_EQ(leases[0]["reason"], "over-varlink");
    EXPECT_EQ(leases[0]["owner"].get<std::string>().rfind("varlink:", 0), 0u) << r.out;
    // auto picks D-Bus when promiscd is on the bus; the same lease.
    auto env = stack.env();
    env["PROMISCD_VARLINK_SOCKET"] = sock_;
    auto a = run({kCtl, "--json", "leases"}, env);
    ASSERT_EQ(a.status, 0) << a.err;
    auto again = json::parse(a.out);
    ASSERT_EQ(again.size(), 1u) << a.out;
    EXPECT_EQ(again[0]["id"], leases[0]["id"]);
    EXPECT_EQ(again[0]["owner"], leases[0]["owner"]);
    // Every lease has a D-Bus object (the new contract): root releases the
    // varlink lease over D-Bus, which for anyone but its owner is a
    // revocation, and the holder over varlink is told who did it.
    auto id = std::to_string(leases[0]["id"].get<std::uint64_t>());
    auto rel =
        run({kCtl, "--transport=dbus", "--varlink-socket=" + sock_, "release", id}, stack.env());
    EXPECT_EQ(rel.status, 0) << rel.err;
    EXPECT_EQ(hold.wait(5s), 1) << hold.log();
    EXPECT_TRUE(std::regex_search(hold.log(), std::regex("promiscctl: lease " + id + " on " + dev_ +
                                                         " ended: revoked by [^\n]*uid 0")))
        << hold.log();
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));
    procs_.clear();
    expect_clean_stop(*daemon_);
    daemon_.reset();
}

// The new contract: a lease of promiscd --hold reads the same on both
// transports (owner "config:hold"), and status says whose it is.
TEST_F(CtlVarlink, ConfigLeaseOwnerReadsTheSameOnBothTransports) {
    BusStack stack;
    stack.start_polkit();
    Process::Options o;
    o.env = stack.env();
    o.log_path = state_ / "promiscd.log";
    daemon_ = std::make_unique<Process>(
        ns_->wrap({PROMISCD_DAEMON_BINARY, "--log-target=console", "--state-dir=" + state_.path(),
                   "--config=" + config_, "--varlink=" + sock_, "--hold=" + dev_}),
        o);
    ASSERT_TRUE(wait_until([&] { return stack.name_has_owner(PROMISCD_BUS_NAME); }))
        << daemon_->log();
    ASSERT_TRUE(wait_until([&] { return promisc(); }));
    std::string owners[2];
    int i = 0;
    for (const char* transport : {"--transport=dbus", "--transport=varlink"}) {
        auto r =
            run({kCtl, transport, "--varlink-socket=" + sock_, "--json", "leases"}, stack.env());
        ASSERT_EQ(r.status, 0) << r.err;
        auto l = json::parse(r.out);
        ASSERT_EQ(l.size(), 1u) << r.out;
        owners[i++] = l[0]["owner"];
        auto st = run({kCtl, transport, "--varlink-socket=" + sock_, "status", dev_}, stack.env());
        EXPECT_NE(st.out.find("promiscd --hold (owner config:hold)"), std::string::npos)
            << transport << "\n"
            << st.out;
    }
    EXPECT_EQ(owners[0], "config:hold");
    EXPECT_EQ(owners[1], "config:hold");
    procs_.clear();
    expect_clean_stop(*daemon_);
    daemon_.reset();
}

// The new contract: link names are bytes, shown and given escaped ("\xff").
TEST_F(CtlVarlink, LinkNamesThatAreNotUtf8) {
    BusStack stack;
    stack.start_polkit();
    ns_->exec_ok("ip link add name $(printf 'e\\377x') type veth peer name ePeer");
    const std::string escaped = "e\\xffx";
    Process::Options o;
    o.env = stack.env();
    o.log_path = state_ / "promiscd.log";
    daemon_ = std::make_unique<Process>(
        ns_->wrap({PROMISCD_DAEMON_BINARY, "--log-target=console", "--state-dir=" + state_.path(),
                   "--config=" + config_, "--varlink=" + sock_}),
        o);
    ASSERT_TRUE(wait_until([&] { return stack.name_has_owner(PROMISCD_BUS_NAME); }))
        << daemon_->log();
    for (const char* transport : {"--transport=dbus", "--transport=varlink"}) {
        SCOPED_TRACE(transport);
        const std::vector<std::string> base = {kCtl, transport, "--varlink-socket=" + sock_};
        auto with = [&](std::vector<std::string> args) {
            auto a = base;
            a.insert(a.end(), args.begin(), args.end());
            return a;
        };
        auto st = run(with({"--no-legend", "status"}), stack.env());
        ASSERT_EQ(st.status, 0) << st.err;
        EXPECT_NE(st.out.find(" " + escaped + " "), std::string::npos) << st.out;
        auto js = run(with({"--json", "status"}), stack.env());
        ASSERT_EQ(js.status, 0) << js.err;
        bool found = false;
        for (const auto& l : json::parse(js.out))
            found = found || l["name"] == escaped;
        EXPECT_TRUE(found) << js.out;
        // The escaped name is what a request takes: the link is promiscuous
        // while the command runs.
        auto r = run(with({"run", escaped, "--", "sh", "-c",
                           "ip -n " + ns_->name() + " -o link show | grep -c PROMISC"}),
                     stack.env());
        EXPECT_EQ(r.status, 0) << r.err;
        EXPECT_EQ(r.out, "1\n") << "the link is promiscuous while the command runs";
        auto all = ns_->exec_ok("ip -o link show | grep -c PROMISC || true");
        EXPECT_EQ(all, "0\n") << "released after the command";
    }
    // Completion hands the shell the name quoted, backslash and all.
    const std::string dir = kCtl.substr(0, kCtl.rfind('/'));
    auto c = run({"bash", "-c",
                  "source '" + std::string(PROMISCD_SOURCE_ROOT) +
                      "/client/promiscctl.bash-completion'\n"
                      "COMP_WORDS=(promiscctl --transport=varlink --varlink-socket=" +
                      sock_ +
                      " hold 'e\\')\nCOMP_CWORD=4\n_promiscctl promiscctl\n"
                      "printf '%s\\n' \"${COMPREPLY[@]}\""},
                 {{"PATH", dir + ":/usr/bin:/bin"}});
    EXPECT_EQ(c.out, "e\\\\xffx\n") << c.err;
    procs_.clear();
    expect_clean_stop(*daemon_);
    daemon_.reset();
}

// Captures over varlink: the stream comes with OpenCapture's reply (the fd by
// SCM_RIGHTS). Frames come from the veth's peer, sent with a packet socket.
class CtlVarlinkCapture : public CtlVarlink {
protected:
    void SetUp() override {
        CtlVarlink::SetUp();
        if (IsSkipped())
            return;
        auto pair = link_state(*ns_, dev_);
        ASSERT_TRUE(pair);
        for (const auto& l : link_states(*ns_))
            if (l.name != "lo")
                ns_->exec_ok("ip link set dev " + l.name + " up");
        for (const auto& l : link_states(*ns_))
            if (l.name != "lo" && l.name != dev_)
                peer_ = l.name;
        ASSERT_FALSE(peer_.empty());
        start_daemon();
    }
    // n frames of the test's EtherType from the peer to dev_.
    void send(int n) {
        auto r = run(
            ns_->wrap({"/usr/bin/python3", "-c",
                       "import socket, sys, time\n"
                       "s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n"
                       "s.bind(('" +
                           peer_ +
                           "', 0))\n"
                           "for i in range(" +
                           std::to_string(n) +
                           "):\n"
                           "    s.send(b'\\xff' * 6 + b'\\x02\\0\\0\\0\\0\\x01' + b'\\x88\\xb5' + "
                           "b'promiscctl over varlink %03d' % i + bytes(20))\n"
                           "    time.sleep(0.005)\n"}));
        ASSERT_EQ(r.status, 0) << r.err;
    }
    size_t frames_in(const std::string& file) {
        auto r = run({"tshark", "-r", file, "-T", "fields", "-e", "eth.type"});
        size_t n = 0;
        std::istringstream in(r.out);
        for (std::string line; std::getline(in, line);)
            n += line == "0x88b5";
        return n;
    }
    std::string peer_;
};

TEST_F(CtlVarlinkCapture, CountToAFile) {
    const std::string file = state_ / "vl.pcapng";
    auto& c = spawn({"capture", "-i", dev_, "-c", "5", "-w", file, "ether", "proto", "0x88b5"});
    ASSERT_NE(c.wait_for_output("Capturing on '" + dev_ + "' with filter 'ether proto 0x88b5'"),
              std::string::npos)
        << c.log();
    EXPECT_TRUE(wait_until([&] { return promisc(); })) << "the capture holds a lease";
    send(10);
    EXPECT_EQ(c.wait(10s), 0) << c.log();
    EXPECT_EQ(frames_in(file), 5u);
    EXPECT_NE(c.log().find("Packets captured: 5\n"), std::string::npos) << c.log();
    EXPECT_NE(c.log().find("Capture ended: count-reached\n"), std::string::npos) << c.log();
    EXPECT_TRUE(wait_until([&] { return !promisc(); })) << "its lease ends with it";

    // -p: no lease; -F pcap; the stream to standard output.
    const std::string pcap = state_ / "vl.pcap";
    Process::Options o;
    o.env = pinned();
    procs_.push_back(std::make_unique<Process>(
        std::vector<std::string>{
            "sh", "-c",
            "exec '" + kCtl + "' --transport=varlink --varlink-socket=" + sock_ + " capture " +
                dev_ + " -p -F pcap -c 3 -w - ether proto 0x88b5 > " + pcap},
        o));
    auto& p = *procs_.back();
    ASSERT_NE(p.wait_for_output("Capturing on"), std::string::npos) << p.log();
    EXPECT_FALSE(promisc()) << "-p holds no lease";
    send(4);
    EXPECT_EQ(p.wait(10s), 0) << p.log();
    const auto magic = read_file(pcap).substr(0, 4);
    EXPECT_TRUE(magic == "\xd4\xc3\xb2\xa1" || magic == "\x4d\x3c\xb2\xa1")
        << "a classic pcap stream";
    EXPECT_EQ(frames_in(pcap), 3u);
}

TEST_F(CtlVarlinkCapture, CtrlCStopsItAndPrintsTheStatistics) {
    const std::string file = state_ / "stopped.pcapng";
    auto& c = spawn({"capture", dev_, "-w", file, "ether", "proto", "0x88b5"});
    ASSERT_NE(c.wait_for_output("Capturing on"), std::string::npos) << c.log();
    send(7);
    ASSERT_TRUE(wait_until([&] { return frames_in(file) == 7; })) << c.log();
    c.signal(SIGINT);
    EXPECT_EQ(c.wait(10s), 0) << c.log();
    EXPECT_NE(c.log().find("Packets captured: 7\nPackets received/dropped on interface '" + dev_ +
                           "': 7/0 (100.0%)\n"),
              std::string::npos)
        << c.log();
    EXPECT_NE(c.log().find("Capture ended: stopped\n"), std::string::npos) << c.log();
    auto t = run({"tshark", "-r", file});
    EXPECT_EQ(t.status, 0) << "a complete file: " << t.err;
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));
}

TEST_F(CtlVarlinkCapture, AutoCapturesOverVarlinkWithoutABus) {
    const std::string file = state_ / "auto.pcapng";
    Process::Options o;
    o.env = pinned();
    procs_.push_back(
        std::make_unique<Process>(std::vector<std::string>{kCtl, "capture", "-i", dev_, "-c", "2",
                                                           "-w", file, "ether", "proto", "0x88b5"},
                                  o));
    auto& c = *procs_.back();
    ASSERT_NE(c.wait_for_output("Capturing on"), std::string::npos) << c.log();
    send(4);
    EXPECT_EQ(c.wait(10s), 0) << c.log();
    EXPECT_EQ(frames_in(file), 2u);
    // A capture the daemon refuses says why, as over D-Bus.
    auto bad = ctl({"capture", "-i", dev_, "-w", state_ / "bad.pcapng", "udp", "port", "(("});
    EXPECT_EQ(bad.status, 1) << bad.err;
    EXPECT_NE(bad.err.find("syntax error"), std::string::npos) << bad.err;
    auto nolink = ctl({"capture", "-i", "nosuchlink0", "-w", state_ / "bad.pcapng"});
    EXPECT_EQ(nolink.status, 1);
    EXPECT_NE(nolink.err.find("interface 'nosuchlink0' does not exist"), std::string::npos)
        << nolink.err;
}

TEST(CtlVarlinkNoSocket, ExitsFourWithHint) {
    TempDir dir;
    auto path = dir / "io.promiscd";
    const std::map<std::string, std::string> no_bus = {
        {"DBUS_SYSTEM_BUS_ADDRESS", "unix:path=" + (dir / "no-bus-here")}};
    auto r = run({kCtl, "--transport=varlink", "--varlink-socket=" + path, "status"}, no_bus);
    EXPECT_EQ(r.status, 4) << r.err;
    EXPECT_NE(r.err.find("cannot connect to promiscd's varlink socket " + path), std::string::npos)
        << r.err;
    EXPECT_NE(r.err.find("hint: is promiscd.socket listening on " + path), std::string::npos)
        << r.err;
    // The environment names the socket too.
    auto e = run({kCtl, "--transport=varlink", "leases"},
                 {{"PROMISCD_VARLINK_SOCKET", path},
                  {"DBUS_SYSTEM_BUS_ADDRESS", no_bus.at("DBUS_SYSTEM_BUS_ADDRESS")}});
    EXPECT_EQ(e.status, 4);
    EXPECT_NE(e.err.find(path), std::string::npos) << e.err;
}

} // namespace
