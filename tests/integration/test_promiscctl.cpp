// promiscctl end to end: every command as a separate process, as root and as
// the test users that polkit allows or denies, against the real stack (a
// private bus with the project's policy, polkitd with test rules, the daemon
// in a namespace the test made). Output is checked as a user reads it: tables
// by their columns, --json through python3's json module, exit codes, and
// `ip link` for the flag.
#include "bus_stack.hpp"
#include "netns.hpp"
#include "process.hpp"
#include "test_paths.h"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <regex>
#include <set>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <thread>

extern char** environ;

using namespace promiscd::testing;
using nlohmann::json;

namespace {

const std::string kCtl = PROMISCD_CTL_BINARY;
const std::string kSource = PROMISCD_SOURCE_ROOT;

const std::string& kRules = kPromiscGroupRules;

std::string shell_quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'')
            out += "'\\''";
        else
            out += c;
    }
    return out + "'";
}

// The text as python3's json module reads it (it must), back as nlohmann::json.
json py_json(const std::string& text) {
    auto r = run(
        {"/usr/bin/python3", "-c", "import json, sys\njson.dump(json.load(sys.stdin), sys.stdout)"},
        {}, text);
    if (!r.ok())
        throw std::runtime_error("python3 json rejected:\n" + text + "\n" + r.err);
    return json::parse(r.out);
}

// A table as promiscctl prints it: a header line whose words start the
// columns, rows until an empty line, then the legend.
struct ParsedTable {
    std::vector<std::map<std::string, std::string>> rows;
    std::string legend;
};

std::string trim(const std::string& s) {
    auto b = s.find_first_not_of(' ');
    auto e = s.find_last_not_of(' ');
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

ParsedTable parse_table(const std::string& out) {
    ParsedTable t;
    std::istringstream in(out);
    std::string header;
    std::getline(in, header);
    std::vector<std::pair<size_t, std::string>> columns;
    for (size_t i = 0; i < header.size(); ++i)
        if (header[i] != ' ' && (i == 0 || header[i - 1] == ' ')) {
            auto end = header.find(' ', i);
            columns.emplace_back(i, header.substr(i, end == std::string::npos ? end : end - i));
        }
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) {
            std::getline(in, t.legend);
            break;
        }
        std::map<std::string, std::string> row;
        for (size_t c = 0; c < columns.size(); ++c) {
            size_t start = columns[c].first;
            size_t len = c + 1 < columns.size() ? columns[c + 1].first - start : std::string::npos;
            row[columns[c].second] = start < line.size() ? trim(line.substr(start, len)) : "";
        }
        t.rows.push_back(row);
    }
    return t;
}

// A program on a pseudo-terminal that is its controlling terminal, as a
// person runs it: the test reads what the terminal shows and types into it.
// The destructor kills the program's process group and reaps it.
class PtyProcess {
public:
    PtyProcess(const std::vector<std::string>& argv,
               const std::map<std::string, std::string>& extra_env) {
        master_ = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master_ < 0 || ::grantpt(master_) < 0 || ::unlockpt(master_) < 0)
            throw std::runtime_error("cannot open a pseudo-terminal");
        const std::string slave = ::ptsname(master_);
        winsize ws{};
        ws.ws_row = 40;
        ws.ws_col = 200; // wide: no line wrapping in what the test reads
        ::ioctl(master_, TIOCSWINSZ, &ws);
        // Everything the child needs, built before fork().
        std::vector<std::string> env_strings;
        std::map<std::string, std::string> env;
        for (char** e = environ; *e; ++e) {
            std::string kv = *e;
            auto eq = kv.find('=');
            if (eq != std::string::npos)
                env[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
        for (const auto& [k, v] : extra_env)
            env[k] = v;
        for (const auto& [k, v] : env)
            env_strings.push_back(k + "=" + v);
        std::vector<char*> envp, args;
        for (auto& e : env_strings)
            envp.push_back(e.data());
        envp.push_back(nullptr);
        std::vector<std::string> argv_copy = argv;
        for (auto& a : argv_copy)
            args.push_back(a.data());
        args.push_back(nullptr);
        pid_ = ::fork();
        if (pid_ < 0)
            throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::setsid();
            int fd = ::open(slave.c_str(), O_RDWR);
            if (fd < 0 || ::ioctl(fd, TIOCSCTTY, 0) < 0)
                ::_exit(126);
            ::dup2(fd, 0);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            if (fd > 2)
                ::close(fd);
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            ::execvpe(args[0], args.data(), envp.data());
            ::_exit(127);
        }
    }
    ~PtyProcess() {
        if (!status_) {
            ::kill(-pid_, SIGKILL);
            ::kill(pid_, SIGKILL);
            int st;
            while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
        }
        ::close(master_);
    }
    PtyProcess(const PtyProcess&) = delete;
    PtyProcess& operator=(const PtyProcess&) = delete;

    pid_t pid() const { return pid_; }
    // Everything the terminal has shown so far.
    const std::string& output() {
        pump(0ms);
        return out_;
    }
    // Waits until the terminal has shown `text` (after offset `from`).
    bool wait_for(const std::string& text, std::chrono::milliseconds timeout = 10s,
                  size_t from = 0) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (out_.find(text, from) != std::string::npos)
                return true;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0 || closed_)
                return out_.find(text, from) != std::string::npos;
            pump(std::min(left, std::chrono::milliseconds(100)));
        }
    }
    void type(const std::string& keys) {
        size_t done = 0;
        while (done < keys.size()) {
            ssize_t n = ::write(master_, keys.data() + done, keys.size() - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                throw std::runtime_error("cannot type into the pseudo-terminal");
            done += static_cast<size_t>(n);
        }
    }
    // Types a password once the program has turned echo off, as a person
    // types after the prompt (typed earlier, the agent's switch to no echo
    // would discard it, TCSAFLUSH). The master shares the terminal's modes.
    void type_secret(const std::string& secret, std::chrono::milliseconds timeout = 10s) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        termios t{};
        while (::tcgetattr(master_, &t) == 0 && (t.c_lflag & ECHO) &&
               std::chrono::steady_clock::now() < deadline)
            pump(20ms);
        type(secret + "\n");
    }
    // The exit status (or 128+signal), reading the terminal meanwhile.
    std::optional<int> wait(std::chrono::milliseconds timeout = 20s) {
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (!status_) {
            int st;
            pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_) {
                status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                break;
            }
            if (std::chrono::steady_clock::now() > deadline)
                return std::nullopt;
            pump(50ms);
        }
        pump(100ms); // what it wrote last
        return status_;
    }

private:
    void pump(std::chrono::milliseconds timeout) {
        if (closed_)
            return;
        pollfd p{master_, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(timeout.count()));
        while (r > 0) {
            char buf[4096];
            ssize_t n = ::read(master_, buf, sizeof buf);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                // EIO: every process holding the terminal has closed it.
                closed_ = true;
                return;
            }
            out_.append(buf, static_cast<size_t>(n));
            r = ::poll(&p, 1, 0);
        }
    }

    int master_ = -1;
    pid_t pid_ = -1;
    std::string out_;
    bool closed_ = false;
    std::optional<int> status_;
};

class Ctl : public ::testing::Test {
protected:
    void SetUp() override {
        PROMISCD_REQUIRE_ROOT();
        stack_ = std::make_unique<BusStack>();
        stack_->start_polkit(kRules);
        ns_ = std::make_unique<Netns>();
        make_links();
        dev_ = veth_.name;
        // Marker files written by commands that run as the test users.
        ::chmod(tmp_.path().c_str(), 0777);
        start_daemon();
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
        stack_.reset();
    }

    // A veth pair in the daemon's namespace.
    virtual void make_links() { veth_ = add_veth(*ns_); }

    void start_daemon() {
        Process::Options o;
        o.env = stack_->env();
        o.log_path = state_ / "promiscd.log";
        daemon_ = std::make_unique<Process>(
            ns_->wrap({PROMISCD_DAEMON_BINARY, "--log-target=console", "--log-level=debug",
                       "--state-dir=" + state_.path(),
                       serve_varlink_ ? "--varlink=" + varlink_socket() : "--no-varlink"}),
            o);
        ASSERT_TRUE(wait_until([&] { return stack_->name_has_owner(PROMISCD_BUS_NAME); }))
            << daemon_->log();
    }

    // The test's bus, and a varlink socket that does not exist: with its own
    // daemon stopped, promiscctl must never reach for another promiscd's
    // socket at the default path (hermetic, whatever runs on the host).
    std::string no_varlink() const { return tmp_ / "no-varlink-here"; }
    // Where the daemon serves varlink when a fixture asks for it.
    std::string varlink_socket() const { return tmp_ / "io.promiscd"; }
    bool serve_varlink_ = false;
    std::map<std::string, std::string> env(std::map<std::string, std::string> extra = {}) {
        auto e = stack_->env();
        e["PROMISCD_VARLINK_SOCKET"] = no_varlink();
        for (auto& [k, v] : extra)
            e[k] = v;
        return e;
    }
    std::vector<std::string> argv(std::vector<std::string> args, const TestUser* user) {
        args.insert(args.begin(), kCtl);
        return user ? as_user(*user, args) : args;
    }
    // promiscctl ARGS to completion.
    CommandResult ctl(std::vector<std::string> args, const TestUser* user = nullptr,
                      std::map<std::string, std::string> extra = {}) {
        return run(argv(std::move(args), user), env(std::move(extra)));
    }
    // promiscctl ARGS in the background; stdout and stderr go to its log.
    Process& ctl_bg(std::vector<std::string> args, const TestUser* user = nullptr,
                    std::map<std::string, std::string> extra = {}) {
        Process::Options o;
        o.env = env(std::move(extra));
        procs_.push_back(std::make_unique<Process>(argv(std::move(args), user), o));
        return *procs_.back();
    }
    // A shell command line under a pseudo-terminal (script), as a person
    // would run it; output is what the terminal showed.
    CommandResult pty(const std::string& cmdline, const TestUser* user = nullptr,
                      std::map<std::string, std::string> extra = {}) {
        extra.emplace("TERM", "xterm");
        std::vector<std::string> a = {"script", "-qfec", cmdline, "/dev/null"};
        return run(user ? as_user(*user, a) : a, env(std::move(extra)));
    }
    // A python3-dbus client holding a lease (clients/lease_holder.py).
    Process& holder(const std::vector<std::string>& args, const TestUser* user = nullptr) {
        std::vector<std::string> a = {"/usr/bin/python3",
                                      kSource + "/tests/integration/clients/lease_holder.py"};
        a.insert(a.end(), args.begin(), args.end());
        Process::Options o;
        o.env = stack_->env();
        o.stdin_pipe = true;
        procs_.push_back(std::make_unique<Process>(user ? as_user(*user, a) : a, o));
        return *procs_.back();
    }
    // The id of the holder's lease, from its "LEASE <path>" line.
    std::string lease_id_of(Process& p) {
        auto pos = p.wait_for_output("LEASE ");
        if (pos == std::string::npos) {
            ADD_FAILURE() << "no lease: " << p.log();
            return {};
        }
        auto line = p.log().substr(pos + 6);
        auto path = line.substr(0, line.find(' '));
        return path.substr(path.rfind('/') + 1);
    }
    json leases_json() {
        auto r = ctl({"leases", "--json"});
        EXPECT_EQ(r.status, 0) << r.err;
        return r.ok() ? py_json(r.out) : json::array();
    }
    json link_json(const std::string& dev) {
        auto r = ctl({"--json", "status"});
        EXPECT_EQ(r.status, 0) << r.err;
        for (const auto& l : py_json(r.out))
            if (l["name"] == dev)
                return l;
        return json();
    }
    bool promisc(const std::string& dev) {
        auto s = link_state(*ns_, dev);
        return s && s->promisc();
    }
    bool promisc() { return promisc(dev_); }

