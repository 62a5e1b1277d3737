// The README's first command, `sudo scripts/run`, run as the README writes it
// (the line is read from README.md, so the two cannot drift apart), on a
// machine without a system bus and on one with Debian's own system bus. It
// runs in namespaces of its own so that the host is untouched: a network
// namespace with a veth pair, and a private mount namespace with a tmpfs
// over /run and writable copies over the directories the script installs
// into. A lease is taken with busctl, `ip link` shows PROMISC, Ctrl-C
// (SIGINT to the foreground process group) stops it, and then: the flag is
// clear, the private bus and polkitd are gone, and nothing is left mounted.
#include "daemon_stack.hpp"
#include "isolated_host.hpp"
#include "test_paths.h"

#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sys/wait.h>
#include <unistd.h>

using namespace promiscd::testing;
using nlohmann::json;

namespace {

const std::string kSource = PROMISCD_SOURCE_ROOT;
const std::string kBuild = PROMISCD_BUILD_ROOT;
const std::string kScriptsRunTarget = "scripts/run";

// The command line of README.md's first code block that runs scripts/run,
// without its comment; empty when there is none.
std::string readme_command(const std::string& script) {
    const std::string readme = read_file(kSource + "/README.md");
    auto open = readme.find("```");
    if (open == std::string::npos)
        return {};
    auto start = readme.find('\n', open) + 1;
    auto close = readme.find("```", start);
    std::istringstream block(readme.substr(start, close - start));
    for (std::string line; std::getline(block, line);) {
        line = line.substr(0, line.find('#'));
        while (!line.empty() && line.back() == ' ')
            line.pop_back();
        if (std::regex_search(line, std::regex("(^| )" + script + "( |$)")))
            return line;
    }
    return {};
}

// Waits for `text` in what a command printed; gives up at once when it exits.
bool says(Process& p, const std::string& text, std::chrono::milliseconds timeout = 60s) {
    auto seen = [&] { return p.log().find(text) != std::string::npos; };
    wait_until([&] { return seen() || !p.running(); }, timeout);
    return seen();
}

// `command` run from the source tree, as root, on an isolated host (see
// IsolatedHost): a network namespace with a veth pair; a tmpfs over /run;
// writable copies over the directories scripts/run installs into; the build
// under test at build/. With `with_system_bus`, Debian's own system bus runs
// there at the standard address before the command starts.
class IsolatedRun {
public:
    IsolatedRun(const std::string& command, bool with_system_bus) : veth_(add_veth(ns_)) {
        namespace fs = std::filesystem;
        IsolatedHost::Options o;
        o.netns = &ns_;
        o.writable_copies = {"/usr/share/dbus-1/system.d", "/usr/share/polkit-1/actions"};
        // scripts/run builds and runs build/: make that the build under test.
        const std::string build_link = kSource + "/build";
        if (fs::weakly_canonical(build_link) != fs::weakly_canonical(kBuild)) {
            if (!fs::exists(build_link))
                throw std::runtime_error(build_link + " does not exist: scripts/run would "
                                                      "build the whole tree there");
            o.binds.emplace_back(kBuild, build_link);
        }
        if (with_system_bus)
            o.setup =
                "mkdir -p /run/dbus\n"
                "dbus-daemon --system --fork --nopidfile --print-pid=3 3>/run/dbus/itest.pid\n";
        host_ = std::make_unique<IsolatedHost>(o, command, kSource);
        if (with_system_bus)
            system_bus_pid_ = std::stoi(read_file(
                "/proc/" + std::to_string(host_->process().pid()) + "/root/run/dbus/itest.pid"));
    }

