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

std::string mnt_ns_of(pid_t pid) {
    std::error_code ec;
    auto target =
        std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/ns/mnt", ec).string();
    return ec ? std::string() : target;
}

std::string comm_of(pid_t pid) {
    auto c = read_file("/proc/" + std::to_string(pid) + "/comm");
    return c.empty() ? c : c.substr(0, c.size() - 1);
}

// Gone, or a zombie that PID 1 has not reaped yet.
bool gone(pid_t pid) {
    auto status = read_file("/proc/" + std::to_string(pid) + "/status");
    return status.empty() || status.find("State:\tZ") != std::string::npos;
}

// Every live process in the mount namespace `ns` (as /proc/PID/ns/mnt names it).
std::map<pid_t, std::string> processes_in(const std::string& ns) {
    std::map<pid_t, std::string> out;
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const auto name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos)
            continue;
        const pid_t pid = std::stoi(name);
        if (mnt_ns_of(pid) == ns && !gone(pid))
            out[pid] = comm_of(pid);
    }
    return out;
}

// Waits for `text` in what a command printed; gives up at once when it exits.
bool says(Process& p, const std::string& text, std::chrono::milliseconds timeout = 60s) {
    auto seen = [&] { return p.log().find(text) != std::string::npos; };
    wait_until([&] { return seen() || !p.running(); }, timeout);
    return seen();
}

// A command whose standard output is a full pipe that nobody reads: a
// line-buffered busctl writes its reply and blocks there, connected to the
// bus, so the lease it took (which lives as long as its connection, like
// every D-Bus lease) stays held. Killed and reaped on the way out.
class StalledOutput {
public:
    explicit StalledOutput(const std::vector<std::string>& argv) {
        int p[2];
        if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
            throw std::runtime_error("pipe2");
        ::fcntl(p[1], F_SETPIPE_SZ, 4096);
        const std::string fill(4096, 'x');
        while (::write(p[1], fill.data(), fill.size()) > 0) {
        }
        read_end_ = p[0];
        pid_ = ::fork();
        if (pid_ == 0) {
            ::setpgid(0, 0);
            ::fcntl(p[1], F_SETFL, 0); // blocking again: busctl waits in write()
            ::dup2(p[1], 1);
            std::vector<char*> args;
            for (const auto& a : argv)
                args.push_back(const_cast<char*>(a.c_str()));
            args.push_back(nullptr);
            ::execvp(args[0], args.data());
            ::_exit(127);
        }
        ::close(p[1]);
    }
    ~StalledOutput() {
        ::kill(-pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        ::close(read_end_);
    }
    StalledOutput(const StalledOutput&) = delete;
    StalledOutput& operator=(const StalledOutput&) = delete;
    pid_t pid() const { return pid_; }

private:
    pid_t pid_ = -1;
    int read_end_ = -1;
};

// `command` run from the source tree, as root, in a network namespace with
// a veth pair and in a private mount namespace: a tmpfs over /run, writable
// copies over the directories scripts/run installs into, the build under
// test at build/. The destructor kills whatever is left in the namespace.
class IsolatedRun {
public:
    IsolatedRun(const std::string& command, bool with_system_bus) : veth_(add_veth(ns_)) {
        namespace fs = std::filesystem;
        host_dbus_policies_ = listing("/usr/share/dbus-1/system.d");
        host_polkit_actions_ = listing("/usr/share/polkit-1/actions");
        fs::copy("/usr/share/dbus-1/system.d", stage_ / "dbus-system.d",
                 fs::copy_options::recursive);
        fs::copy("/usr/share/polkit-1/actions", stage_ / "polkit-actions",
                 fs::copy_options::recursive);
        fs::create_directories(stage_ / "upper");
        fs::create_directories(stage_ / "work");

        std::string script = "set -e\n"
                             "mount -t tmpfs -o mode=0755 tmpfs /run\n"
                             "mount --bind '" +
                             stage_ / "dbus-system.d" +
                             "' /usr/share/dbus-1/system.d\n"
                             "mount --bind '" +
                             stage_ / "polkit-actions" + "' /usr/share/polkit-1/actions\n";
        // scripts/run builds and runs build/: make that the build under test.
        const std::string build_link = kSource + "/build";
        if (fs::weakly_canonical(build_link) != fs::weakly_canonical(kBuild)) {
            if (!fs::exists(build_link))
                script += "mount -t overlay overlay -o 'lowerdir=" + kSource +
                          ",upperdir=" + stage_ / "upper" + ",workdir=" + stage_ / "work" + "' '" +
                          kSource + "'\nmkdir '" + build_link + "'\n";
            script += "mount --bind '" + kBuild + "' '" + build_link + "'\n";
        }
        if (with_system_bus)
            // Debian's own system bus, at the standard address.
            script += "mkdir -p /run/dbus\n"
                      "dbus-daemon --system --fork --nopidfile --print-pid=3 3>'" +
                      stage_ / "system-bus.pid" + "'\n";
        // bash runs a simple command line in its own place, so only sudo and
        // what it runs are in the foreground group, as from a terminal.
        script += "echo 'itest: isolated'\n"
                  "cd '" +
                  kSource +
                  "'\n"
                  "exec bash -c \"$1\"\n";
        write_file(stage_ / "isolate.sh", script);

        Process::Options o;
        o.log_path = stage_ / "run.log";
        run_ = std::make_unique<Process>(ns_.wrap({"unshare", "-m", "--propagation", "private",
                                                   "/bin/sh", stage_ / "isolate.sh", command}),
                                         o);
        if (run_->wait_for_output("itest: isolated", 10s) == std::string::npos)
            throw std::runtime_error("the isolated namespace was not made:\n" + run_->log());
        mnt_ns_ = mnt_ns_of(run_->pid());
        if (with_system_bus)
            system_bus_pid_ = std::stoi(read_file(stage_ / "system-bus.pid"));
    }