    TempDir state_;
    TempDir tmp_;
    std::unique_ptr<BusStack> stack_;
    std::unique_ptr<Netns> ns_;
    VethPair veth_;
    std::string dev_;
    std::unique_ptr<Process> daemon_;
    std::vector<std::unique_ptr<Process>> procs_;
};

// ------------------------------------------------------------------ status

TEST_F(Ctl, StatusTableForRootAndBothUsers) {
    ns_->exec_ok("ip link set dev " + veth_.peer_name + " promisc on");
    for (const TestUser* user :
         {static_cast<const TestUser*>(nullptr), &kAllowedUser, &kDeniedUser}) {
        SCOPED_TRACE(user ? user->name : "root");
        auto r = ctl({"status"}, user);
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << "no colour into a pipe";
        auto t = parse_table(r.out);
        std::map<std::string, std::map<std::string, std::string>> by_name;
        for (const auto& row : t.rows)
            by_name[row.at("LINK")] = row;
        ASSERT_TRUE(by_name.count(dev_)) << r.out;
        ASSERT_TRUE(by_name.count("lo")) << r.out;
        const auto& d = by_name[dev_];
        EXPECT_EQ(d.at("IDX"), std::to_string(link_state(*ns_, dev_)->ifindex));
        EXPECT_EQ(d.at("PROMISC"), "no");
        EXPECT_EQ(d.at("FLAG"), "off");
        EXPECT_EQ(d.at("COUNT"), "0");
        EXPECT_EQ(d.at("ORIGIN"), "none");
        EXPECT_EQ(d.at("LEASES"), "0");
        EXPECT_EQ(d.at("POLICY"), "enforce");
        const auto& p = by_name[veth_.peer_name];
        EXPECT_EQ(p.at("PROMISC"), "yes");
        EXPECT_EQ(p.at("FLAG"), "on");
        EXPECT_EQ(p.at("ORIGIN"), "admin");
        EXPECT_EQ(t.legend, std::to_string(t.rows.size()) + " links listed.");
    }
    // The default command is status.
    auto bare = ctl({});
    EXPECT_EQ(bare.status, 0) << bare.err;
    EXPECT_EQ(bare.out, ctl({"status"}).out);
}

TEST_F(Ctl, StatusNoLegendAndJson) {
    auto plain = ctl({"--no-legend", "status"});
    ASSERT_EQ(plain.status, 0) << plain.err;
    EXPECT_EQ(plain.out.find("IDX"), std::string::npos) << plain.out;
    EXPECT_EQ(plain.out.find("listed"), std::string::npos) << plain.out;
    EXPECT_NE(plain.out.find(dev_), std::string::npos);
    // Every line is a row: first column the index, second the name.
    std::istringstream lines(plain.out);
    for (std::string line; std::getline(lines, line);)
        EXPECT_TRUE(std::regex_match(line, std::regex(R"(\d+ +\S+ +(yes|no) +(on|off) .*)")))
            << line;

    auto& h = holder({dev_, "--reason", "json test"});
    lease_id_of(h);
    auto short_out = ctl({"status", "--json"});
    ASSERT_EQ(short_out.status, 0) << short_out.err;
    EXPECT_EQ(std::count(short_out.out.begin(), short_out.out.end(), '\n'), 1)
        << "short is one line";
    auto pretty = ctl({"--json=pretty", "status"});
    EXPECT_GT(std::count(pretty.out.begin(), pretty.out.end(), '\n'), 5);
    EXPECT_EQ(py_json(pretty.out), py_json(short_out.out));
    json link;
    for (const auto& l : py_json(short_out.out))
        if (l["name"] == dev_)
            link = l;
    ASSERT_FALSE(link.is_null()) << short_out.out;
    EXPECT_EQ(link["index"], link_state(*ns_, dev_)->ifindex);
    EXPECT_EQ(link["path"],
              "/org/promiscd/Promisc1/link/" + std::to_string(link["index"].get<int>()));
    EXPECT_EQ(link["promiscuous"], true);
    EXPECT_EQ(link["admin_flag"], true);
    EXPECT_EQ(link["promiscuity"], 1);
    EXPECT_EQ(link["origin"], "daemon");
    EXPECT_EQ(link["leases"], 1);
    EXPECT_EQ(link["policy"], "enforce");

    // With LINK: the link and its leases.
    auto one = ctl({"status", dev_, "--json"});
    ASSERT_EQ(one.status, 0) << one.err;
    auto j = py_json(one.out);
    ASSERT_EQ(j.size(), 1u);
    EXPECT_EQ(j[0]["name"], dev_);
    ASSERT_EQ(j[0]["lease_list"].size(), 1u);
    EXPECT_EQ(j[0]["lease_list"][0]["reason"], "json test");
}

TEST_F(Ctl, StatusOfALinkShowsItsLeases) {
    auto& h = holder({dev_, "--reason", "ids sensor"}, &kAllowedUser);
    auto id = lease_id_of(h);
    auto r = ctl({"status", dev_});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find(dev_ + " (index "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Promiscuous: yes (kernel count 1)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Admin flag: on, set by promiscd"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Policy: enforce"), std::string::npos) << r.out;
    EXPECT_TRUE(std::regex_search(
        r.out,
        std::regex(
            " " + id +
            R"( active, 64001, pid \d+ \(python3\), acquired (now|\d+s ago), expires never: ids sensor)")))
        << r.out;

    auto missing = ctl({"status", dev_, "nosuchlink0"});
    EXPECT_EQ(missing.status, 1);
    EXPECT_EQ(missing.err, "promiscctl: interface 'nosuchlink0' does not exist\n");
    EXPECT_EQ(missing.out, "") << "nothing printed when a name is wrong";
}

// ------------------------------------------------------------------ leases

TEST_F(Ctl, LeasesTableAndJsonWithUserNames) {
    auto& a = holder({dev_, "--reason", "ids sensor"}, &kAllowedUser);
    auto id_a = lease_id_of(a);
    auto& b = holder({dev_, "--ttl", "300"});
    auto id_b = lease_id_of(b);

    // Outside the test users' view uid 64001 has no name: the number.
    auto r = ctl({"leases"});
    ASSERT_EQ(r.status, 0) << r.err;
    auto t = parse_table(r.out);
    ASSERT_EQ(t.rows.size(), 2u) << r.out;
    EXPECT_EQ(t.legend, "2 leases listed.");
    const auto& ra = t.rows[0];
    EXPECT_EQ(ra.at("ID"), id_a);
    EXPECT_EQ(ra.at("LINK"), dev_);
    EXPECT_EQ(ra.at("STATE"), "active");
    EXPECT_EQ(ra.at("USER"), "64001");
    EXPECT_EQ(ra.at("PID"), std::to_string(a.pid())) << "setpriv execs python3 in place";
    EXPECT_EQ(ra.at("COMMAND"), "python3");
    EXPECT_TRUE(std::regex_match(ra.at("ACQUIRED"), std::regex(R"(now|\d+s ago)")))
        << ra.at("ACQUIRED");
    EXPECT_EQ(ra.at("EXPIRES"), "never");
    EXPECT_EQ(ra.at("REASON"), "ids sensor");
    const auto& rb = t.rows[1];
    EXPECT_EQ(rb.at("ID"), id_b);
    EXPECT_EQ(rb.at("USER"), "root");
    EXPECT_TRUE(std::regex_match(rb.at("EXPIRES"), std::regex(R"(in 4min \d+s)")))
        << rb.at("EXPIRES");
    EXPECT_EQ(rb.at("REASON"), "-");

    // Reading needs no authorization: the denied user sees the same.
    auto as_denied = ctl({"leases"}, &kDeniedUser);
    EXPECT_EQ(as_denied.status, 0) << as_denied.err;
    EXPECT_EQ(parse_table(as_denied.out).rows.size(), 2u) << as_denied.out;

    // Where the user database knows the test users, their names.
    auto named = run(stack_->with_test_users({kCtl, "--no-legend", "leases"}), env());
    ASSERT_EQ(named.status, 0) << named.err;
    EXPECT_TRUE(
        std::regex_search(named.out, std::regex("^" + id_a + " +" + dev_ + " +active +pdallow ")))
        << named.out;

    auto j = leases_json();
    ASSERT_EQ(j.size(), 2u);
    EXPECT_EQ(j[0]["id"], std::stoull(id_a));
    EXPECT_EQ(j[0]["path"], "/org/promiscd/Promisc1/lease/" + id_a);
    EXPECT_EQ(j[0]["interface"], dev_);
    EXPECT_EQ(j[0]["state"], "active");
    EXPECT_EQ(j[0]["uid"], kAllowedUser.uid);
    EXPECT_TRUE(j[0]["user"].is_null()) << "no name for the uid here";
    EXPECT_EQ(j[0]["pid"], a.pid());
    EXPECT_EQ(j[0]["command"], "python3");
    EXPECT_EQ(j[0]["reason"], "ids sensor");
    EXPECT_EQ(j[0]["owner"].get<std::string>().rfind(":1.", 0), 0u);
    EXPECT_GT(j[0]["acquired"].get<uint64_t>(), 1'600'000'000'000'000ull);
    EXPECT_TRUE(j[0]["expires"].is_null());
    EXPECT_EQ(j[1]["user"], "root");
    EXPECT_GT(j[1]["expires"].get<uint64_t>(), j[1]["acquired"].get<uint64_t>());

    a.write_stdin("release\n");
    b.write_stdin("release\n");
    EXPECT_TRUE(wait_until([&] { return leases_json().empty(); }));
    auto empty = ctl({"leases"});
    EXPECT_EQ(empty.out, "ID LINK STATE USER PID COMMAND ACQUIRED EXPIRES "
                         "REASON\n\n0 leases listed.\n");
}

// ------------------------------------------------------------------ hold

TEST_F(Ctl, HoldAsAllowedUserReleasesOnSigterm) {
    auto& h = ctl_bg({"hold", dev_, "--reason", "debugging"}, &kAllowedUser);
    ASSERT_NE(h.wait_for_output("Holding lease "), std::string::npos) << h.log();
    EXPECT_NE(h.log().find(" on " + dev_ + " (active)"), std::string::npos) << h.log();
    EXPECT_TRUE(promisc()) << "ip link shows PROMISC while held";
    auto l = leases_json();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0]["uid"], kAllowedUser.uid);
    EXPECT_EQ(l[0]["command"], "promiscctl");
    EXPECT_EQ(l[0]["reason"], "debugging");
    h.signal(SIGTERM);
    EXPECT_EQ(h.wait(5s), 0) << h.log();
    EXPECT_NE(h.log().find("Released lease " + std::to_string(l[0]["id"].get<uint64_t>()) + " on " +
                           dev_ + "."),
              std::string::npos)
        << h.log();
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));
    EXPECT_TRUE(leases_json().empty());
}

TEST_F(Ctl, HoldKilledLeaseEndsAnyway) {
    auto& h = ctl_bg({"hold", dev_});
    ASSERT_NE(h.wait_for_output("Holding lease "), std::string::npos) << h.log();
    ASSERT_TRUE(promisc());
    h.signal(SIGKILL);
    EXPECT_TRUE(wait_until([&] { return !promisc(); })) << "owner-gone ends it";
    EXPECT_TRUE(leases_json().empty());
}

