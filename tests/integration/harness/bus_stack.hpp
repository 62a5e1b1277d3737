// Test harness: a private system bus with the project's own bus policy as it
// ships (unmodified: a mistake in it fails the tests), and optionally a real
// polkitd with the project's own actions and test rules.
// Both see two test users that the host's /etc/passwd does not have.
#pragma once

#include "process.hpp"

#include <map>
#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

namespace promiscd::testing {

// Users that exist only for the bus and polkitd started here (and for
// commands wrapped with BusStack::with_test_users). Clients run as them with
// as_user(); they need no passwd entry in the host's view.
struct TestUser {
    const char* name;
    uid_t uid;
    gid_t gid;             // primary group, named like the user
    bool in_promisc_group; // member of kPromiscGroup
};
inline constexpr const char* kPromiscGroup = "promisc";
inline constexpr gid_t kPromiscGid = 64010;
inline constexpr TestUser kAllowedUser{"pdallow", 64001, 64001, true};
inline constexpr TestUser kDeniedUser{"pddeny", 64002, 64002, false};

// The test rules most suites use: group promisc (pdallow) may acquire and
// capture; pddeny may do nothing; anything else (managing) is left to the
// .policy defaults (auth_admin: a challenge nobody can answer here).
inline const std::string kPromiscGroupRules = R"js(
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.promiscd.") != 0)
        return polkit.Result.NOT_HANDLED;
    if (subject.user == "pddeny")
        return polkit.Result.NO;
    if (subject.isInGroup("promisc") &&
        (action.id == "org.promiscd.promisc.acquire" || action.id == "org.promiscd.capture"))
        return polkit.Result.YES;
    return polkit.Result.NOT_HANDLED;
});
)js";

// argv that runs `argv` as `user` with setpriv: real and effective uid and
// gid, and the supplementary groups the test /etc/group gives the user.
std::vector<std::string> as_user(const TestUser& user, std::vector<std::string> argv);

class BusStack {
public:
    struct Options {
        // The destructor prints logs() to stderr when the current test failed.
        bool print_logs_on_failure = true;
    };

    // Starts the bus; returns once it accepts connections. Throws on failure.
    BusStack() : BusStack(Options{}) {}
    explicit BusStack(Options opts);
    // Stops polkitd and the bus; removes every file and mount it made.
    ~BusStack();
    BusStack(const BusStack&) = delete;
    BusStack& operator=(const BusStack&) = delete;

    // "unix:path=<socket>".
    std::string address() const;
    // {{"DBUS_SYSTEM_BUS_ADDRESS", address()}}: for Process/run of clients and the daemon.
    std::map<std::string, std::string> env() const;
    pid_t bus_pid() const;

    // Start polkitd (stopping a running one first) with the project's
    // .policy as its only actions and `rules_js` as its only rules (none when
    // empty); returns once it owns org.freedesktop.PolicyKit1. `debug` keeps
    // polkitd's debug output, and with it polkit.log() from rules.
    void start_polkit(const std::string& rules_js = {}, bool debug = false);
    // Stop polkitd; returns once its name is gone from the bus.
    void stop_polkit();
    bool polkit_running();
    pid_t polkit_pid() const; // -1 when not started or stopped

    // Whether `name` has an owner on this bus.
    bool name_has_owner(const std::string& name) const;

    // argv that runs `argv` in a private mount namespace where /etc/passwd
    // and /etc/group also list the test users (as the bus and polkitd see them).
    std::vector<std::string> with_test_users(std::vector<std::string> argv) const;

    // The bus and polkitd logs, with headers.
    std::string logs() const;
    // The stack's temporary directory (bus config, socket, logs).
    const std::string& dir() const { return dir_.path(); }

private:
    void write_user_db();
    void write_bus_config();

    Options opts_;
    TempDir dir_;
    std::string socket_path_;
    std::unique_ptr<Process> bus_;
    std::unique_ptr<Process> polkit_;
};

} // namespace promiscd::testing