    ~IsolatedRun() {
        if (::testing::Test::HasFailure())
            std::cerr << "===== scripts/run output =====\n" << run_->log();
        for (int round = 0; round < 50 && !processes_in(mnt_ns_).empty(); ++round) {
            for (const auto& [pid, comm] : processes_in(mnt_ns_))
                ::kill(pid, SIGKILL);
            std::this_thread::sleep_for(100ms);
        }
        run_.reset();
    }
    IsolatedRun(const IsolatedRun&) = delete;
    IsolatedRun& operator=(const IsolatedRun&) = delete;

    Process& process() { return *run_; }
    const Netns& ns() const { return ns_; }
    const std::string& dev() const { return veth_.name; }
    const std::string& mnt_ns() const { return mnt_ns_; }
    const std::string& stage() const { return stage_.path(); }
    pid_t system_bus_pid() const { return system_bus_pid_; }

    // argv, run inside the namespaces (as a second shell would), with `env`.
    std::vector<std::string> inside(const std::map<std::string, std::string>& env,
                                    std::vector<std::string> argv) const {
        std::vector<std::string> out = {
            "nsenter", "--target", std::to_string(run_->pid()), "--mount", "--net", "--", "env"};
        for (const auto& [k, v] : env)
            out.push_back(k + "=" + v);
        out.insert(out.end(), argv.begin(), argv.end());
        return out;
    }

    // The host's view is as it was.
    void expect_host_untouched() const {
        EXPECT_EQ(listing("/usr/share/dbus-1/system.d"), host_dbus_policies_);
        EXPECT_EQ(listing("/usr/share/polkit-1/actions"), host_polkit_actions_);
        EXPECT_EQ(read_file("/proc/self/mountinfo").find(stage_.path()), std::string::npos)
            << read_file("/proc/self/mountinfo");
    }

private:
    static std::set<std::string> listing(const std::string& dir) {
        std::set<std::string> out;
        for (const auto& e : std::filesystem::directory_iterator(dir))
            out.insert(e.path().filename().string());
        return out;
    }

    Netns ns_;
    VethPair veth_;
    TempDir stage_;
    std::unique_ptr<Process> run_;
    std::string mnt_ns_;
    pid_t system_bus_pid_ = -1;
    std::set<std::string> host_dbus_policies_, host_polkit_actions_;
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
        return run(r.inside(bus_env, args));
    };
    {
        StalledOutput holder(
            r.inside(bus_env, {"stdbuf", "-oL", "busctl", "--system", "call", PROMISCD_BUS_NAME,
                               kRootPath, kManagerIface, "AcquireLease", "sa{sv}", r.dev(), "1",
                               "reason", "s", "scripts/run test"}));
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
        const auto before = processes_in(r.mnt_ns());
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
            EXPECT_TRUE(wait_until([&] { return gone(pid); }, 10s))
                << comm << " (" << pid << ") still runs after Ctrl-C";
        }
    }
}

TEST(ScriptsRun, ReadmeCommandIsThere) {
    PROMISCD_REQUIRE_ROOT();
    EXPECT_EQ(readme_command(kScriptsRunTarget), "sudo scripts/run")
        << "the README's first code block names the command a newcomer runs";
    EXPECT_EQ(readme_command("scripts/test"), "sudo scripts/test");
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
    EXPECT_TRUE(wait_until([&] { return processes_in(r.mnt_ns()).empty(); }, 10s))
        << "the namespace (and its mounts) outlived the run";
    r.expect_host_untouched();
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
    EXPECT_FALSE(gone(r.system_bus_pid())) << "scripts/run left the machine's bus alone";
    r.expect_host_untouched();
}

} // namespace