TEST_F(Ctl, HoldPrintsStateChangesAndRevocation) {
    auto& h = ctl_bg({"hold", dev_});
    ASSERT_NE(h.wait_for_output("Holding lease "), std::string::npos) << h.log();
    auto id = std::to_string(leases_json()[0]["id"].get<uint64_t>());
    auto r = ctl({"policy", dev_, "yield"});
    ASSERT_EQ(r.status, 0) << r.err;
    ns_->exec_ok("ip link set dev " + dev_ + " promisc off");
    EXPECT_NE(h.wait_for_output("Lease " + id + " on " + dev_ +
                                ": active -> overridden (someone else cleared the flag; under "
                                "policy yield promiscd leaves it cleared)."),
              std::string::npos)
        << h.log();
    ns_->exec_ok("ip link set dev " + dev_ + " promisc on");
    EXPECT_NE(h.wait_for_output("Lease " + id + " on " + dev_ + ": overridden -> active"),
              std::string::npos)
        << h.log();
    auto rv = ctl({"revoke", id, "--reason", "maintenance"});
    EXPECT_EQ(rv.status, 0) << rv.err;
    EXPECT_EQ(h.wait(5s), 1) << h.log();
    // Who revoked it and why, as Ended's details say (the new contract).
    EXPECT_TRUE(std::regex_search(
        h.log(), std::regex("promiscctl: lease " + id + " on " + dev_ +
                            " ended: revoked by [^\n]*uid 0[^\n]*: maintenance\n")))
        << h.log();
}

TEST_F(Ctl, HoldWithTtlZeroNeverExpires) {
    // ttl 0 means no expiry (the new contract), as an absent ttl does.
    auto& h = ctl_bg({"hold", dev_, "--ttl=0"});
    ASSERT_NE(h.wait_for_output("Holding lease "), std::string::npos) << h.log();
    EXPECT_EQ(h.log().find("expires"), std::string::npos) << h.log();
    auto l = leases_json();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_TRUE(l[0]["expires"].is_null()) << l.dump();
    h.signal(SIGTERM);
    EXPECT_EQ(h.wait(5s), 0) << h.log();
}

TEST_F(Ctl, HoldSaysWhenPromiscdStoppedFighting) {
    // Policy enforce: promiscd sets the flag again each time another agent
    // clears it, until it has done so too often; the lease is then
    // overridden, and hold says that promiscd did fight.
    auto& h = ctl_bg({"hold", dev_});
    ASSERT_NE(h.wait_for_output("Holding lease "), std::string::npos) << h.log();
    auto id = std::to_string(leases_json()[0]["id"].get<uint64_t>());
    ns_->exec_ok("for i in $(seq 40); do ip link set dev " + dev_ +
                 " promisc off; sleep 0.05; done");
    EXPECT_NE(h.wait_for_output("Lease " + id + " on " + dev_ +
                                ": active -> overridden (another agent kept clearing the flag; "
                                "promiscd set it again, then stopped fighting)."),
              std::string::npos)
        << h.log();
    EXPECT_EQ(h.log().find("does not fight"), std::string::npos) << h.log();
    h.signal(SIGTERM);
    EXPECT_EQ(h.wait(5s), 0) << h.log();
}

TEST_F(Ctl, HoldWithTtlExpiresAndWaitIsPending) {
    auto& t = ctl_bg({"hold", dev_, "--ttl=1"});
    ASSERT_NE(t.wait_for_output("Holding lease "), std::string::npos) << t.log();
    EXPECT_NE(t.log().find("It expires in 1s."), std::string::npos) << t.log();
    EXPECT_EQ(t.wait(5s), 0) << t.log();
    EXPECT_NE(t.log().find(" expired."), std::string::npos) << t.log();
    EXPECT_TRUE(wait_until([&] { return !promisc(); })) << "the flag goes with the lease";

    const std::string absent = unique_name("pc");
    auto& w = ctl_bg({"hold", absent, "--wait"});
    ASSERT_NE(w.wait_for_output("Holding lease "), std::string::npos) << w.log();
    EXPECT_NE(w.log().find(" on " + absent + " (pending) (the link is absent"), std::string::npos)
        << w.log();
    add_ifb(*ns_, absent);
    EXPECT_NE(w.wait_for_output(": pending -> active"), std::string::npos) << w.log();
    EXPECT_TRUE(wait_until([&] { return promisc(absent); }));
}

TEST_F(Ctl, HoldEndsWhenTheDaemonStops) {
    auto& h = ctl_bg({"hold", dev_});
    ASSERT_NE(h.wait_for_output("Holding lease "), std::string::npos) << h.log();
    daemon_->signal(SIGTERM);
    EXPECT_EQ(h.wait(10s), 1) << h.log();
    EXPECT_NE(h.log().find("ended: daemon-shutdown"), std::string::npos) << h.log();
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));
}

// ------------------------------------------------------------------ run

TEST_F(Ctl, RunHoldsWhileTheCommandRunsAndReturnsItsStatus) {
    const std::string started = tmp_ / "started", go = tmp_ / "go";
    auto& p = ctl_bg({"run", dev_, "--reason", "tcpdump", "--", "sh", "-c",
                      "touch " + started + "; while [ ! -e " + go +
                          " ]; do sleep 0.05; done; echo out-of-cmd; exit 7"},
                     &kAllowedUser);
    ASSERT_TRUE(wait_until([&] { return ::access(started.c_str(), F_OK) == 0; })) << p.log();
    EXPECT_TRUE(promisc()) << "held while the command runs";
    auto l = leases_json();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0]["reason"], "tcpdump");
    EXPECT_EQ(l[0]["uid"], kAllowedUser.uid);
    write_file(go, "");
    EXPECT_EQ(p.wait(5s), 7) << p.log();
    EXPECT_EQ(p.log(), "out-of-cmd\n") << "promiscctl itself prints nothing";
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));
    EXPECT_TRUE(leases_json().empty());
}

TEST_F(Ctl, RunReleasesWhenTheCommandIsKilled) {
    const std::string pidfile = tmp_ / "pid";
    auto& p = ctl_bg({"run", dev_, "--", "sh", "-c", "echo $$ > " + pidfile + "; exec sleep 600"});
    ASSERT_TRUE(wait_until([&] { return read_file(pidfile).find('\n') != std::string::npos; }))
        << p.log();
    ASSERT_TRUE(promisc());
    pid_t cmd = std::stoi(read_file(pidfile));
    ASSERT_EQ(::kill(cmd, SIGKILL), 0);
    EXPECT_EQ(p.wait(5s), 128 + SIGKILL) << p.log();
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));
    EXPECT_TRUE(leases_json().empty());
}

TEST_F(Ctl, RunForwardsSigtermAndReportsMissingCommands) {
    const std::string started = tmp_ / "started";
    auto& p = ctl_bg(
        {"run", dev_, "--", "sh", "-c",
         "trap 'echo got-term; exit 3' TERM; touch " + started + "; while :; do sleep 0.05; done"});
    ASSERT_TRUE(wait_until([&] { return ::access(started.c_str(), F_OK) == 0; })) << p.log();
    ::kill(p.pid(), SIGTERM); // promiscctl only, not its process group
    EXPECT_EQ(p.wait(5s), 3) << p.log();
    EXPECT_NE(p.log().find("got-term"), std::string::npos) << p.log();
    EXPECT_TRUE(leases_json().empty());

    auto missing = ctl({"run", dev_, "--", "/nonexistent/cmd"});
    EXPECT_EQ(missing.status, 127);
    EXPECT_NE(missing.err.find("cannot run '/nonexistent/cmd': No such file or directory"),
              std::string::npos)
        << missing.err;
    EXPECT_TRUE(leases_json().empty());
}

// ------------------------------------------------------------------ release,
// revoke, policy

TEST_F(Ctl, ReleaseAndRevoke) {
    auto& a = holder({dev_});
    auto id = lease_id_of(a);
    auto denied = ctl({"release", id}, &kDeniedUser);
    EXPECT_EQ(denied.status, 3) << denied.err;
    EXPECT_NE(denied.err.find("promiscctl: lease " + id + " belongs to someone else"),
              std::string::npos)
        << denied.err;
    EXPECT_NE(denied.err.find("hint: only the process holding a lease"), std::string::npos);
    auto other = ctl({"revoke", id}, &kAllowedUser);
    EXPECT_EQ(other.status, 3) << other.err;
    EXPECT_NE(other.err.find("hint: polkit wants a password"), std::string::npos) << other.err;
    EXPECT_EQ(leases_json().size(), 1u);

    // root is always authorized: releasing someone else's lease revokes it.
    auto ok = ctl({"release", "/org/promiscd/Promisc1/lease/" + id});
    EXPECT_EQ(ok.status, 0) << ok.err;
    EXPECT_EQ(ok.out + ok.err, "");
    EXPECT_NE(a.wait_for_output("ENDED revoked"), std::string::npos) << a.log();

    auto& b = holder({dev_});
    auto id_b = lease_id_of(b);
    auto rv = ctl({"revoke", id_b, "--reason", "maintenance"});
    EXPECT_EQ(rv.status, 0) << rv.err;
    EXPECT_NE(b.wait_for_output("ENDED revoked"), std::string::npos) << b.log();
    // The owner learns who and why; so does the audit record.
    EXPECT_NE(b.log().find("message=maintenance"), std::string::npos) << b.log();
    EXPECT_NE(b.log().find("revoked_by_uid=0"), std::string::npos) << b.log();
    EXPECT_NE(daemon_->log().find("ended: revoked by :"), std::string::npos) << daemon_->log();
    EXPECT_NE(daemon_->log().find("PROMISCD_REVOCATION=maintenance"), std::string::npos)
        << daemon_->log();
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));

    auto gone = ctl({"release", "999"});
    EXPECT_EQ(gone.status, 1);
    EXPECT_EQ(gone.err, "promiscctl: there is no lease 999\n");
    auto gone2 = ctl({"revoke", "999"});
    EXPECT_EQ(gone2.status, 1);
    EXPECT_NE(gone2.err.find("there is no lease 999"), std::string::npos) << gone2.err;
    auto bad = ctl({"release", "eth0"});
    EXPECT_EQ(bad.status, 2);
    EXPECT_NE(bad.err.find("'eth0' is not a lease id"), std::string::npos) << bad.err;
}

