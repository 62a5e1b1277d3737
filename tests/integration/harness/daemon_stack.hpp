// Test harness: the whole stack an integration test talks to, made and torn
// down in one piece: a private system bus (BusStack), polkitd with the test's
// rules, a network namespace with a veth pair, and promiscd as a separate
// process with every path it uses pinned to the test (state directory,
// varlink socket, configuration file), so that nothing reaches or depends on
// a promiscd, bus or configuration of the host. Also the clients the tests
// drive it with (busctl, python3-dbus, a plain varlink client). When the test
// failed, the destructor prints the daemon's, the bus's, polkitd's and the
// clients' logs.
#pragma once

#include "bus_stack.hpp"
#include "netns.hpp"
#include "process.hpp"

#include <functional>
#include <gtest/gtest.h>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace promiscd::testing {

// Object paths and interface names of the D-Bus API.
extern const std::string kRootPath;     // /org/promiscd/Promisc1
extern const std::string kManagerIface; // <bus name>.Manager
extern const std::string kLeaseIface;   // <bus name>.Lease
extern const std::string kErrorPrefix;  // <bus name>.Error.
// The varlink interface, with a trailing dot: "org.promiscd.promisc.".
extern const std::string kVarlinkIface;

// argv -> argv that runs it some other way (as another user, ...).
using Wrap = std::function<std::vector<std::string>(std::vector<std::string>)>;

class DaemonStack {
public:
    struct Options {
        // A private system bus that the daemon serves; false: --no-bus.
        bool bus = true;
        // polkitd on that bus with these rules ("" for none); nullopt: no polkitd.
        std::optional<std::string> polkit_rules;
        // polkitd's debug output (and polkit.log() from rules) in its log.
        bool polkit_debug = false;
        // Serve varlink on varlink_path(); false: --no-varlink.
        bool varlink = true;
        // Run the daemon as its unit does: the dedicated user, with
        // the ambient capabilities of its unit (net_admin, net_raw, sys_admin, sys_ptrace).
        bool as_daemon_user = false;
        // Make a veth pair (both ends down) in ns(); dev() is its first end.
        bool veth = true;
        // Start the daemon in the constructor (and wait until it serves).
        bool start = true;
    };

    DaemonStack() : DaemonStack(Options{}) {}
    explicit DaemonStack(Options opts);
    // Stops the clients, the daemon, deletes the namespace, stops polkitd and
    // the bus; prints every log first if the current test failed.
    ~DaemonStack();
    DaemonStack(const DaemonStack&) = delete;
    DaemonStack& operator=(const DaemonStack&) = delete;

    // ------------------------------------------------------------ the stack
    BusStack& bus(); // throws without Options::bus
    bool has_bus() const { return static_cast<bool>(bus_); }
    Netns& ns() { return *ns_; }
    const Netns& ns() const { return *ns_; }
    const VethPair& veth() const { return veth_; }
    const std::string& dev() const { return veth_.name; }
    // The daemon's state directory; its log, configuration file and varlink
    // socket live there too.
    const TempDir& state() const { return state_; }
    std::string varlink_path() const { return state_ / "io.promiscd"; }
    std::string config_path() const { return state_ / "promiscd.json"; }
    std::string log_path() const { return state_ / "promiscd.log"; }
    // The configuration file the daemon reads ("{}" until a test writes one).
    void write_config(const std::string& json);
    // {{"DBUS_SYSTEM_BUS_ADDRESS", ...}} with a bus, else empty: for clients.
    std::map<std::string, std::string> env() const;

    // ------------------------------------------------------------ the daemon
    // promiscd with the pinned paths and `extra` arguments (not yet wrapped
    // into the namespace; as the dedicated user when the options say so).
    std::vector<std::string> daemon_argv(std::vector<std::string> extra = {}) const;
    // Start it in ns() and return at once (no wait); replaces a previous one.
    Process& launch_daemon(std::vector<std::string> extra = {},
                           std::map<std::string, std::string> env = {});
    // Start it and wait until it serves: owns the bus name (with a bus) or
    // says it is watching links (without). Fails the test if it does not.
    void start_daemon(std::vector<std::string> extra = {},
                      std::map<std::string, std::string> env = {});
    // systemd-socket-activate listening on varlink_path() and starting the
    // daemon on the first connection; returns once it listens.
    void start_socket_activated(std::vector<std::string> extra = {});
    Process& daemon() { return *daemon_; }
    bool daemon_running() const { return static_cast<bool>(daemon_); }
    // Stop it (SIGTERM, then SIGKILL) and forget it.
    void stop_daemon();

    // Everything's logs, with headers.
    std::string logs() const;

    // ------------------------------------------------------------ clients
    // A process kept until the stack ends (stopped before the daemon); its
    // log is printed when the test failed. The bus's address is added to
    // the environment.
    Process& spawn(std::vector<std::string> argv, Process::Options opts = {});

    // busctl --system --json=short ARGS on the private bus.
    CommandResult busctl(std::vector<std::string> args, const TestUser* user = nullptr) const;
    // busctl call <bus name> PATH IFACE METHOD ARGS.
    CommandResult call(const std::string& method, std::vector<std::string> args = {},
                       const TestUser* user = nullptr, const std::string& path = kRootPath,
                       const std::string& iface = kManagerIface) const;
    // Manager.ListLeases as busctl's JSON (an array of structs).
    nlohmann::json leases() const;
    // A python3-dbus client holding a lease (clients/lease_holder.py ARGS).
    Process& lease_holder(const std::vector<std::string>& args, const TestUser* user = nullptr);
    // Waits for a holder's "LEASE <path>" line; returns the path.
    static std::string lease_of(Process& holder);

    // One varlink call on a fresh connection (clients/varlink_client.py);
    // returns what the client printed.
    std::string varlink_call(const std::string& method,
                             const nlohmann::json& params = nlohmann::json::object(),
                             const Wrap& as = {}) const;
    // A varlink connection kept open (clients/varlink_client.py ARGS); more
    // calls through write_stdin("call ..."). Returns once it is connected.
    Process& varlink_client(std::vector<std::string> args, const Wrap& as = {});
    // The parameters of the first "REPLY {...}" line in a client's output.
    static nlohmann::json reply_of(const std::string& out);
    // ListLeases over varlink.
    nlohmann::json varlink_leases() const;

    // ------------------------------------------------------------ the kernel
    // Whether `ip link` shows PROMISC on dev in ns().
    bool promisc(const std::string& dev) const;
    bool promisc() const { return promisc(dev()); }
    int ifindex_of(const std::string& dev) const; // -1 when there is no such link

private:
    bool ready(size_t log_from) const;

    Options opts_;
    TempDir state_;
    std::unique_ptr<BusStack> bus_;
    std::unique_ptr<Netns> ns_;
    VethPair veth_;
    std::unique_ptr<Process> daemon_;
    std::vector<std::unique_ptr<Process>> clients_;
};

// A gtest fixture with one DaemonStack per test. Subclasses choose its
// options; the stack is built in SetUp (skipped, saying why, when not root).
class DaemonTest : public ::testing::Test {
protected:
    virtual DaemonStack::Options options() const { return {}; }
    void SetUp() override;
    void TearDown() override { stack_.reset(); }
    DaemonStack& stack() { return *stack_; }

    std::unique_ptr<DaemonStack> stack_;
};

} // namespace promiscd::testing
