#include "bus_stack.hpp"

#include "test_paths.h"

#include <cstring>
#include <filesystem>
#include <gtest/gtest.h>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace promiscd::testing {

namespace {

constexpr const char* kPolkitName = "org.freedesktop.PolicyKit1";
constexpr const char* kPolkitd = "/usr/lib/polkit-1/polkitd";

// Each run in its own mount namespace, so the bind mounts vanish with the
// process and the host never sees them.
const std::vector<std::string> kUnshare = {"unshare", "-m", "--propagation", "private"};

// True once something listens on the UNIX socket at path (connect() to a
// bound but not yet listening socket fails with ECONNREFUSED).
bool can_connect(const std::string& path) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    ::close(fd);
    return ok;
}

// The host's file without lines for `names`, then `extra`.
std::string replace_entries(const std::string& host_file, const std::vector<std::string>& names,
                            const std::string& extra) {
    std::istringstream in(read_file(host_file));
    std::string out, line;
    while (std::getline(in, line)) {
        bool drop = false;
        for (const auto& n : names)
            drop = drop || line.rfind(n + ":", 0) == 0;
        if (!drop)
            out += line + "\n";
    }
    return out + extra;
}

void replace_all(std::string& s, const std::string& from, const std::string& to) {
    for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
        s.replace(pos, from.size(), to);
}

std::string xml_escape(std::string s) {
    replace_all(s, "&", "&amp;");
    replace_all(s, "<", "&lt;");
    replace_all(s, ">", "&gt;");
    return s;
}

} // namespace

std::vector<std::string> as_user(const TestUser& user, std::vector<std::string> argv) {
    std::vector<std::string> out = {"setpriv", "--reuid=" + std::to_string(user.uid),
                                    "--regid=" + std::to_string(user.gid)};
    if (user.in_promisc_group)
        out.push_back("--groups=" + std::to_string(kPromiscGid));
    else
        out.push_back("--clear-groups");
    out.push_back("--");
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

BusStack::BusStack(Options opts) : opts_(opts), socket_path_(dir_ / "system_bus_socket") {
    write_user_db();
    write_bus_config();
    std::filesystem::create_directories(dir_ / "polkit/actions");
    std::filesystem::create_directories(dir_ / "polkit/rules");
    std::filesystem::create_directories(dir_ / "polkit/empty");
    // polkitd reads them after dropping to user polkitd: world-readable.
    const std::string policy = dir_ / ("polkit/actions/" PROMISCD_ACTION_PREFIX ".policy");
    std::filesystem::copy_file(PROMISCD_POLKIT_POLICY, policy);
    ::chmod(policy.c_str(), 0644);

    // The bus sees the test users too: dbus-daemon refuses connections from
    // uids it cannot resolve to a user (it needs their groups for policy).
    Process::Options po;
    po.log_path = dir_ / "dbus-daemon.log";
    bus_ = std::make_unique<Process>(
        with_test_users({"dbus-daemon", "--config-file=" + (dir_ / "bus.conf"), "--nofork",
                         "--nopidfile", "--nosyslog"}),
        po);
    if (!wait_until([&] { return !bus_->running() || can_connect(socket_path_); }, 10s) ||
        !bus_->running())
        throw std::runtime_error("private dbus-daemon did not start:\n" + logs());
}

BusStack::~BusStack() {
    try {
        if (polkit_)
            polkit_->stop(2s);
        if (bus_)
            bus_->stop(2s);
        if (opts_.print_logs_on_failure && ::testing::Test::HasFailure())
            std::cerr << logs();
    } catch (...) {
    }
    polkit_.reset();
    bus_.reset();
}

void BusStack::write_user_db() {
    auto user_line = [](const TestUser& u) {
        return std::string(u.name) + ":x:" + std::to_string(u.uid) + ":" + std::to_string(u.gid) +
               ":promiscd test user:/nonexistent:/usr/sbin/nologin\n";
    };
    auto group_line = [](const TestUser& u) {
        return std::string(u.name) + ":x:" + std::to_string(u.gid) + ":\n";
    };
    std::string promisc_members;
    for (const auto& u : {kAllowedUser, kDeniedUser})
        if (u.in_promisc_group)
            promisc_members += (promisc_members.empty() ? "" : ",") + std::string(u.name);
    write_file(dir_ / "passwd",
               replace_entries("/etc/passwd", {kAllowedUser.name, kDeniedUser.name},
                               user_line(kAllowedUser) + user_line(kDeniedUser)));
    const std::string promisc_line =
        std::string(kPromiscGroup) + ":x:" + std::to_string(kPromiscGid) + ":" + promisc_members;
    write_file(
        dir_ / "group",
        replace_entries("/etc/group", {kAllowedUser.name, kDeniedUser.name, kPromiscGroup},
                        group_line(kAllowedUser) + group_line(kDeniedUser) + promisc_line + "\n"));

    // Wrappers that run inside `unshare -m`: bind the test files, then exec.
    auto bind = [&](const std::string& from, const std::string& over) {
        return "mount --bind '" + (dir_ / from) + "' " + over + "\n";
    };
    const std::string users =
        "set -e\n" + bind("passwd", "/etc/passwd") + bind("group", "/etc/group");
    write_file(dir_ / "with-test-users.sh", users + "exec \"$@\"\n");
    write_file(dir_ / "polkitd.sh", users + bind("polkit/actions", "/usr/share/polkit-1/actions") +
                                        bind("polkit/rules", "/usr/share/polkit-1/rules.d") +
                                        bind("polkit/empty", "/etc/polkit-1/rules.d") + "exec " +
                                        kPolkitd + " \"$@\"\n");
}

void BusStack::write_bus_config() {
    // The hole a test stack needs: polkitd's name, which the system bus
    // gets from polkitd's own package (its policy is not included here, to
    // keep the host's files out). Nothing about promiscd's name: the
    // project's policy decides that alone.
    const std::string test_policy = R"(<!DOCTYPE busconfig PUBLIC
 "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <policy user="polkitd">
    <allow own="org.freedesktop.PolicyKit1"/>
    <allow send_interface="org.freedesktop.PolicyKit1.AuthenticationAgent"/>
  </policy>
  <policy context="default">
    <allow send_destination="org.freedesktop.PolicyKit1"/>
  </policy>
</busconfig>
)";
    write_file(dir_ / "test-policy.conf", test_policy);

    // What the system bus has (type, EXTERNAL only, the default policy), but
    // no <user>, service directories or includedirs: the project's bus
    // policy as installed and polkitd's hole are the only additions.
    std::string config = R"(<!DOCTYPE busconfig PUBLIC
 "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=@SOCKET@</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>@PROJECT_POLICY@</include>
  <include>@TEST_POLICY@</include>
</busconfig>
)";
    replace_all(config, "@SOCKET@", xml_escape(socket_path_));
    replace_all(config, "@PROJECT_POLICY@", xml_escape(PROMISCD_DBUS_POLICY));
    replace_all(config, "@TEST_POLICY@", xml_escape(dir_ / "test-policy.conf"));
    write_file(dir_ / "bus.conf", config);
}