TEST_F(Ctl, Policy) {
    auto r = ctl({"policy", dev_, "yield"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(link_json(dev_)["policy"], "yield");
    auto t = parse_table(ctl({"status"}).out);
    for (const auto& row : t.rows)
        if (row.at("LINK") == dev_) {
            EXPECT_EQ(row.at("POLICY"), "yield");
        }
    auto user = ctl({"policy", dev_, "enforce"}, &kAllowedUser);
    EXPECT_EQ(user.status, 3);
    EXPECT_NE(user.err.find("authentication is required"), std::string::npos) << user.err;
    auto denied = ctl({"policy", dev_, "enforce"}, &kDeniedUser);
    EXPECT_EQ(denied.status, 3);
    EXPECT_NE(denied.err.find("hint: polkit did not authorize this"), std::string::npos)
        << denied.err;
    EXPECT_NE(denied.err.find("'promisc'"), std::string::npos) << denied.err;
    EXPECT_EQ(link_json(dev_)["policy"], "yield");
    auto bad_link = ctl({"policy", "nosuchlink0", "yield"});
    EXPECT_EQ(bad_link.status, 1);
    EXPECT_EQ(bad_link.err, "promiscctl: interface 'nosuchlink0' does not exist\n");
    auto bad_policy = ctl({"policy", dev_, "maybe"});
    EXPECT_EQ(bad_policy.status, 2);
    EXPECT_NE(bad_policy.err.find("maybe"), std::string::npos) << bad_policy.err;
}

// ------------------------------------------------------------------ exit codes

TEST_F(Ctl, ExitCodesForEachFailureClass) {
    struct Case {
        std::vector<std::string> args;
        const TestUser* user;
        int status;
        std::string message;
    };
    const std::vector<Case> cases = {
        {{"hold", "nosuchlink0"}, nullptr, 1, "promiscctl: interface 'nosuchlink0' does not exist"},
        {{"run", "nosuchlink0", "--", "true"},
         nullptr,
         1,
         "interface 'nosuchlink0' does not exist"},
        {{"hold", "eth/0"}, nullptr, 1, "contains '/'"},
        {{"hold", dev_}, &kDeniedUser, 3, "uid 64002 is not authorized"},
        {{"run", dev_, "--", "true"}, &kDeniedUser, 3, "hint: polkit did not authorize this"},
        {{"frobnicate"}, nullptr, 2, "unknown command 'frobnicate' (commands: status, leases,"},
        {{"status", "--frobnicate"}, nullptr, 2, "--frobnicate"},
        {{"hold"}, nullptr, 2, "LINK is required"},
        {{"hold", dev_, "--ttl=soon"},
         nullptr,
         2,
         "SEC must be a number of seconds, 0 (no expiry)"},
        {{"run", dev_}, nullptr, 2, "CMD is required"},
        {{"--json=yaml", "status"}, nullptr, 2, "yaml"},
        {{"capture", dev_, "--format=socket"}, nullptr, 2, "socket"},
        {{"capture", dev_, "-c", "0"}, nullptr, 2, "COUNT must be a number of frames, 1 or more"},
    };
    for (const auto& c : cases) {
        auto r = ctl(c.args, c.user);
        EXPECT_EQ(r.status, c.status) << c.args[0] << " " << r.err;
        EXPECT_NE(r.err.find(c.message), std::string::npos)
            << "expected '" << c.message << "' in: " << r.err;
        if (c.status == 2) {
            EXPECT_NE(r.err.find("Try 'promiscctl --help'"), std::string::npos) << r.err;
        }
    }
    EXPECT_TRUE(leases_json().empty());
    EXPECT_FALSE(promisc());

    // Daemon down: every command says so with 4, and a hint.
    expect_clean_stop(*daemon_);
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"status"}, {"leases"}, {"hold", dev_}, {"release", "1"}, {"monitor"}}) {
        auto r = ctl(args);
        EXPECT_EQ(r.status, 4) << args[0] << ": " << r.err;
        EXPECT_NE(r.err.find("promiscd is not running"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("hint: is promiscd running"), std::string::npos) << r.err;
        // auto looked for the varlink socket the test pinned, and only there.
        EXPECT_NE(r.err.find("Nothing listens on promiscd's varlink socket " + no_varlink()),
                  std::string::npos)
            << r.err;
    }
    // No bus at all.
    auto nobus =
        ctl({"status"}, nullptr, {{"DBUS_SYSTEM_BUS_ADDRESS", "unix:path=" + (tmp_ / "none")}});
    EXPECT_EQ(nobus.status, 4);
    EXPECT_NE(nobus.err.find("cannot connect to the system bus"), std::string::npos) << nobus.err;
}

// The suite is hermetic: with its own daemon stopped, promiscctl reaches
// for nothing but what the test pinned. Another promiscd's socket at the
// default path (served here in a mount namespace of its own, as a daemon on
// the host would) hears nothing from it; it does when the pin is left out.
TEST_F(Ctl, NeverFallsBackToTheDefaultVarlinkSocket) {
    expect_clean_stop(*daemon_);
    const std::string log = tmp_ / "default-socket.log";
    write_file(tmp_ / "listener.py", "import socket\n"
                                     "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                                     "s.bind('/run/promiscd/io.promiscd')\n"
                                     "s.listen(16)\n"
                                     "while True:\n"
                                     "    c, _ = s.accept()\n"
                                     "    open('" +
                                         log +
                                         "', 'a').write('connection\\n')\n"
                                         "    c.close()\n");
    // /run of its own: the host's stays as it is.
    write_file(tmp_ / "beside-default.sh",
               "set -e\n"
               "mount -t tmpfs tmpfs /run\n"
               "mkdir /run/promiscd\n"
               "/usr/bin/python3 " +
                   (tmp_ / "listener.py") +
                   " &\n"
                   "listener=$!\n"
                   "while [ ! -S /run/promiscd/io.promiscd ]; do sleep 0.02; done\n"
                   "set +e\n"
                   "\"$@\"\n"
                   "status=$?\n"
                   "kill $listener\n"
                   "exit $status\n");
    auto beside_default = [&](std::vector<std::string> argv) {
        std::vector<std::string> a = {"unshare", "-m",      "--propagation",
                                      "private", "/bin/sh", tmp_ / "beside-default.sh"};
        a.insert(a.end(), argv.begin(), argv.end());
        return a;
    };
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"status"}, {"leases"}, {"hold", dev_}, {"release", "1"}, {"monitor"}}) {
        std::vector<std::string> a = {kCtl};
        a.insert(a.end(), args.begin(), args.end());
        auto r = run(beside_default(a), env());
        EXPECT_EQ(r.status, 4) << args[0] << ": " << r.err;
        EXPECT_NE(r.err.find(no_varlink()), std::string::npos) << r.err;
        EXPECT_EQ(r.err.find("/run/promiscd/io.promiscd"), std::string::npos) << r.err;
    }
    EXPECT_EQ(read_file(log), "") << "promiscctl connected to the default varlink socket";

    // The same without the pin: auto finds no promiscd on the bus and goes
    // to the default socket (so this test would see a leak).
    std::vector<std::string> unpinned = {"env", "-u", "PROMISCD_VARLINK_SOCKET", kCtl, "status"};
    auto r = run(beside_default(unpinned), stack_->env());
    EXPECT_EQ(r.status, 4) << r.err;
    EXPECT_EQ(read_file(log), "connection\n");
}

TEST_F(Ctl, VersionAndHelp) {
    auto v = ctl({"--version"});
    EXPECT_EQ(v.status, 0);
    EXPECT_TRUE(std::regex_match(v.out, std::regex(R"(promiscctl \d+\.\d+\.\d+\n)"))) << v.out;
    auto h = ctl({"-h"});
    EXPECT_EQ(h.status, 0);
    for (const char* s :
         {"status", "leases", "hold", "run", "release", "revoke", "policy", "capture", "monitor",
          "--json", "--no-legend", "--no-pager", "--quiet", "--no-ask-password", "--version",
          "Exit status:", "3  not authorized", "4  promiscd not reachable"})
        EXPECT_NE(h.out.find(s), std::string::npos) << s;
    auto sub = ctl({"capture", "--help"});
    EXPECT_EQ(sub.status, 0);
    for (const char* s : {"-i,--interface", "-f,--filter", "-w,--write", "-c,--count",
                          "-s,--snaplen", "-B,--buffer-size", "-F,--format", "-p,--no-promisc"})
        EXPECT_NE(sub.out.find(s), std::string::npos) << s;
}

// ------------------------------------------------------------------ terminal

TEST_F(Ctl, ColourOnlyOnATerminalAndNeverWithNoColor) {
    auto& h = holder({dev_});
    lease_id_of(h);
    const std::string cmd = shell_quote(kCtl) + " --no-pager ";
    auto tty = pty(cmd + "status");
    ASSERT_EQ(tty.status, 0) << tty.out;
    EXPECT_NE(tty.out.find("\x1b[32myes\x1b[0m"), std::string::npos) << tty.out;
    auto tty_leases = pty(cmd + "leases");
    EXPECT_NE(tty_leases.out.find("\x1b[32mactive\x1b[0m"), std::string::npos) << tty_leases.out;
    auto no_colour = pty(cmd + "status", nullptr, {{"NO_COLOR", "1"}});
    ASSERT_EQ(no_colour.status, 0) << no_colour.out;
    EXPECT_EQ(no_colour.out.find('\x1b'), std::string::npos) << no_colour.out;
    EXPECT_NE(no_colour.out.find(dev_), std::string::npos);
    auto piped = ctl({"leases"});
    EXPECT_EQ(piped.out.find('\x1b'), std::string::npos);
}

TEST_F(Ctl, PagerOnlyOnATerminal) {
    const std::map<std::string, std::string> pager = {{"PAGER", "sed s/^/PAGED:/"}};
    auto paged = pty(shell_quote(kCtl) + " status", nullptr, pager);
    ASSERT_EQ(paged.status, 0) << paged.out;
    EXPECT_NE(paged.out.find("PAGED:"), std::string::npos) << paged.out;
    EXPECT_NE(paged.out.find("links listed."), std::string::npos) << paged.out;
    auto no_pager = pty(shell_quote(kCtl) + " --no-pager status", nullptr, pager);
    EXPECT_EQ(no_pager.out.find("PAGED:"), std::string::npos) << no_pager.out;
    auto piped = ctl({"status"}, nullptr, pager);
    EXPECT_EQ(piped.out.find("PAGED:"), std::string::npos) << piped.out;
}

// pddeny must prove who they are (polkit's AUTH_SELF) for everything
// promiscd offers; pdallow may acquire and capture, and must be an
// administrator to manage (the .policy default, auth_admin).
const std::string kAuthSelfRules = R"js(
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.promiscd.") != 0)
        return polkit.Result.NOT_HANDLED;
    if (subject.user == "pddeny")
        return polkit.Result.AUTH_SELF;
    if (subject.isInGroup("promisc") &&
        (action.id == "org.promiscd.promisc.acquire" || action.id == "org.promiscd.capture"))
        return polkit.Result.YES;
    return polkit.Result.NOT_HANDLED;
});
)js";
// pddeny's password in the test's shadow file, and its SHA-512 crypt.
const std::string kDeniedUserPassword = "pd-secret-64002";
const std::string kDeniedUserHash =
    "$6$promiscdtest$SFGOR3Al5LKNPlmb5Tdt2UgZPFe4GkadgP.R6vmlHC33tIeb"
    "tipeACjK9SajVwjUR0D8sP3to.QVSxBXjppk9.";

// Whether a pkttyagent started for pid is still running.
bool agent_running_for(pid_t pid) {
    const std::string needle = std::string("--process") + '\0' + std::to_string(pid) + '\0';
    for (const auto& e : std::filesystem::directory_iterator("/proc")) {
        const std::string cmdline = read_file(e.path() / "cmdline");
        if (cmdline.rfind("/usr/bin/pkttyagent", 0) == 0 &&
            cmdline.find(needle) != std::string::npos &&
            read_file(e.path() / "status").find("State:\tZ") == std::string::npos)
            return true;
    }
    return false;
}

