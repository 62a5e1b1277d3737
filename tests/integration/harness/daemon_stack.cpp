#include "daemon_stack.hpp"

#include "test_paths.h"

#include <iostream>

namespace promiscd::testing {

using nlohmann::json;

const std::string kRootPath = "/org/promiscd/Promisc1";
const std::string kManagerIface = std::string(PROMISCD_BUS_NAME) + ".Manager";
const std::string kLeaseIface = std::string(PROMISCD_BUS_NAME) + ".Lease";
const std::string kErrorPrefix = std::string(PROMISCD_BUS_NAME) + ".Error.";
const std::string kVarlinkIface = "org.promiscd.promisc.";

namespace {

const std::string kClients = std::string(PROMISCD_SOURCE_ROOT) + "/tests/integration/clients/";

} // namespace

DaemonStack::DaemonStack(Options opts) : opts_(std::move(opts)) {
    write_config("{}\n");
    if (opts_.bus) {
        BusStack::Options bo;
        bo.print_logs_on_failure = false; // logs() has them, printed once
        bus_ = std::make_unique<BusStack>(bo);
        if (opts_.polkit_rules)
            bus_->start_polkit(*opts_.polkit_rules, opts_.polkit_debug);
    }
    ns_ = std::make_unique<Netns>();
    if (opts_.veth)
        veth_ = add_veth(*ns_);
    if (opts_.as_daemon_user)
        run({"chown", PROMISCD_DAEMON_USER, state_.path()});
    if (opts_.start)
        start_daemon();
}

DaemonStack::~DaemonStack() {
    try {
        // Before the logs are printed: a daemon that did not stop cleanly
        // fails the test, and its log says why.
        if (daemon_)
            expect_clean_stop(*daemon_);
        if (::testing::Test::HasFailure())
            std::cerr << logs();
    } catch (...) {
    }
    clients_.clear();
    daemon_.reset();
    ns_.reset();
    bus_.reset();
}

BusStack& DaemonStack::bus() {
    if (!bus_)
        throw std::logic_error("this DaemonStack has no bus");
    return *bus_;
}

void DaemonStack::write_config(const std::string& text) {
    write_file(config_path(), text);
}

std::map<std::string, std::string> DaemonStack::env() const {
    return bus_ ? bus_->env() : std::map<std::string, std::string>{};
}

std::vector<std::string> DaemonStack::daemon_argv(std::vector<std::string> extra) const {
    std::vector<std::string> argv;
    if (opts_.as_daemon_user)
        argv = {"setpriv",
                "--reuid=" PROMISCD_DAEMON_USER,
                "--regid=" PROMISCD_DAEMON_USER,
                "--init-groups",
                "--inh-caps=-all,+net_admin,+net_raw,+sys_admin,+sys_ptrace",
                "--ambient-caps=-all,+net_admin,+net_raw,+sys_admin,+sys_ptrace",
                "--bounding-set=-all,+net_admin,+net_raw,+sys_admin,+sys_ptrace",
                "--"};
    argv.insert(argv.end(), {PROMISCD_DAEMON_BINARY, "--log-target=console", "--log-level=debug",
                             "--state-dir=" + state_.path(), "--config=" + config_path()});
    argv.push_back(opts_.varlink ? "--varlink=" + varlink_path() : "--no-varlink");
    if (!bus_)
        argv.push_back("--no-bus");
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

Process& DaemonStack::launch_daemon(std::vector<std::string> extra,
                                    std::map<std::string, std::string> env) {
    stop_daemon();
    Process::Options o;
    o.env = this->env();
    for (auto& [k, v] : env)
        o.env[k] = v;
    o.log_path = log_path();
    daemon_ = std::make_unique<Process>(ns_->wrap(daemon_argv(std::move(extra))), o);
    return *daemon_;
}

bool DaemonStack::ready(size_t log_from) const {
    if (bus_)
        return bus_->name_has_owner(PROMISCD_BUS_NAME);
    return daemon_->log().find("watching", log_from) != std::string::npos;
}

void DaemonStack::start_daemon(std::vector<std::string> extra,
                               std::map<std::string, std::string> env) {
    // The log file is shared with earlier runs in this test: look past them.
    const size_t from = read_file(log_path()).size();
    launch_daemon(std::move(extra), std::move(env));
    ASSERT_TRUE(wait_until([&] { return ready(from) || !daemon_->running(); }) &&
                daemon_->running())
        << "promiscd did not start:\n"
        << daemon_->log();
}

void DaemonStack::start_socket_activated(std::vector<std::string> extra) {
    stop_daemon();
    const size_t from = read_file(log_path()).size();
    Process::Options o;
    o.env = env();
    o.log_path = log_path();
    std::vector<std::string> argv = {"systemd-socket-activate", "-l", varlink_path(),
                                     "--fdname=varlink"};
    auto d = daemon_argv(std::move(extra));
    argv.insert(argv.end(), d.begin(), d.end());
    daemon_ = std::make_unique<Process>(ns_->wrap(argv), o);
    ASSERT_NE(daemon_->wait_for_output("Listening on", 5s, from), std::string::npos)
        << daemon_->log();
}

void DaemonStack::stop_daemon() {
    if (daemon_)
        expect_clean_stop(*daemon_);
    daemon_.reset();
}

std::string DaemonStack::logs() const {
    std::string out = "===== promiscd log (" + log_path() + ") =====\n" + read_file(log_path());
    if (bus_)
        out += bus_->logs();
    for (const auto& c : clients_)
        out += "===== client " + std::to_string(c->pid()) + " =====\n" + c->log();
    return out + "===== end of logs =====\n";
}

Process& DaemonStack::spawn(std::vector<std::string> argv, Process::Options opts) {
    for (auto& [k, v] : env())
        opts.env.emplace(k, v);
    clients_.push_back(std::make_unique<Process>(std::move(argv), opts));
    return *clients_.back();
}

CommandResult DaemonStack::busctl(std::vector<std::string> args, const TestUser* user) const {
    std::vector<std::string> argv = {"busctl", "--system", "--json=short"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (user)
        argv = as_user(*user, argv);
    return run(argv, env());
}

CommandResult DaemonStack::call(const std::string& method, std::vector<std::string> args,
                                const TestUser* user, const std::string& path,
                                const std::string& iface) const {
    std::vector<std::string> argv = {"call", PROMISCD_BUS_NAME, path, iface, method};
    argv.insert(argv.end(), args.begin(), args.end());
    return busctl(argv, user);
}

json DaemonStack::leases() const {
    auto r = call("ListLeases");
    EXPECT_EQ(r.status, 0) << r.err;
    return r.ok() ? json::parse(r.out)["data"][0] : json::array();
}

Process& DaemonStack::lease_holder(const std::vector<std::string>& args, const TestUser* user) {
    std::vector<std::string> argv = {"/usr/bin/python3", kClients + "lease_holder.py"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (user)
        argv = as_user(*user, argv);
    Process::Options o;
    o.stdin_pipe = true;
    return spawn(argv, o);
}

std::string DaemonStack::lease_of(Process& p) {
    auto pos = p.wait_for_output("LEASE ");
    if (pos == std::string::npos) {
        ADD_FAILURE() << "no lease: " << p.log();
        return {};
    }
    auto line = p.log().substr(pos + 6);
    return line.substr(0, line.find(' '));
}

std::string DaemonStack::varlink_call(const std::string& method, const json& params,
                                      const Wrap& as) const {
    std::vector<std::string> argv = {
        "/usr/bin/python3", kClients + "varlink_client.py", varlink_path(), "--exit", method,
        params.dump()};
    if (as)
        argv = as(argv);
    auto r = run(argv);
    return r.out + r.err;
}

Process& DaemonStack::varlink_client(std::vector<std::string> args, const Wrap& as) {
    std::vector<std::string> argv = {"/usr/bin/python3", kClients + "varlink_client.py",
                                     varlink_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    if (as)
        argv = as(argv);
    Process::Options o;
    o.stdin_pipe = true;
    auto& p = spawn(argv, o);
    EXPECT_NE(p.wait_for_output("CONNECTED"), std::string::npos) << p.log();
    return p;
}

json DaemonStack::reply_of(const std::string& out) {
    auto pos = out.find("REPLY ");
    if (pos == std::string::npos) {
        ADD_FAILURE() << "no reply in: " << out;
        return json::object();
    }
    return json::parse(out.substr(pos + 6, out.find('\n', pos) - pos - 6));
}

json DaemonStack::varlink_leases() const {
    return reply_of(varlink_call(kVarlinkIface + "ListLeases"))["leases"];
}

bool DaemonStack::promisc(const std::string& dev) const {
    auto s = link_state(*ns_, dev);
    return s && s->promisc();
}

int DaemonStack::ifindex_of(const std::string& dev) const {
    auto s = link_state(*ns_, dev);
    return s ? s->ifindex : -1;
}

void DaemonTest::SetUp() {
    PROMISCD_REQUIRE_ROOT();
    stack_ = std::make_unique<DaemonStack>(options());
}

} // namespace promiscd::testing