std::string BusStack::address() const {
    return "unix:path=" + socket_path_;
}

std::map<std::string, std::string> BusStack::env() const {
    return {{"DBUS_SYSTEM_BUS_ADDRESS", address()}};
}

pid_t BusStack::bus_pid() const {
    return bus_ ? bus_->pid() : -1;
}

std::vector<std::string> BusStack::with_test_users(std::vector<std::string> argv) const {
    std::vector<std::string> out = kUnshare;
    out.insert(out.end(), {"/bin/sh", dir_ / "with-test-users.sh"});
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
}

bool BusStack::name_has_owner(const std::string& name) const {
    auto r = run({"busctl", "--address=" + address(), "call", "org.freedesktop.DBus",
                  "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", "s", name});
    return r.ok() && r.out.rfind("b true", 0) == 0;
}

void BusStack::start_polkit(const std::string& rules_js, bool debug) {
    stop_polkit();
    // Only this stack's rules: clear what an earlier start left.
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "polkit/rules"))
        std::filesystem::remove(e.path());
    if (!rules_js.empty())
        write_file(dir_ / "polkit/rules/50-test.rules", rules_js);

    std::vector<std::string> argv = kUnshare;
    argv.insert(argv.end(), {"/bin/sh", dir_ / "polkitd.sh"});
    if (!debug)
        argv.push_back("--no-debug");
    Process::Options po;
    po.log_path = dir_ / "polkitd.log";
    po.env = env();
    polkit_ = std::make_unique<Process>(argv, po);
    if (!wait_until([&] { return !polkit_->running() || name_has_owner(kPolkitName); }, 10s) ||
        !polkit_->running())
        throw std::runtime_error("polkitd did not start or did not own " +
                                 std::string(kPolkitName) + ":\n" + logs());
}

void BusStack::stop_polkit() {
    if (!polkit_)
        return;
    polkit_->stop(2s);
    polkit_.reset();
    if (!wait_until([&] { return !name_has_owner(kPolkitName); }, 5s))
        throw std::runtime_error("polkitd stopped but its bus name remains:\n" + logs());
}

bool BusStack::polkit_running() {
    return polkit_ && polkit_->running();
}

pid_t BusStack::polkit_pid() const {
    return polkit_ ? polkit_->pid() : -1;
}

std::string BusStack::logs() const {
    std::string out =
        "===== dbus-daemon log (" + address() + ") =====\n" + read_file(dir_ / "dbus-daemon.log");
    if (std::filesystem::exists(dir_ / "polkitd.log"))
        out += "===== polkitd log =====\n" + read_file(dir_ / "polkitd.log");
    return out + "===== end of bus stack logs =====\n";
}

} // namespace promiscd::testing