class CtlAgent : public Ctl {
protected:
    void SetUp() override {
        Ctl::SetUp();
        if (IsSkipped() || HasFatalFailure())
            return;
        stack_->start_polkit(kAuthSelfRules);
        // pddeny with a password, as PAM (pam_unix, through polkit's setuid
        // helper) reads it: the host's shadow file with one more line, seen
        // only inside the terminal's mount namespace.
        std::string shadow;
        std::istringstream host(read_file("/etc/shadow"));
        for (std::string line; std::getline(host, line);)
            if (line.rfind(std::string(kDeniedUser.name) + ":", 0) != 0)
                shadow += line + "\n";
        shadow += std::string(kDeniedUser.name) + ":" + kDeniedUserHash + ":19000:0:99999:7:::\n";
        write_file(tmp_ / "shadow", shadow, 0600);
        // The helper clears its environment and reports to polkitd on the
        // system bus's default path: there, the test's bus. /run/dbus is
        // created on the host if it is missing (an empty directory, as the
        // dbus package has it).
        const std::string bus_socket = stack_->address().substr(std::string("unix:path=").size());
        write_file(tmp_ / "terminal-user.sh",
                   "set -e\n"
                   "mount --bind '" +
                       stack_->dir() +
                       "/passwd' /etc/passwd\n"
                       "mount --bind '" +
                       stack_->dir() +
                       "/group' /etc/group\n"
                       "mount --bind '" +
                       (tmp_ / "shadow") +
                       "' /etc/shadow\n"
                       "mkdir -p /run/dbus\n"
                       "mount -t tmpfs -o mode=0755 tmpfs /run/dbus\n"
                       "touch /run/dbus/system_bus_socket\n"
                       "mount --bind '" +
                       bus_socket +
                       "' /run/dbus/system_bus_socket\n"
                       "uid=$1; shift\n"
                       "if [ \"$uid\" = " +
                       std::to_string(kAllowedUser.uid) +
                       " ]; then\n"
                       "  exec setpriv --reuid=$uid --regid=$uid --groups=" +
                       std::to_string(kPromiscGid) +
                       " -- \"$@\"\n"
                       "fi\n"
                       "exec setpriv --reuid=$uid --regid=$uid --clear-groups -- "
                       "\"$@\"\n");
    }
    // promiscctl ARGS as user on a terminal of its own, as a person runs it.
    std::unique_ptr<PtyProcess> on_terminal(const TestUser& user, std::vector<std::string> args) {
        std::vector<std::string> a = {"unshare",
                                      "-m",
                                      "--propagation",
                                      "private",
                                      "/bin/sh",
                                      tmp_ / "terminal-user.sh",
                                      std::to_string(user.uid),
                                      kCtl};
        a.insert(a.end(), args.begin(), args.end());
        return std::make_unique<PtyProcess>(a, env({{"TERM", "xterm"}}));
    }
};

TEST_F(CtlAgent, PasswordPromptOnATerminal) {
    // policy needs org.promiscd.manage: pkttyagent asks pddeny for its
    // password on the terminal, and the change is made.
    auto p = on_terminal(kDeniedUser, {"policy", dev_, "yield"});
    ASSERT_TRUE(p->wait_for("Password: ")) << p->output();
    EXPECT_NE(p->output().find("==== AUTHENTICATING FOR org.promiscd.manage ===="),
              std::string::npos)
        << p->output();
    EXPECT_NE(p->output().find("Authenticating as: promiscd test user (pddeny)"), std::string::npos)
        << p->output();
    EXPECT_TRUE(agent_running_for(p->pid()));
    p->type_secret(kDeniedUserPassword);
    EXPECT_EQ(p->wait(), 0) << p->output();
    EXPECT_NE(p->output().find("==== AUTHENTICATION COMPLETE ===="), std::string::npos)
        << p->output();
    EXPECT_EQ(p->output().find(kDeniedUserPassword), std::string::npos) << "no echo";
    EXPECT_EQ(link_json(dev_)["policy"], "yield");
    EXPECT_FALSE(agent_running_for(p->pid())) << "the agent ends with the request";

    // run: the password, then the lease while the command runs; the agent
    // is gone before the command starts (it has the terminal to itself).
    auto r = on_terminal(kDeniedUser, {"run", dev_, "--", "sh", "-c", "echo HELD; read answer"});
    ASSERT_TRUE(r->wait_for("Password: ")) << r->output();
    EXPECT_NE(r->output().find("AUTHENTICATING FOR org.promiscd.promisc.acquire"),
              std::string::npos)
        << r->output();
    r->type_secret(kDeniedUserPassword);
    ASSERT_TRUE(r->wait_for("HELD")) << r->output();
    EXPECT_TRUE(promisc());
    auto l = leases_json();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0]["uid"], kDeniedUser.uid);
    EXPECT_FALSE(agent_running_for(r->pid()));
    r->type("\n");
    EXPECT_EQ(r->wait(), 0) << r->output();
    EXPECT_TRUE(wait_until([&] { return !promisc(); }));

    // A wrong password: polkit says no, nothing is held.
    auto w = on_terminal(kDeniedUser, {"hold", dev_});
    ASSERT_TRUE(w->wait_for("Password: ")) << w->output();
    w->type_secret("not-the-password");
    EXPECT_EQ(w->wait(30s), 3) << w->output();
    EXPECT_NE(w->output().find("==== AUTHENTICATION FAILED ===="), std::string::npos)
        << w->output();
    EXPECT_NE(w->output().find("promiscctl: uid 64002 is not authorized to"), std::string::npos)
        << w->output();
    EXPECT_TRUE(leases_json().empty());
    EXPECT_FALSE(promisc());
}

// Over varlink the daemon asks polkit about the calling process, which is
// the process promiscctl's agent registered for: the same prompt, once
// promiscctl says allowInteractiveAuthentication.
class CtlAgentVarlink : public CtlAgent {
protected:
    void SetUp() override {
        serve_varlink_ = true;
        CtlAgent::SetUp();
    }
    std::unique_ptr<PtyProcess> over_varlink(const TestUser& user, std::vector<std::string> args) {
        args.insert(args.begin(), {"--transport=varlink", "--varlink-socket=" + varlink_socket()});
        return on_terminal(user, args);
    }
};

TEST_F(CtlAgentVarlink, PasswordPromptOnATerminal) {
    auto p = over_varlink(kDeniedUser, {"policy", dev_, "yield"});
    ASSERT_TRUE(p->wait_for("Password: ")) << p->output();
    EXPECT_NE(p->output().find("==== AUTHENTICATING FOR org.promiscd.manage ===="),
              std::string::npos)
        << p->output();
    p->type_secret(kDeniedUserPassword);
    EXPECT_EQ(p->wait(), 0) << p->output();
    EXPECT_EQ(link_json(dev_)["policy"], "yield");

    // Without the agent, the daemon's answer says a password is needed.
    auto n = over_varlink(kDeniedUser, {"--no-ask-password", "policy", dev_, "enforce"});
    EXPECT_EQ(n->wait(), 3) << n->output();
    EXPECT_EQ(n->output().find("Password:"), std::string::npos) << n->output();
    EXPECT_NE(n->output().find("authentication is required"), std::string::npos) << n->output();
    EXPECT_EQ(link_json(dev_)["policy"], "yield");
}

TEST_F(CtlAgent, NoPromptWithNoAskPasswordOrWithoutATerminal) {
    auto p = on_terminal(kDeniedUser, {"--no-ask-password", "hold", dev_});
    EXPECT_EQ(p->wait(), 3) << p->output();
    EXPECT_EQ(p->output().find("Password:"), std::string::npos) << p->output();
    EXPECT_NE(p->output().find("authentication is required"), std::string::npos) << p->output();
    EXPECT_NE(p->output().find("hint: polkit wants a password"), std::string::npos) << p->output();
    EXPECT_NE(p->output().find("through pkttyagent, unless --no-ask-password"), std::string::npos)
        << p->output();
    // No terminal: nobody could answer, so nothing is asked.
    auto no_tty = ctl({"policy", dev_, "yield"}, &kAllowedUser);
    EXPECT_EQ(no_tty.status, 3);
    EXPECT_NE(no_tty.err.find("authentication is required"), std::string::npos) << no_tty.err;
    // pdallow may not manage: the agent asks for an administrator's
    // password, and a wrong one is refused.
    auto admin = on_terminal(kAllowedUser, {"policy", dev_, "yield"});
    ASSERT_TRUE(admin->wait_for("Password: ")) << admin->output();
    EXPECT_NE(admin->output().find("Authenticating as: root"), std::string::npos)
        << admin->output();
    admin->type_secret("not-the-root-password");
    EXPECT_EQ(admin->wait(30s), 3) << admin->output();
    EXPECT_NE(admin->output().find("hint: polkit did not authorize this"), std::string::npos)
        << admin->output();
    EXPECT_EQ(link_json(dev_)["policy"], "enforce");
    // root is never asked.
    PtyProcess root({kCtl, "policy", dev_, "yield"}, env({{"TERM", "xterm"}}));
    EXPECT_EQ(root.wait(), 0) << root.output();
    EXPECT_EQ(root.output(), "");
}

// ------------------------------------------------------------------ monitor

