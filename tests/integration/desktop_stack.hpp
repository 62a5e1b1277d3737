// The stack of the desktop tests (Wireshark's extcap helper, libpromisc from
// outside the tree): a private bus with the project's policy, polkitd with
// the rules below, the daemon as its own process in a namespace with a veth
// link whose peer sits in a second namespace, and a sender of frames there.
// Clients run as the test users, the way a person's programs would.
#pragma once

#include "bus_stack.hpp"
#include "frames.hpp"
#include "netns.hpp"
#include "process.hpp"
#include "test_paths.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <future>
#include <gtest/gtest.h>
#include <iostream>
#include <linux/if_packet.h>
#include <net/if.h>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace promiscd::testing {

// IEEE 802 local experimental EtherTypes: frames of the test and others.
inline constexpr uint16_t kOurType = 0x88b5;
inline constexpr uint16_t kOtherType = 0x88b6;

// pdallow may hold leases and capture, except on "any", where polkit wants
// a password (nobody can type it here); pddeny may do nothing.
inline const std::string kDesktopRules = R"js(
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.promiscd.") != 0)
        return polkit.Result.NOT_HANDLED;
    if (subject.user == "pddeny")
        return polkit.Result.NO;
    if (subject.user == "pdallow") {
        if (action.id == "org.promiscd.capture" && action.lookup("interface") == "any")
            return polkit.Result.AUTH_ADMIN;
        if (action.id == "org.promiscd.promisc.acquire" || action.id == "org.promiscd.capture")
            return polkit.Result.YES;
    }
    return polkit.Result.NOT_HANDLED;
});
)js";

// A frame of EtherType `type` carrying seq, `size` bytes long.
inline Bytes test_frame(const Mac& dst, const Mac& src, size_t size, uint32_t seq,
                        uint16_t type = kOurType) {
    Bytes f(dst.begin(), dst.end());
    f.insert(f.end(), src.begin(), src.end());
    f.insert(f.end(), {static_cast<uint8_t>(type >> 8), static_cast<uint8_t>(type)});
    for (int shift = 24; shift >= 0; shift -= 8)
        f.push_back(static_cast<uint8_t>(seq >> shift));
    while (f.size() < size)
        f.push_back(static_cast<uint8_t>(seq * 31 + f.size()));
    return f;
}

class DesktopStack : public ::testing::Test {
protected:
    void SetUp() override {
        PROMISCD_REQUIRE_ROOT();
        stack_ = std::make_unique<BusStack>();
        stack_->start_polkit(kDesktopRules);
        ns_ = std::make_unique<Netns>();
        peer_ = std::make_unique<Netns>();
        // No IPv6: links that come up would send frames no test sent.
        for (auto* n : {ns_.get(), peer_.get()})
            n->exec_ok("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                       "net.ipv6.conf.default.disable_ipv6=1");
        veth_ = add_veth(*ns_, *peer_);
        dev_ = veth_.name;
        ns_->exec_ok("ip link set dev " + dev_ + " up");
        peer_->exec_ok("ip link set dev " + veth_.peer_name + " up");
        mac_ = mac_of(*ns_, dev_);
        peer_mac_ = mac_of(*peer_, veth_.peer_name);
        sender_ = std::make_unique<FrameSender>(*peer_, veth_.peer_name);
        // Files of the test users' programs.
        ::chown(home_.path().c_str(), kAllowedUser.uid, kAllowedUser.gid);
        ::chmod(files_.path().c_str(), 0777);
        start_daemon(daemon_config());
    }
    // The daemon's configuration file (JSON) for the test.
    virtual std::string daemon_config() const { return "{}"; }
    void TearDown() override {
        if (HasFailure() && daemon_)
            std::cerr << "---- promiscd log ----\n" << daemon_->log() << '\n';
        for (auto& p : procs_)
            if (HasFailure())
                std::cerr << "---- client log ----\n" << p->log() << '\n';
        procs_.clear();
        daemon_.reset();
        sender_.reset();
        peer_.reset();
        ns_.reset();
        stack_.reset();
    }

    // The daemon, with `config` (JSON) as its configuration file.
    void start_daemon(const std::string& config = {}) {
        std::vector<std::string> argv = {PROMISCD_DAEMON_BINARY, "--log-target=console",
                                         "--log-level=debug", "--state-dir=" + state_.path(),
                                         "--varlink=" + varlink_socket()};
        // Always a file of the test's: whatever /etc/promiscd holds plays no part.
        write_file(state_ / "config.json", config.empty() ? "{}" : config);
        argv.push_back("--config=" + (state_ / "config.json"));
        Process::Options o;
        o.env = stack_->env();
        o.log_path = state_ / "promiscd.log";
        daemon_ = std::make_unique<Process>(ns_->wrap(argv), o);
        ASSERT_TRUE(wait_until([&] { return stack_->name_has_owner(PROMISCD_BUS_NAME); }))
            << daemon_->log();
        ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(varlink_socket()); }));
        ::chmod(varlink_socket().c_str(), 0666);
    }
    void stop_daemon() {
        if (daemon_)
            daemon_->stop();
        daemon_.reset();
    }
    std::string varlink_socket() const { return state_ / "io.promiscd"; }

    // A program in the background (as user, when given); output in its log.
    Process& spawn(std::vector<std::string> argv, const TestUser* user = nullptr,
                   std::map<std::string, std::string> extra_env = {}, bool stdin_pipe = false) {
        Process::Options o;
        o.env = stack_->env();
        for (auto& [k, v] : extra_env)
            o.env[k] = v;
        o.stdin_pipe = stdin_pipe;
        procs_.push_back(std::make_unique<Process>(user ? as_user(*user, argv) : argv, o));
        return *procs_.back();
    }

    CommandResult busctl(std::vector<std::string> args) {
        std::vector<std::string> argv = {"busctl", "--system", "--json=short"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv, stack_->env());
    }
    // ListLeases: [path, id, interface, state, owner, uid, pid, command,
    // reason, acquired, expires] per lease.
    nlohmann::json leases() {
        auto r = busctl({"call", PROMISCD_BUS_NAME, "/org/promiscd/Promisc1",
                         std::string(PROMISCD_BUS_NAME) + ".Manager", "ListLeases"});
        EXPECT_EQ(r.status, 0) << r.err;
        return r.ok() ? nlohmann::json::parse(r.out)["data"][0] : nlohmann::json::array();
    }
    // The object paths of the captures that exist now.
    std::vector<std::string> captures() {
        auto r = busctl({"call", PROMISCD_BUS_NAME, "/org/promiscd/Promisc1",
                         "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"});
        EXPECT_EQ(r.status, 0) << r.err;
        std::vector<std::string> out;
        if (!r.ok())
            return out;
        const auto objects = nlohmann::json::parse(r.out).at("data").at(0);
        for (auto it = objects.begin(); it != objects.end(); ++it)
            if (it.key().find("/capture/") != std::string::npos)
                out.push_back(it.key());
        return out;
    }
    bool promisc(const std::string& dev) {
        auto s = link_state(*ns_, dev);
        return s && s->promisc();
    }

    TempDir state_;
    TempDir home_;  // the test user's home
    TempDir files_; // files any test user may write
    std::unique_ptr<BusStack> stack_;
    std::unique_ptr<Netns> ns_;
    std::unique_ptr<Netns> peer_;
    VethPair veth_;
    std::string dev_;
    Mac mac_{}, peer_mac_{};
    std::unique_ptr<FrameSender> sender_;
    std::unique_ptr<Process> daemon_;
    std::vector<std::unique_ptr<Process>> procs_;
};

} // namespace promiscd::testing