    Process& process() { return host_->process(); }
    IsolatedHost& host() { return *host_; }
    const Netns& ns() const { return ns_; }
    const std::string& dev() const { return veth_.name; }
    pid_t system_bus_pid() const { return system_bus_pid_; }

private:
    Netns ns_;
    VethPair veth_;
    std::unique_ptr<IsolatedHost> host_;
    pid_t system_bus_pid_ = -1;
};

// Runs the README's command and goes through what a user does with it.
// `bus_env` is what a second shell needs to reach the bus promiscd serves.
// `started` names what must run before Ctrl-C and be gone after it.
void lease_then_ctrl_c(IsolatedRun& r, const std::map<std::string, std::string>& bus_env,
                       const std::set<std::string>& started) {
    auto& script = r.process();
    ASSERT_TRUE(says(script, "serving " PROMISCD_BUS_NAME)) << script.log();

    auto busctl = [&](std::vector<std::string> args) {
        args.insert(args.begin(), {"busctl", "--system"});
        return run(r.host().inside(bus_env, args));
    };
    {
        // busctl keeps its connection, and with it the lease (a D-Bus lease
        // lives as long as its owner's connection), while it cannot write
        // its reply: line-buffered output into a full pipe.
        PipedChild holder(
            r.host().inside(bus_env, {"stdbuf", "-oL", "busctl", "--system", "call",
                                      PROMISCD_BUS_NAME, kRootPath, kManagerIface, "AcquireLease",
                                      "sa{sv}", r.dev(), "1", "reason", "s", "scripts/run test"}),
            PipedChild::Output::Stalled);
        auto promisc = [&] {
            auto s = link_state(r.ns(), r.dev());
            return s && s->promisc();
        };
        ASSERT_TRUE(wait_until(promisc, 10s)) << "ip link shows PROMISC while busctl holds it\n"
                                              << script.log();
        auto leases = busctl(
            {"--json=short", "call", PROMISCD_BUS_NAME, kRootPath, kManagerIface, "ListLeases"});
        ASSERT_TRUE(leases.ok()) << leases.err;
        auto l = json::parse(leases.out)["data"][0];
        ASSERT_EQ(l.size(), 1u) << leases.out;
        EXPECT_EQ(l[0][2], r.dev());
        EXPECT_EQ(l[0][7], "busctl");

        // Everything the run started, before Ctrl-C.
        const auto before = r.host().processes();
        std::set<std::string> names;
        for (const auto& [pid, comm] : before)
            names.insert(comm);
        for (const auto& want : started)
            EXPECT_TRUE(names.count(want)) << want << " is not running";

        script.signal(SIGINT); // Ctrl-C: the whole foreground process group
        auto status = script.wait(30s);
        ASSERT_TRUE(status.has_value()) << "scripts/run did not stop on Ctrl-C\n" << script.log();
        EXPECT_EQ(*status, 0) << script.log();
        EXPECT_FALSE(promisc()) << "promiscd cleared the flag it set\n" << script.log();
        EXPECT_NE(script.log().find("received Interrupt, stopping"), std::string::npos)
            << script.log();
        for (const auto& [pid, comm] : before) {
            if (pid == r.system_bus_pid() || pid == holder.pid())
                continue; // the machine's own bus stays; busctl is ours to stop
            EXPECT_TRUE(wait_until([&] { return process_gone(pid); }, 10s))
                << comm << " (" << pid << ") still runs after Ctrl-C";
        }
    }
}

// The README opens with exactly two commands: run, and test.
TEST(ScriptsRun, ReadmeOpensWithTheTwoCommands) {
    PROMISCD_REQUIRE_ROOT();
    EXPECT_EQ(readme_command(kScriptsRunTarget), "sudo scripts/run")
        << "the README's first code block names the command a newcomer runs";
    EXPECT_EQ(readme_command("scripts/test"), "sudo scripts/test");
    const std::string readme = read_file(kSource + "/README.md");
    const auto start = readme.find('\n', readme.find("```")) + 1;
    std::istringstream block(readme.substr(start, readme.find("```", start) - start));
    int commands = 0;
    for (std::string line; std::getline(block, line);)
        commands += !line.empty();
    EXPECT_EQ(commands, 2) << "the first code block: one command to run, one to test";
    EXPECT_LT(readme.find("```"), readme.find("\n## ")) << "before anything else";
}

// No system bus (a container, a CI machine): scripts/run starts a private
// bus and polkitd, and stops them when promiscd stops.
TEST(ScriptsRun, WithoutASystemBusItBringsItsOwn) {
    PROMISCD_REQUIRE_ROOT();
    const auto command = readme_command(kScriptsRunTarget);
    ASSERT_FALSE(command.empty()) << "no scripts/run line in README.md's first code block";
    IsolatedRun r(command, false);
    auto& run = r.process();
    std::smatch m;
    ASSERT_TRUE(says(run, "export DBUS_SYSTEM_BUS_ADDRESS=")) << run.log();
    const auto log = run.log();
    ASSERT_TRUE(std::regex_search(log, m, std::regex("export DBUS_SYSTEM_BUS_ADDRESS=(\\S+)")));
    const std::string address = m[1].str();
    lease_then_ctrl_c(r, {{"DBUS_SYSTEM_BUS_ADDRESS", address}},
                      {"dbus-daemon", "polkitd", "promiscd"});
    EXPECT_NE(run.log().find("stopped the private bus and polkitd"), std::string::npos)
        << run.log();
    EXPECT_EQ(run.log().find("polkitd did not start"), std::string::npos) << run.log();
    EXPECT_TRUE(wait_until([&] { return r.host().processes().empty(); }, 10s))
        << "the namespace (and its mounts) outlived the run";
    r.host().expect_host_untouched();
}

// A machine with Debian's own system bus (its system.conf): scripts/run
// installs the policy, reloads the bus, and promiscd, as root, owns its name
// by the shipped policy.
TEST(ScriptsRun, OnTheSystemBusRootOwnsTheName) {
    PROMISCD_REQUIRE_ROOT();
    const auto command = readme_command(kScriptsRunTarget);
    ASSERT_FALSE(command.empty()) << "no scripts/run line in README.md's first code block";
    IsolatedRun r(command, true);
    auto& run = r.process();
    ASSERT_TRUE(says(run, "serving on the running system bus")) << run.log();
    lease_then_ctrl_c(r, {}, {"promiscd"});
    EXPECT_EQ(run.log().find("cannot own the bus name"), std::string::npos) << run.log();
    EXPECT_FALSE(process_gone(r.system_bus_pid())) << "scripts/run left the machine's bus alone";
    r.host().expect_host_untouched();
}

} // namespace