TEST_F(Ctl, MonitorPrintsAnotherProcesssHoldAndRelease) {
    // Reading events needs no authorization: the denied user may watch.
    auto& m = ctl_bg({"monitor"}, &kDeniedUser);
    ASSERT_NE(m.wait_for_output("Monitoring promiscd"), std::string::npos) << m.log();
    auto& mj = ctl_bg({"monitor", "--json"});
    ASSERT_NE(mj.wait_for_output("Monitoring promiscd"), std::string::npos) << mj.log();

    auto& h = ctl_bg({"hold", dev_, "--reason", "mon"}, &kAllowedUser);
    ASSERT_NE(h.wait_for_output("Holding lease "), std::string::npos) << h.log();
    auto id = std::to_string(leases_json()[0]["id"].get<uint64_t>());
    h.signal(SIGTERM);
    ASSERT_EQ(h.wait(5s), 0) << h.log();
    ns_->exec_ok("ip link set dev " + veth_.peer_name + " promisc on");

    const std::string ts = R"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} )";
    const std::vector<std::string> expected = {
        ts + "lease " + id + " on " + dev_ +
            R"( granted to 64001, pid \d+ \(promiscctl\), active, reason 'mon')",
        // The flag from FlagChanged (the new contract), the counters from
        // the Link's properties, however the daemon groups them.
        ts + "link " + dev_ + ": promiscuous flag on, set by promiscd\n",
        ts + "link " + dev_ + ": (.*, )?leases 0 -> 1(,.*)?\n",
        ts + "link " + dev_ + R"(: (.*, )?kernel promiscuity 0 -> 1 \(now promiscuous\))",
        ts + "lease " + id + " on " + dev_ + " ended: released",
        ts + "link " + dev_ + ": promiscuous flag off, cleared by promiscd \\(no lease left\\)\n",
        ts + "link " + dev_ + ": (.*, )?leases 1 -> 0(,.*)?\n",
        ts + "link " + veth_.peer_name + ": promiscuous flag on, set outside promiscd",
    };
    for (const auto& re : expected)
        EXPECT_TRUE(wait_until([&] { return std::regex_search(m.log(), std::regex(re)); }))
            << re << "\n"
            << m.log();

    ASSERT_TRUE(wait_until([&] {
        return mj.log().find(veth_.peer_name + "\"") != std::string::npos;
    })) << mj.log();
    std::vector<json> events;
    std::istringstream lines(mj.log());
    for (std::string line; std::getline(lines, line);)
        if (!line.empty() && line[0] == '{')
            events.push_back(py_json(line));
    std::vector<std::string> kinds;
    for (const auto& e : events) {
        kinds.push_back(e["event"]);
        EXPECT_GT(e["timestamp"].get<uint64_t>(), 1'600'000'000'000'000ull);
        if (e["event"] == "lease-granted") {
            EXPECT_EQ(e["lease"]["id"], std::stoull(id));
            EXPECT_EQ(e["lease"]["uid"], kAllowedUser.uid);
            EXPECT_EQ(e["lease"]["command"], "promiscctl");
        }
        if (e["event"] == "lease-ended") {
            EXPECT_EQ(e["reason"], "released");
        }
        if (e["event"] == "link-changed" &&
            e["changed"].dump().find("AdminFlag") != std::string::npos) {
            EXPECT_EQ(e["cause"], e["link"]["name"] == dev_ ? "promiscd" : "other") << e.dump();
        }
    }
    for (const char* k : {"lease-granted", "link-changed", "lease-ended", "flag-changed"})
        EXPECT_NE(std::find(kinds.begin(), kinds.end(), k), kinds.end()) << k << " in " << mj.log();
}

TEST_F(Ctl, MonitorShowsEnforceAndRevocationsOverDBus) {
    // FlagChanged (the new contract): an external clear that enforce undoes
    // at once is visible on D-Bus too; Ended's details name the revoker.
    auto& m = ctl_bg({"monitor"});
    ASSERT_NE(m.wait_for_output("Monitoring promiscd"), std::string::npos) << m.log();
    auto& mj = ctl_bg({"--json", "monitor"});
    ASSERT_NE(mj.wait_for_output("Monitoring promiscd"), std::string::npos) << mj.log();
    auto& h = holder({dev_});
    auto id = lease_id_of(h);
    ASSERT_TRUE(wait_until([&] { return promisc(); }));
    ns_->exec_ok("ip link set dev " + dev_ + " promisc off");
    auto at =
        m.wait_for_output("link " + dev_ + ": promiscuous flag off, cleared outside promiscd\n");
    ASSERT_NE(at, std::string::npos) << m.log();
    EXPECT_NE(m.wait_for_output("link " + dev_ +
                                    ": promiscuous flag on again, set back by promiscd (policy "
                                    "enforce: its leases still hold)\n",
                                5s, at),
              std::string::npos)
        << m.log();
    EXPECT_TRUE(wait_until([&] { return promisc(); }));

    auto rv = ctl({"revoke", id, "--reason", "maintenance"});
    ASSERT_EQ(rv.status, 0) << rv.err;
    EXPECT_TRUE(wait_until([&] {
        return std::regex_search(m.log(), std::regex("lease " + id + " on " + dev_ +
                                                     " ended: revoked by [^\n]*: maintenance\n"));
    })) << m.log();
    ASSERT_TRUE(wait_until([&] {
        return mj.log().find("\"message\":\"maintenance\"") != std::string::npos;
    })) << mj.log();
    std::istringstream lines(mj.log());
    bool restored = false, revoked = false;
    for (std::string line; std::getline(lines, line);) {
        if (line.empty() || line[0] != '{')
            continue;
        auto e = py_json(line);
        if (e["event"] == "flag-changed" && e["restored"] == true) {
            restored = true;
            EXPECT_EQ(e["interface"], dev_);
            EXPECT_EQ(e["by"], "promiscd");
        }
        if (e["event"] == "lease-ended" && e["reason"] == "revoked") {
            revoked = true;
            EXPECT_EQ(e["revoked_by_uid"], 0);
            EXPECT_NE(e["revoked_by"].get<std::string>(), "");
            EXPECT_EQ(e["message"], "maintenance");
        }
    }
    EXPECT_TRUE(restored) << mj.log();
    EXPECT_TRUE(revoked) << mj.log();
}

TEST_F(Ctl, MonitorShowsConflictsAndTheDaemonComingAndGoing) {
    auto& m = ctl_bg({"monitor"});
    ASSERT_NE(m.wait_for_output("Monitoring promiscd"), std::string::npos) << m.log();
    auto& h = holder({dev_});
    lease_id_of(h);
    ns_->exec_ok("for i in $(seq 40); do ip link set dev " + dev_ +
                 " promisc off; sleep 0.05; done");
    EXPECT_NE(m.wait_for_output("conflict on " + dev_ +
                                ": another agent cleared the promiscuous flag 6 times"),
              std::string::npos)
        << m.log();
    EXPECT_NE(m.wait_for_output(": active -> overridden"), std::string::npos) << m.log();

    daemon_->signal(SIGTERM);
    ASSERT_EQ(daemon_->wait(10s), 0);
    EXPECT_NE(m.wait_for_output("ended: daemon-shutdown"), std::string::npos) << m.log();
    EXPECT_NE(m.wait_for_output("promiscd stopped"), std::string::npos) << m.log();
    start_daemon();
    EXPECT_NE(m.wait_for_output("promiscd started"), std::string::npos) << m.log();
    m.signal(SIGINT);
    EXPECT_EQ(m.wait(5s), 0) << m.log();
}

// promiscd crashes while promiscctl holds a lease over D-Bus: promiscctl
// says so and stays; the restarted daemon adopts the lease from its state
// and promiscctl follows it, then releases it as usual.
TEST_F(Ctl, HoldFollowsItsLeaseAcrossACrashOfPromiscd) {
    auto& h = ctl_bg({"hold", dev_});
    ASSERT_NE(h.wait_for_output("Press Ctrl-C"), std::string::npos) << h.log();
    auto before = leases_json();
    ASSERT_EQ(before.size(), 1u);
    const std::string id = std::to_string(before[0]["id"].get<std::uint64_t>());
    daemon_->signal(SIGKILL);
    daemon_->wait(10s);
    daemon_.reset();
    EXPECT_NE(h.wait_for_output("promiscd left the bus"), std::string::npos) << h.log();
    start_daemon();
    EXPECT_NE(h.wait_for_output("promiscd is back; lease " + id + " on " + dev_ + " is active."),
              std::string::npos)
        << h.log();
    EXPECT_TRUE(h.running());
    auto after = leases_json();
    ASSERT_EQ(after.size(), 1u) << after;
    EXPECT_EQ(std::to_string(after[0]["id"].get<std::uint64_t>()), id);
    EXPECT_TRUE(promisc());
    h.signal(SIGTERM);
    EXPECT_EQ(h.wait(10s), 0) << h.log();
    EXPECT_NE(h.log().find("Released lease " + id + " on " + dev_ + "."), std::string::npos)
        << h.log();
    EXPECT_TRUE(leases_json().empty());
    EXPECT_FALSE(promisc());
}

// The same crash, but the daemon comes back without its state (a wiped
// /run): the lease is gone, and promiscctl says so and fails.
TEST_F(Ctl, HoldFailsWhenPromiscdComesBackWithoutItsLease) {
    auto& h = ctl_bg({"hold", dev_});
    ASSERT_NE(h.wait_for_output("Press Ctrl-C"), std::string::npos) << h.log();
    const std::string id = std::to_string(leases_json()[0]["id"].get<std::uint64_t>());
    daemon_->signal(SIGKILL);
    daemon_->wait(10s);
    daemon_.reset();
    ASSERT_NE(h.wait_for_output("promiscd left the bus"), std::string::npos) << h.log();
    for (const auto& entry : std::filesystem::directory_iterator(state_.path()))
        if (entry.path().filename() != "promiscd.log")
            std::filesystem::remove_all(entry.path());
    start_daemon();
    EXPECT_EQ(h.wait(10s), 1) << h.log();
    EXPECT_NE(
        h.log().find("lease " + id + " on " + dev_ + " did not survive the restart of promiscd"),
        std::string::npos)
        << h.log();
}

// ------------------------------------------------------------------ docs and
// completion

TEST(CtlDocs, ManPageRendersWithoutWarningsAndCoversEveryCommand) {
    const std::string page = kSource + "/client/promiscctl.1";
    auto groff = run({"groff", "-man", "-Tutf8", "-ww", "-z", page});
    EXPECT_EQ(groff.status, 0) << groff.err;
    EXPECT_EQ(groff.err, "") << "groff warnings";
    auto mandoc = run({"mandoc", "-Tlint", page});
    EXPECT_EQ(mandoc.status, 0) << mandoc.out << mandoc.err;
    EXPECT_EQ(mandoc.out + mandoc.err, "") << "mandoc's lint";
    auto man = run({"man", "-l", page}, {{"MANWIDTH", "100"}, {"MANPAGER", "cat"}});
    ASSERT_EQ(man.status, 0) << man.err;
    EXPECT_EQ(man.err, "");
    for (const char* s : {"NAME",
                          "SYNOPSIS",
                          "COMMANDS",
                          "OPTIONS",
                          "EXIT STATUS",
                          "ENVIRONMENT",
                          "EXAMPLES",
                          "SEE ALSO",
                          "status",
                          "leases",
                          "hold",
                          "run",
                          "release",
                          "revoke",
                          "policy",
                          "capture",
                          "monitor",
                          "--json",
                          "--no-legend",
                          "--no-pager",
                          "--quiet",
                          "--no-ask-password",
                          "--version",
                          "NO_COLOR",
                          "PAGER",
                          "--filter",
                          "--write",
                          "--count",
                          "--snaplen",
                          "--format",
                          "--no-promisc",
                          "--netns",
                          "--interface",
                          "--buffer-size",
                          "pcap-filter",
                          "Packets: 1234  Dropped: 0",
                          "pkttyagent",
                          "--transport",
                          "--varlink-socket",
                          "PROMISCD_VARLINK_SOCKET",
                          "DBUS_SYSTEM_BUS_ADDRESS",
                          "flag-changed",
                          "--ttl",
                          "--reason",
                          "--wait",
                          "wireshark -k -i -"})
        EXPECT_NE(man.out.find(s), std::string::npos) << s;
}

// The completion function called as bash calls it: COMP_WORDS split as
// readline splits a line (COMP_WORDBREAKS has '='), the command name as $1.
TEST_F(Ctl, BashCompletionAsksTheDaemon) {
    auto& h = holder({dev_});
    auto id = lease_id_of(h);
    const std::string dir = kCtl.substr(0, kCtl.rfind('/'));
    auto complete = [&](const std::string& words) {
        auto r = run({"bash", "-c",
                      "source " + shell_quote(kSource + "/client/promiscctl.bash-completion") +
                          "\nCOMP_WORDS=(" + words +
                          ")\nCOMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
                          "COMP_LINE=\"${COMP_WORDS[*]}\"\nCOMP_POINT=${#COMP_LINE}\n"
                          "_promiscctl promiscctl\n"
                          "if ((${#COMPREPLY[@]})); then printf '%s\\n' "
                          "\"${COMPREPLY[@]}\"; fi"},
                     env({{"PATH", dir + ":/usr/bin:/bin"}}));
        EXPECT_EQ(r.status, 0) << r.err;
        EXPECT_EQ(r.err, "") << words;
        return r.out;
    };
    const std::string links = complete("promiscctl status ''");
    EXPECT_NE(links.find(dev_ + "\n"), std::string::npos) << links;
    EXPECT_NE(links.find("lo\n"), std::string::npos) << links;
    struct Case {
        std::string words;
        std::string expected; // the whole answer, one candidate a line
    };
    const std::vector<Case> cases = {
        {"promiscctl h", "hold\n"},
        {"promiscctl ''", "status\nleases\nhold\nrun\nrelease\nrevoke\npolicy\nca"
                          "pture\nmonitor\n"},
        {"promiscctl release ''", id + "\n"},
        {"promiscctl policy " + dev_ + " ''", "enforce\nyield\n"},
        {"promiscctl --js", "--json\n--json=short\n--json=pretty\n"},
        {"promiscctl --json = ''", "short\npretty\n"},
        {"promiscctl --json st", "status\n"}, // --json takes no separate value
        {"promiscctl --tr", "--transport\n"},
        {"promiscctl --transport ''", "dbus\nvarlink\nauto\n"},
        {"promiscctl --transport = v", "varlink\n"},
        {"promiscctl --no", "--no-legend\n--no-pager\n--no-ask-password\n"},
        {"promiscctl --varlink-socket /no/such/dir/", ""},
        // After the global options and their values, the commands.
        {"promiscctl --transport dbus h", "hold\n"},
        {"promiscctl --transport = dbus --varlink-socket = /x --no-pager rel", "release\n"},
        {"promiscctl -q --transport auto --json capture -F ''", "pcapng\npcap\n"},
        {"promiscctl --transport dbus release ''", id + "\n"},
        {"promiscctl capture " + dev_ + " --fo", "--format\n"},
        {"promiscctl capture " + dev_ + " --b", "--buffer-size\n"},
        {"promiscctl capture -i " + dev_ + " po", "port\nportrange\n"},
        {"promiscctl capture " + dev_ + " -c 5 udp po", "port\nportrange\n"},
        {"promiscctl capture -w - -F = pcapn", "pcapng\n"},
        {"promiscctl hold " + dev_ + " --t", "--transport\n--ttl\n"},
        {"promiscctl run " + dev_ + " --w", "--wait\n"},
    };
    for (const auto& c : cases)
        EXPECT_EQ(complete(c.words), c.expected) << c.words;
    // The link lists come from the daemon the command line names: with
    // --transport=varlink and a socket where nothing listens, none.
    EXPECT_EQ(complete("promiscctl --transport = varlink --varlink-socket = " +
                       shell_quote(tmp_ / "none") + " status ''"),
              "");
    EXPECT_EQ(complete("promiscctl --transport dbus status ''"), links);
    const std::string files =
        complete("promiscctl --varlink-socket " + shell_quote(kSource + "/cli"));
    EXPECT_EQ(files, kSource + "/client\n");
    EXPECT_EQ(complete("promiscctl capture -w " + shell_quote(kSource + "/READ")),
              kSource + "/README.md\n");
    // run: after "--", a command, then its arguments.
    EXPECT_NE(complete("promiscctl run " + dev_ + " -- promiscc").find("promiscctl\n"),
              std::string::npos);
}

// In a real interactive bash on a terminal: what a person sees after TAB.
TEST_F(Ctl, BashCompletionInAnInteractiveShell) {
    const std::string dir = kCtl.substr(0, kCtl.rfind('/'));
    PtyProcess bash({"bash", "--noprofile", "--norc", "-i"}, env({{"PATH", dir + ":/usr/bin:/bin"},
                                                                  {"PS1", "READY> "},
                                                                  {"TERM", "xterm"},
                                                                  {"INPUTRC", "/dev/null"},
                                                                  {"HISTFILE", "/dev/null"}}));
    ASSERT_TRUE(bash.wait_for("READY> ")) << bash.output();
    // The next prompt is looked for from before the line is typed: on a busy
    // machine it can be on the terminal by the time the line is sent.
    size_t at = bash.output().size();
    bash.type("source " + shell_quote(kSource + "/client/promiscctl.bash-completion") + "\n");
    ASSERT_TRUE(bash.wait_for("READY> ", 10s, at)) << bash.output();
    // Types keys on an empty line; returns what the terminal showed.
    auto keys = [&](const std::string& k, const std::string& until) {
        size_t from = bash.output().size();
        bash.type("\x15" + k); // Ctrl-U: a fresh line
        EXPECT_TRUE(bash.wait_for(until, 10s, from)) << k << "\n" << bash.output().substr(from);
        return bash.output().substr(from);
    };
    keys("promiscctl --transport varlink --varlink-socket /nonexistent rel\t",
         "--varlink-socket /nonexistent release ");
    keys("promiscctl --transport=dbus sta\t", "promiscctl --transport=dbus status ");
    auto values = keys("promiscctl --transport=\t\t", "varlink");
    EXPECT_TRUE(std::regex_search(values, std::regex("auto +dbus +varlink"))) << values;
    keys("promiscctl capture -F pcapn\t", "-F pcapng ");
    keys("promiscctl -q --transport auto capture -i " + dev_ + " udp portr\t", "udp portrange ");
    // Link names from the daemon, over the bus of the environment.
    size_t common = 0;
    while (common < dev_.size() && common < veth_.peer_name.size() &&
           dev_[common] == veth_.peer_name[common])
        ++common;
    auto names = keys("promiscctl status " + dev_.substr(0, common) + "\t\t", veth_.peer_name);
    EXPECT_NE(names.find(dev_), std::string::npos) << names;
    bash.type("\x15"
              "exit\n");
    EXPECT_EQ(bash.wait(), 0) << bash.output();
}

} // namespace

// ------------------------------------------------------------------ capture

// dev_'s peer in a namespace of its own, both up with addresses, so that the
// peer can send datagrams to dev_.
class Capture : public Ctl {
protected:
    void make_links() override {
        peer_ns_ = std::make_unique<Netns>();
        veth_ = add_veth(*ns_, *peer_ns_);
        ns_->exec_ok("ip link set dev " + veth_.name + " up && ip addr add " + kOurs + "/24 dev " +
                     veth_.name);
        peer_ns_->exec_ok("ip link set dev " + veth_.peer_name + " up && ip addr add " + kPeer +
                          "/24 dev " + veth_.peer_name);
    }
    void TearDown() override {
        senders_.clear();
        Ctl::TearDown();
        peer_ns_.reset();
    }
    // The peer sends n UDP datagrams to dev_'s port 9, every interval_ms.
    std::vector<std::string> sender(int n, int interval_ms, int port = 9) {
        return peer_ns_->wrap({"/usr/bin/python3", "-c",
                               "import socket, time\n"
                               "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                               "for i in range(" +
                                   std::to_string(n) +
                                   "):\n"
                                   "    s.sendto(b'promiscctl test %d' % i, ('" +
                                   kOurs + "', " + std::to_string(port) + "))\n    time.sleep(" +
                                   std::to_string(interval_ms / 1000.0) + ")\n"});
    }
    void send(int n, int interval_ms = 5, int port = 9) {
        auto r = run(sender(n, interval_ms, port));
        ASSERT_EQ(r.status, 0) << r.err;
    }
    Process& send_in_background(int n, int interval_ms) {
        senders_.push_back(std::make_unique<Process>(sender(n, interval_ms)));
        return *senders_.back();
    }
    // tshark's reading of a capture file: one line of FIELDS per frame.
    CommandResult tshark(const std::string& file, const std::string& fields = "-e udp.dstport") {
        return sh("tshark -r " + shell_quote(file) + " -T fields " + fields +
                  " 2>&1 >/dev/null | "
                  "grep -v 'Running as user' >&2; tshark -r " +
                  shell_quote(file) + " -T fields " + fields + " 2>/dev/null");
    }

    const std::string kOurs = "10.77.0.1";
    const std::string kPeer = "10.77.0.2";
    std::unique_ptr<Netns> peer_ns_;
    std::vector<std::unique_ptr<Process>> senders_;
};

size_t lines_of(const std::string& s, const std::string& line) {
    size_t n = 0;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);)
        n += l == line;
    return n;
}

TEST_F(Capture, CountToAFileThatTsharkReads) {
    const std::string file = tmp_ / "ten.pcapng";
    auto& c = ctl_bg({"capture", dev_, "-f", "udp port 9", "-c", "10", "-w", file}, &kAllowedUser);
    ASSERT_NE(c.wait_for_output("Capturing on '" + dev_ + "' with filter 'udp port 9'"),
              std::string::npos)
        << c.log();
    EXPECT_NE(c.log().find("File: " + file), std::string::npos) << c.log();
    auto l = leases_json();
    ASSERT_EQ(l.size(), 1u) << "the capture holds a lease";
    EXPECT_EQ(l[0]["uid"], kAllowedUser.uid);
    EXPECT_TRUE(promisc());
    send(20);
    EXPECT_EQ(c.wait(10s), 0) << c.log();
    auto t = tshark(file, "-e ip.src -e udp.dstport");
    EXPECT_EQ(t.err, "");
    EXPECT_EQ(lines_of(t.out, kPeer + "\t9"), 10u) << t.out;
    // Received: what passed the filter, by the daemon's count (frames that
    // came after the tenth included); none dropped.
    EXPECT_TRUE(std::regex_search(
        c.log(), std::regex("Packets captured: 10\nPackets received/dropped on interface '" + dev_ +
                            "': \\d+/0 \\(100\\.0%\\)\nBytes written: [0-9.]+ KiB\n"
                            "Capture ended: count-reached\n")))
        << c.log();
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << "captures can hold secrets";
    EXPECT_EQ(st.st_uid, kAllowedUser.uid);
    EXPECT_TRUE(wait_until([&] { return leases_json().empty() && !promisc(); }))
        << "the lease ends with the capture";
}

// A container's namespace, named as a user would: --netns=$(pidof ...). hold,
// status and leases show the namespace; capture runs inside it; when the
// container's last process goes, hold says why its lease ended.
TEST_F(Capture, ContainersNamespaceByPid) {
    Process container({"unshare", "--net", "--", "sleep", "600"});
    const std::string pid = std::to_string(container.pid());
    const std::string ns_file = "/proc/" + pid + "/ns/net";
    struct stat own {};
    ::stat("/proc/self/ns/net", &own);
    ASSERT_TRUE(wait_until([&] {
        struct stat st {};
        return ::stat(ns_file.c_str(), &st) == 0 && st.st_ino != own.st_ino;
    }));
    struct stat nst {};
    ASSERT_EQ(::stat(ns_file.c_str(), &nst), 0);
    auto in_container = [&](const std::string& cmd) {
        return sh("nsenter --net=" + ns_file + " sh -c " + shell_quote(cmd));
    };
    ASSERT_TRUE(in_container("ip link set lo up").ok());

    auto& h = ctl_bg({"hold", "--netns=" + pid, "lo"});
    ASSERT_NE(h.wait_for_output("Holding lease "), std::string::npos) << h.log();
    EXPECT_NE(in_container("ip link show lo").out.find("PROMISC"), std::string::npos);
    EXPECT_FALSE(promisc("lo")) << "the host's lo is another link";

    auto st = ctl({"--json", "status"});
    ASSERT_EQ(st.status, 0) << st.err;
    json theirs;
    for (const auto& l : py_json(st.out))
        if (l.value("netns_inode", uint64_t{0}) == nst.st_ino)
            theirs = l;
    ASSERT_FALSE(theirs.is_null()) << st.out;
    EXPECT_EQ(theirs["name"], "lo");
    EXPECT_EQ(theirs["netns"], "pid:" + pid);
    EXPECT_EQ(theirs["leases"], 1);
    EXPECT_TRUE(theirs["path"].is_null());
    auto table = ctl({"status"});
    EXPECT_NE(table.out.find("lo (netns pid:" + pid + ")"), std::string::npos) << table.out;
    auto l = leases_json();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0]["interface"], "lo");
    EXPECT_EQ(l[0]["netns"], "pid:" + pid);
    EXPECT_EQ(l[0]["netns_inode"], nst.st_ino);

    const std::string file = tmp_ / "container.pcapng";
    auto& c = ctl_bg(
        {"capture", "--netns=" + pid, "-i", "lo", "-c", "3", "-w", file, "udp", "port", "9"});
    ASSERT_NE(c.wait_for_output("Capturing on 'lo'"), std::string::npos) << c.log();
    auto sent = in_container("python3 -c \"import socket; s = socket.socket(socket.AF_INET, "
                             "socket.SOCK_DGRAM); [s.sendto(b'x', ('127.0.0.1', 9)) for _ in "
                             "range(5)]\"");
    ASSERT_TRUE(sent.ok()) << sent.err;
    EXPECT_EQ(c.wait(10s), 0) << c.log();
    auto t = tshark(file);
    EXPECT_EQ(lines_of(t.out, "9"), 3u) << t.out << t.err;

    container.signal(SIGKILL);
    EXPECT_EQ(h.wait(15s), 1) << h.log();
    EXPECT_NE(h.log().find("ended: netns-gone"), std::string::npos) << h.log();
    EXPECT_TRUE(leases_json().empty());
}

TEST_F(Capture, ToStandardOutputIntoTshark) {
    const std::string raw = tmp_ / "stdout.pcapng";
    Process::Options o;
    o.env = env();
    procs_.push_back(std::make_unique<Process>(
        std::vector<std::string>{"sh", "-c",
                                 shell_quote(kCtl) + " capture " + dev_ +
                                     " -f 'udp port 9' -c 5 -w - | tee " + raw +
                                     " | tshark -r - -T fields -e ip.src -e udp.dstport"},
        o));
    Process& p = *procs_.back();
    ASSERT_NE(p.wait_for_output("Capturing on"), std::string::npos) << p.log();
    send(10);
    EXPECT_EQ(p.wait(10s), 0) << p.log();
    EXPECT_EQ(lines_of(p.log(), kPeer + "\t9"), 5u) << p.log();
    // Standard output carried the stream and nothing else.
    auto bytes = read_file(raw);
    ASSERT_GE(bytes.size(), 4u);
    EXPECT_EQ(bytes.substr(0, 4), std::string("\x0a\x0d\x0d\x0a", 4)) << "a pcapng section header";
    EXPECT_EQ(lines_of(tshark(raw).out, "9"), 5u);
    EXPECT_TRUE(leases_json().empty());
}

TEST_F(Capture, PcapFormat) {
    const std::string file = tmp_ / "five.pcap";
    auto& c = ctl_bg({"capture", dev_, "--format=pcap", "-f", "udp port 9", "-c", "5", "-w", file});
    ASSERT_NE(c.wait_for_output("Capturing on"), std::string::npos) << c.log();
    send(10);
    EXPECT_EQ(c.wait(10s), 0) << c.log();
    auto head = read_file(file).substr(0, 4);
    const std::set<std::string> magics = {"\xd4\xc3\xb2\xa1", "\xa1\xb2\xc3\xd4",
                                          "\x4d\x3c\xb2\xa1", "\xa1\xb2\x3c\x4d"};
    EXPECT_TRUE(magics.count(head)) << "a classic pcap file";
    EXPECT_EQ(lines_of(tshark(file).out, "9"), 5u);
    EXPECT_NE(c.log().find("Packets captured: 5\n"), std::string::npos) << c.log();
}

TEST_F(Capture, ProgressLineOnATerminal) {
    const std::string file = tmp_ / "progress.pcapng";
    auto& traffic = send_in_background(80, 40);
    auto r = pty(shell_quote(kCtl) + " capture " + dev_ + " -f 'udp port 9' -c 40 -w " +
                 shell_quote(file));
    EXPECT_EQ(r.status, 0) << r.out;
    traffic.wait(10s);
    // Rewritten in place, as dumpcap does: carriage return, erase line, the
    // counters.
    EXPECT_TRUE(std::regex_search(r.out, std::regex("\r\x1b\\[KPackets: [1-9]\\d*  Dropped: 0")))
        << r.out;
    EXPECT_NE(r.out.find("Packets captured: 40"), std::string::npos) << r.out;
    EXPECT_EQ(lines_of(tshark(file).out, "9"), 40u);
    // Not with -q.
    auto& more = send_in_background(40, 40);
    auto quiet = pty(shell_quote(kCtl) + " -q capture " + dev_ + " -f 'udp port 9' -c 20 -w " +
                     shell_quote(file));
    more.wait(10s);
    EXPECT_EQ(quiet.status, 0) << quiet.out;
    EXPECT_EQ(quiet.out, "") << "nothing but errors with -q";
    EXPECT_EQ(lines_of(tshark(file).out, "9"), 20u);
}

TEST_F(Capture, StopsCleanlyOnCtrlC) {
    const std::string file = tmp_ / "stopped.pcapng";
    auto& c = ctl_bg({"capture", dev_, "-f", "udp port 9", "-w", file});
    ASSERT_NE(c.wait_for_output("Capturing on"), std::string::npos) << c.log();
    send(7);
    ASSERT_TRUE(wait_until([&] { return lines_of(tshark(file).out, "9") == 7; })) << c.log();
    ::kill(c.pid(), SIGINT);
    EXPECT_EQ(c.wait(10s), 0) << c.log();
    EXPECT_NE(c.log().find("Packets captured: 7\n"), std::string::npos) << c.log();
    EXPECT_NE(c.log().find("Capture ended: stopped\n"), std::string::npos) << c.log();
    auto t = tshark(file);
    EXPECT_EQ(t.err, "") << "a complete file";
    EXPECT_EQ(lines_of(t.out, "9"), 7u);
    EXPECT_TRUE(wait_until([&] { return leases_json().empty() && !promisc(); }));
}

TEST_F(Capture, NoPromiscHoldsNoLease) {
    const std::string file = tmp_ / "nolease.pcapng";
    auto& c = ctl_bg({"capture", dev_, "--no-promisc", "-f", "udp port 9", "-c", "3", "-w", file});
    ASSERT_NE(c.wait_for_output("Capturing on"), std::string::npos) << c.log();
    EXPECT_TRUE(leases_json().empty());
    EXPECT_FALSE(promisc());
    send(5);
    EXPECT_EQ(c.wait(10s), 0) << c.log();
    EXPECT_EQ(lines_of(tshark(file).out, "9"), 3u);
}

TEST_F(Capture, Failures) {
    const std::string file = tmp_ / "denied.pcapng";
    auto denied = ctl({"capture", dev_, "-w", file}, &kDeniedUser);
    EXPECT_EQ(denied.status, 3) << denied.err;
    EXPECT_NE(denied.err.find("hint: polkit did not authorize this"), std::string::npos)
        << denied.err;
    EXPECT_NE(::access(file.c_str(), F_OK), 0) << "a refused capture leaves no file";
    auto filter = ctl({"capture", dev_, "-f", "udp port ((", "-w", file});
    EXPECT_EQ(filter.status, 1);
    EXPECT_EQ(filter.err.rfind("promiscctl: ", 0), 0u) << filter.err;
    EXPECT_NE(filter.err.find("syntax error"), std::string::npos) << filter.err;
    auto link = ctl({"capture", "nosuchlink0", "-w", file});
    EXPECT_EQ(link.status, 1);
    EXPECT_EQ(link.err, "promiscctl: interface 'nosuchlink0' does not exist\n");
    auto tty = pty(shell_quote(kCtl) + " capture " + dev_);
    EXPECT_EQ(tty.status, 2) << tty.out;
    EXPECT_NE(tty.out.find("refusing to write a binary capture to a terminal"), std::string::npos)
        << tty.out;
    EXPECT_TRUE(leases_json().empty());
    EXPECT_FALSE(promisc());
}

TEST_F(Capture, TcpdumpConventions) {
    // As tcpdump takes it: -i LINK, the filter as the trailing words, -c, -s,
    // -p (no promiscuous mode), -F pcap, -B in MiB.
    const std::string file = tmp_ / "tcpdump-style.pcap";
    auto& c = ctl_bg({"capture", "-i", dev_, "-c", "4", "-s", "40", "-B", "2", "-p", "-F", "pcap",
                      "-w", file, "udp", "and", "dst", "port", "9"},
                     &kAllowedUser);
    ASSERT_NE(c.wait_for_output("Capturing on '" + dev_ + "' with filter 'udp and dst port 9'"),
              std::string::npos)
        << c.log();
    EXPECT_TRUE(leases_json().empty()) << "-p holds no lease";
    EXPECT_FALSE(promisc());
    send(5, 5, 10); // filtered out
    send(6);
    EXPECT_EQ(c.wait(10s), 0) << c.log();
    auto head = read_file(file).substr(0, 4);
    const std::set<std::string> magics = {"\xd4\xc3\xb2\xa1", "\xa1\xb2\xc3\xd4",
                                          "\x4d\x3c\xb2\xa1", "\xa1\xb2\x3c\x4d"};
    EXPECT_TRUE(magics.count(head)) << "-F pcap: a classic pcap file";
    auto t = tshark(file, "-e udp.dstport -e frame.cap_len -e frame.len");
    EXPECT_EQ(t.err, "");
    std::istringstream lines(t.out);
    size_t frames = 0;
    for (std::string line; std::getline(lines, line); ++frames) {
        std::istringstream f(line);
        int port = 0, cap_len = 0, len = 0;
        f >> port >> cap_len >> len;
        EXPECT_EQ(port, 9) << "the trailing words are the filter";
        EXPECT_EQ(cap_len, 40) << "-s 40 keeps 40 bytes";
        EXPECT_GT(len, 40);
    }
    EXPECT_EQ(frames, 4u) << t.out;
    EXPECT_NE(c.log().find("Packets captured: 4\n"), std::string::npos) << c.log();

    // The link as the first word, and the long options of earlier versions.
    const std::string file2 = tmp_ / "positional.pcapng";
    auto& p = ctl_bg({"capture", dev_, "--count=3", "--snaplen=0", "--no-promisc",
                      "--format=pcapng", "--write", file2, "udp", "port", "9"});
    ASSERT_NE(p.wait_for_output("Capturing on '" + dev_ + "' with filter 'udp port 9'"),
              std::string::npos)
        << p.log();
    send(5);
    EXPECT_EQ(p.wait(10s), 0) << p.log();
    EXPECT_EQ(lines_of(tshark(file2).out, "9"), 3u);

    // -B is in MiB: 100 MiB is more than promiscd allows (64 MiB by default),
    // and its message says so in bytes.
    auto big = ctl({"capture", "-i", dev_, "-B", "100", "-w", tmp_ / "big.pcapng"});
    EXPECT_EQ(big.status, 1) << big.err;
    EXPECT_NE(big.err.find("option 'buffer_size' is 104857600 bytes"), std::string::npos)
        << big.err;
    // Both a -f filter and trailing words: which one was meant?
    auto two = ctl({"capture", "-i", dev_, "-f", "udp", "-w", tmp_ / "x.pcapng", "tcp"});
    EXPECT_EQ(two.status, 2);
    EXPECT_NE(two.err.find("two filters, 'udp' (-f) and 'tcp' (the trailing words)"),
              std::string::npos)
        << two.err;
    EXPECT_TRUE(leases_json().empty());
}

TEST_F(Capture, CtrlCPrintsTheStatisticsOnATerminal) {
    // A person at a terminal: the live line while frames come, then Ctrl-C
    // (the terminal sends SIGINT) and the statistics.
    const std::string file = tmp_ / "interrupted.pcapng";
    PtyProcess p({kCtl, "capture", "-i", dev_, "-w", file, "udp", "port", "9"},
                 env({{"TERM", "xterm"}}));
    ASSERT_TRUE(p.wait_for("Capturing on '" + dev_ + "'")) << p.output();
    send(6);
    ASSERT_TRUE(p.wait_for("Packets: 6  Dropped: 0")) << p.output();
    p.type("\x03"); // Ctrl-C
    EXPECT_EQ(p.wait(), 0) << p.output();
    const std::string out = p.output();
    EXPECT_TRUE(std::regex_search(
        out, std::regex("Packets captured: 6\r?\nPackets received/dropped on interface '" + dev_ +
                        "': 6/0 \\(100\\.0%\\)\r?\nBytes written: [0-9.]+ (B|KiB)\r?\n"
                        "Capture ended: stopped\r?\n")))
        << out;
    EXPECT_EQ(lines_of(tshark(file).out, "9"), 6u);
    EXPECT_TRUE(wait_until([&] { return leases_json().empty() && !promisc(); }));
}
