// libpromisc from outside the tree (issue 12): `meson install --destdir`,
// then programs that know nothing of this tree are compiled and linked with
// only what `pkg-config promisc` says about the installed copy, and run as a
// person against the real stack (desktop_stack.hpp): the C++ API (RAII
// lease, change callback, renew, a capture's next(timeout), one exception
// class per daemon error) and the Zephyr-shaped C API (-EALREADY twice,
// promisc_wait_data(), one errno value per daemon error), over D-Bus and
// over varlink. The library's own examples are built and run the same way.
#include "desktop_stack.hpp"

#include <cerrno>
#include <regex>
#include <sstream>
#include <thread>

using namespace promiscd::testing;
using nlohmann::json;

namespace {

const std::string kSource = PROMISCD_SOURCE_ROOT;
const std::string kBuild = PROMISCD_BUILD_ROOT;

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

// The installed copy and the programs built against it, made once per run.
struct Installed {
    TempDir destdir;
    TempDir programs;
    std::string pc_dir;    // where promisc.pc is
    std::string libdir;    // what pkg-config says, inside destdir
    std::string cflags;    // pkg-config --cflags promisc
    std::string libs;      // pkg-config --libs promisc
    std::string failure;   // why it could not be made
    std::string build_log; // compilers' output

    std::map<std::string, std::string> pkg_env() const {
        return {{"PKG_CONFIG_PATH", pc_dir},
                {"PKG_CONFIG_LIBDIR", pc_dir},
                {"PKG_CONFIG_SYSROOT_DIR", destdir.path()}};
    }
    // Where the programs find the installed library: the -L pkg-config gave.
    std::map<std::string, std::string> run_env() const { return {{"LD_LIBRARY_PATH", libdir}}; }
    std::string program(const std::string& name) const { return programs / name; }

    Installed() {
        ::chmod(programs.path().c_str(), 0755);
        auto r = run({"meson", "install", "-C", kBuild, "--destdir", destdir.path(), "--no-rebuild",
                      "--quiet"});
        if (!r.ok()) {
            failure = "meson install --destdir failed:\n" + r.out + r.err;
            return;
        }
        auto pc = run({"find", destdir.path(), "-name", "promisc.pc"});
        pc_dir = trim(pc.out);
        if (pc_dir.empty() || contains(pc_dir, "\n")) {
            failure = "no single promisc.pc installed: " + pc.out;
            return;
        }
        pc_dir = pc_dir.substr(0, pc_dir.rfind('/'));
        auto pkg = [&](std::vector<std::string> args) {
            args.insert(args.begin(), "pkg-config");
            auto p = run(args, pkg_env());
            if (!p.ok())
                failure += "pkg-config failed: " + p.err;
            return trim(p.out);
        };
        cflags = pkg({"--cflags", "promisc"});
        libs = pkg({"--libs", "promisc"});
        for (std::istringstream in(pkg({"--libs-only-L", "promisc"})); in;) {
            std::string word;
            in >> word;
            if (word.rfind("-L", 0) == 0)
                libdir = word.substr(2);
        }
        if (!failure.empty())
            return;
        // The programs, as someone outside the tree builds them.
        // A library built with sanitizers (scripts/test's second pass)
        // needs their runtime in the program too.
        const std::string sanitize = PROMISCD_SANITIZE;
        const std::string extra = sanitize == "none" ? "" : "-fsanitize=" + sanitize + " ";
        const std::string cxx = "c++ -std=c++17 -Wall -Wextra -Werror " + extra;
        const std::string cc = "cc -std=c11 -Wall -Wextra -Werror " + extra;
        const std::vector<std::pair<std::string, std::string>> builds = {
            {"check", cxx + kSource + "/tests/integration/clients/libpromisc_check.cpp"},
            {"check_c", cc + kSource + "/tests/integration/clients/libpromisc_check.c"},
            {"hold_lease", cxx + kSource + "/client/examples/hold_lease.cpp"},
            {"capture", cxx + kSource + "/client/examples/capture.cpp"},
            {"promisc_mode", cc + kSource + "/client/examples/promisc_mode.c"},
            {"who_holds", cxx + kSource + "/client/examples/who_holds.cpp"},
        };
        for (const auto& [name, command] : builds) {
            auto b = sh(command + " " + cflags + " -o " + program(name) + " " + libs);
            build_log += "$ " + command + "\n" + b.out + b.err;
            if (!b.ok()) {
                failure = "building " + name + " failed:\n" + build_log;
                return;
            }
        }
    }
};

const Installed& installed() {
    static Installed once;
    return once;
}

// One output line of a checker: "NAME <value> <error name> | <message>".
struct Said {
    int value = 0;
    std::string error_name;
    std::string message;
};

class LibPromisc : public DesktopStack {
protected:
    // Two leases per uid: the third is over the quota.
    std::string daemon_config() const override { return R"({"quotas": {"leases_per_uid": 2}})"; }
    void SetUp() override {
        DesktopStack::SetUp();
        if (HasFatalFailure() || IsSkipped())
            return;
        const auto& i = installed();
        ASSERT_TRUE(i.failure.empty()) << i.failure;
    }

    // A program of the installed library's, as user, in the background.
    Process& program(const std::string& name, std::vector<std::string> args,
                     const TestUser& user = kAllowedUser) {
        args.insert(args.begin(), installed().program(name));
        return spawn(args, &user, installed().run_env(), true);
    }
    // The checker's arguments: --varlink SOCKET when on, then more.
    std::vector<std::string> varlink(bool on, std::vector<std::string> more = {}) const {
        std::vector<std::string> args;
        if (on)
            args = {"--varlink", varlink_socket()};
        args.insert(args.end(), more.begin(), more.end());
        return args;
    }
    // What follows prefix on the first whole line of p that is prefix alone
    // or starts with prefix + " " (waiting for it).
    std::string line_of(Process& p, const std::string& prefix, size_t from = 0) {
        size_t at = std::string::npos;
        wait_until(
            [&] {
                const std::string log = p.log();
                for (size_t pos = log.find(prefix, from); pos != std::string::npos;
                     pos = log.find(prefix, pos + 1)) {
                    const size_t after = pos + prefix.size();
                    if ((pos == 0 || log[pos - 1] == '\n') && after < log.size() &&
                        (log[after] == ' ' || log[after] == '\n') &&
                        log.find('\n', pos) != log.npos) {
                        at = pos;
                        return true;
                    }
                }
                // Exited without it: no use waiting (its log is complete).
                return !p.running() && p.log() == log;
            },
            20s);
        if (at == std::string::npos) {
            ADD_FAILURE() << "no line '" << prefix << "' from " << p.log();
            return {};
        }
        const std::string log = p.log();
        const size_t begin = std::min(at + prefix.size() + 1, log.find('\n', at));
        return log.substr(begin, log.find('\n', at) - begin);
    }
    Said said(Process& p, const std::string& name, size_t from = 0) {
        std::istringstream in(line_of(p, name, from));
        Said s;
        in >> s.value >> s.error_name;
        std::string bar;
        in >> bar;
        std::getline(in, s.message);
        return s;
    }
    std::vector<Said> all_said(Process& p, const std::string& name) {
        std::vector<Said> out;
        const std::string log = p.log();
        for (size_t pos = 0; (pos = log.find(name + " ", pos)) != std::string::npos; ++pos)
            if (pos == 0 || log[pos - 1] == '\n')
                out.push_back(said(p, name, pos));
        return out;
    }
    // "CASE label ..." of the C++ checker.
    std::string case_of(Process& p, const std::string& label) {
        return line_of(p, "CASE " + label);
    }
};

// ---------------------------------------------------------------- package

TEST_F(LibPromisc, InstallsAVersionedLibraryThatExportsOnlyItsApi) {
    const auto& i = installed();
    auto mv = run({"pkg-config", "--modversion", "promisc"}, i.pkg_env());
    EXPECT_EQ(trim(mv.out), "1.0.0") << mv.err;
    EXPECT_TRUE(contains(i.cflags, i.destdir.path()))
        << "headers from the installed copy: " << i.cflags;
    EXPECT_FALSE(contains(i.cflags + i.libs, kSource)) << "nothing of the source tree";
    EXPECT_FALSE(contains(i.cflags + i.libs, kBuild)) << "nothing of the build tree";
    for (const auto& h : {"promisc.h", "promisc.hpp", "version.h"}) {
        auto inc = i.cflags.substr(2); // -I<dir>
        EXPECT_TRUE(std::filesystem::exists(inc + "/promisc/" + h)) << inc << " " << h;
    }
    const std::string lib = i.libdir + "/libpromisc.so";
    EXPECT_TRUE(std::filesystem::is_symlink(lib)) << lib;
    EXPECT_TRUE(std::filesystem::is_symlink(lib + ".1")) << lib;
    auto dyn = run({"readelf", "-d", lib});
    EXPECT_TRUE(contains(dyn.out, "Library soname: [libpromisc.so.1]")) << dyn.out;

    // Only the API: C functions promisc_*, and namespace promisc.
    auto nm = sh("nm -D --defined-only '" + lib + "' | c++filt");
    ASSERT_TRUE(nm.ok()) << nm.err;
    std::istringstream in(nm.out);
    size_t exported = 0;
    for (std::string line; std::getline(in, line);) {
        const std::string sym = line.substr(line.find(' ', line.find(' ') + 1) + 1);
        if (sym == "LIBPROMISC_1")
            continue;
        ++exported;
        const bool api = sym.rfind("promisc_", 0) == 0 || sym.rfind("promisc::", 0) == 0 ||
                         sym.rfind("typeinfo for promisc::", 0) == 0 ||
                         sym.rfind("typeinfo name for promisc::", 0) == 0 ||
                         sym.rfind("vtable for promisc::", 0) == 0;
        EXPECT_TRUE(api) << "exported: " << sym;
        EXPECT_FALSE(contains(sym, "promiscd::")) << "internal code exported: " << sym;
        EXPECT_FALSE(contains(sym, "::Impl")) << "internal code exported: " << sym;
        // Parameters may be of standard types; the entity itself may not be
        // the standard library's (a template instantiated for a promisc type).
        EXPECT_FALSE(contains(sym.substr(0, sym.find('(')), "std::"))
            << "a template of the standard library: " << sym;
    }
    EXPECT_GT(exported, 40u);

    // The Wireshark helper, where Wireshark looks for global extcap programs.
    const std::string extcap = i.destdir / (std::string(PROMISCD_EXTCAP_DIR) + "/promiscd-extcap");
    EXPECT_EQ(::access(extcap.c_str(), X_OK), 0) << extcap;

    // Built against the installed copy, running with it.
    auto ldd = run({"ldd", i.program("check")}, i.run_env());
    EXPECT_TRUE(contains(ldd.out, "libpromisc.so.1 => " + i.libdir)) << ldd.out;
}

// ---------------------------------------------------------------- C++

TEST_F(LibPromisc, CxxLeaseIsRaii) {
    for (bool over_varlink : {false, true}) {
        SCOPED_TRACE(over_varlink ? "varlink" : "D-Bus");
        auto args = varlink(over_varlink);
        args.insert(args.end(), {"raii", dev_});
        Process& p = program("check", args);
        const std::string held = line_of(p, "HELD");
        EXPECT_TRUE(contains(held, " active")) << held;
        auto l = leases();
        ASSERT_EQ(l.size(), 1u) << l;
        EXPECT_EQ(l[0][1].get<uint64_t>(), std::stoull(held));
        EXPECT_EQ(l[0][5], kAllowedUser.uid);
        EXPECT_TRUE(promisc(dev_)) << "ip link shows PROMISC while the Lease lives";
        p.write_stdin("\n");
        line_of(p, "RELEASED");
        EXPECT_TRUE(leases().empty()) << "~Lease released it: " << leases();
        EXPECT_FALSE(promisc(dev_));
        p.write_stdin("\n");
        EXPECT_EQ(p.wait(10s), 0) << p.log();
    }
}

TEST_F(LibPromisc, CxxChangeCallbackSeesARevocation) {
    for (bool over_varlink : {false, true}) {
        SCOPED_TRACE(over_varlink ? "varlink" : "D-Bus");
        auto args = varlink(over_varlink);
        args.insert(args.end(), {"watch", dev_});
        Process& p = program("check", args);
        const std::string id = line_of(p, "HELD");
        auto r = busctl({"call", PROMISCD_BUS_NAME, "/org/promiscd/Promisc1",
                         std::string(PROMISCD_BUS_NAME) + ".Manager", "RevokeLease", "os",
                         "/org/promiscd/Promisc1/lease/" + id, "maintenance"});
        ASSERT_EQ(r.status, 0) << r.err;
        EXPECT_EQ(line_of(p, "CHANGE"), "active ended");
        const std::string ended = line_of(p, "ENDED");
        EXPECT_EQ(ended.rfind("revoked | ", 0), 0u) << ended;
        EXPECT_TRUE(contains(ended, "uid 0")) << ended;
        EXPECT_TRUE(contains(ended, ": maintenance")) << ended;
        EXPECT_EQ(p.wait(10s), 0) << p.log();
    }
}

// Client::monitor(), as a user polkit allows nothing (reading needs no
// authorization): the leases there were when it began, then others' leases
// as they come and go, and the flag as promiscd clears it.
TEST_F(LibPromisc, CxxMonitorFollowsOthersLeases) {
    for (bool over_varlink : {false, true}) {
        SCOPED_TRACE(over_varlink ? "varlink" : "D-Bus");
        Process& first = program("check", varlink(over_varlink, {"raii", dev_}));
        const std::string id1 = line_of(first, "HELD").substr(0, line_of(first, "HELD").find(' '));
        Process& mon = program("check", varlink(over_varlink, {"monitor", dev_}), kDeniedUser);
        EXPECT_EQ(line_of(mon, "BEGAN"), "link=listed leases=1");
        Process& second = program("check", varlink(over_varlink, {"raii", dev_}));
        const std::string held2 = line_of(second, "HELD");
        const std::string id2 = held2.substr(0, held2.find(' '));
        EXPECT_EQ(line_of(mon, "EVENT lease-granted"), dev_ + " " + id2 + " active by=- | ");
        first.write_stdin("\n");
        line_of(first, "RELEASED");
        second.write_stdin("\n");
        line_of(second, "RELEASED");
        EXPECT_EQ(mon.wait(20s), 0) << mon.log();
        const std::string log = mon.log();
        EXPECT_TRUE(contains(log, "EVENT lease-ended " + dev_ + " " + id1 + " released by=- | \n"))
            << log;
        EXPECT_TRUE(contains(log, "EVENT lease-ended " + dev_ + " " + id2 + " released by=- | \n"))
            << log;
        EXPECT_TRUE(contains(log, "EVENT flag-changed " + dev_ + " - off by=promiscd | \n")) << log;
        EXPECT_LT(log.find(" " + id1 + " released"), log.find(" " + id2 + " released")) << log;
        for (Process* p : {&first, &second}) {
            p->write_stdin("\n");
            EXPECT_EQ(p->wait(10s), 0) << p->log();
        }
        EXPECT_FALSE(promisc(dev_));
    }
}

// Client::revoke() and Client::set_policy(): errors for what does not
// exist or is not a policy; as root they work (the holder learns who
// revoked it and why); as a user polkit does not allow to manage they are
// refused and change nothing (except for setting the policy a link has
// already, which changes nothing and asks nobody).
TEST_F(LibPromisc, CxxAdministrationIsForThoseAllowedToManage) {
    for (bool over_varlink : {false, true}) {
        SCOPED_TRACE(over_varlink ? "varlink" : "D-Bus");
        Process& holder = program("check", varlink(over_varlink, {"watch", dev_}));
        const std::string id = line_of(holder, "HELD");

        Process& user = program("check", varlink(over_varlink, {"admin", dev_, id}));
        EXPECT_EQ(user.wait(30s), 0) << user.log();
        for (const char* c : {"policy-yield", "revoke"}) {
            const std::string got = case_of(user, c);
            EXPECT_TRUE(contains(got, "AccessDeniedError") ||
                        contains(got, "InteractiveAuthorizationRequiredError"))
                << c << ": " << got;
        }
        EXPECT_EQ(line_of(user, "POLICY"), "enforce") << "refused: unchanged";
        EXPECT_EQ(case_of(user, "policy-enforce"), "no error")
            << "the policy it has already: nothing changes, nobody is asked";
        ASSERT_EQ(leases().size(), 1u) << "refused: the lease is still held";

        std::vector<std::string> argv = {installed().program("check")};
        for (auto& a : varlink(over_varlink, {"admin", dev_, id}))
            argv.push_back(a);
        Process& root = spawn(argv, nullptr, installed().run_env(), true);
        EXPECT_EQ(root.wait(30s), 0) << root.log();
        EXPECT_TRUE(contains(case_of(root, "revoke-nosuch"), "NoSuchLeaseError NoSuchLease "))
            << case_of(root, "revoke-nosuch");
        EXPECT_TRUE(contains(case_of(root, "policy-bad"), "InvalidArgumentError InvalidArgument "))
            << case_of(root, "policy-bad");
        EXPECT_TRUE(contains(case_of(root, "policy-bad"), "sometimes"))
            << case_of(root, "policy-bad");
        EXPECT_TRUE(
            contains(case_of(root, "policy-nosuch"), "NoSuchInterfaceError NoSuchInterface "))
            << case_of(root, "policy-nosuch");
        EXPECT_EQ(case_of(root, "policy-yield"), "no error");
        const std::string log = root.log();
        EXPECT_TRUE(contains(log, "POLICY yield\nCASE policy-enforce no error\nPOLICY enforce\n"))
            << log;
        EXPECT_EQ(case_of(root, "revoke"), "no error");
        const std::string ended = line_of(holder, "ENDED");
        EXPECT_EQ(ended.rfind("revoked | ", 0), 0u) << ended;
        EXPECT_TRUE(contains(ended, ": maintenance")) << ended;
        EXPECT_EQ(holder.wait(10s), 0) << holder.log();
        EXPECT_TRUE(leases().empty());
        EXPECT_FALSE(promisc(dev_));
    }
}

TEST_F(LibPromisc, CxxRenewKeepsTheLeasePastItsTtl) {
    for (bool over_varlink : {false, true}) {
        SCOPED_TRACE(over_varlink ? "varlink" : "D-Bus");
        auto args = varlink(over_varlink);
        args.insert(args.end(), {"renew", dev_});
        Process& p = program("check", args);
        EXPECT_EQ(line_of(p, "AFTER"), "active") << "renew(0) lifted the 2 s TTL";
        line_of(p, "RELEASED");
        EXPECT_EQ(p.wait(10s), 0) << p.log();
        EXPECT_TRUE(leases().empty());
    }
}

TEST_F(LibPromisc, CxxNextReturnsNothingOnAnIdleLinkThenAFrame) {
    for (bool over_varlink : {false, true}) {
        SCOPED_TRACE(over_varlink ? "varlink" : "D-Bus");
        auto args = varlink(over_varlink);
        args.insert(args.end(), {"next", dev_});
        Process& p = program("check", args);
        const std::string idle = line_of(p, "IDLE");
        std::smatch m;
        ASSERT_TRUE(std::regex_match(idle, m, std::regex("nothing after ([0-9]+) ms"))) << idle;
        EXPECT_GE(std::stoi(m[1]), 700) << "next(700ms) waited its timeout";
        line_of(p, "READY");
        const Bytes frame = test_frame(mac_, peer_mac_, 90, 7);
        sender_->send(frame);
        std::istringstream f(line_of(p, "FRAME"));
        size_t caplen = 0, origlen = 0, link_type = 0;
        uint64_t ns = 0;
        std::string data;
        f >> caplen >> origlen >> link_type >> ns >> data;
        EXPECT_EQ(data, hex(frame));
        EXPECT_EQ(origlen, frame.size());
        EXPECT_EQ(link_type, 1u);
        const auto now = std::chrono::system_clock::now().time_since_epoch();
        EXPECT_LT(std::chrono::nanoseconds(now).count() - static_cast<int64_t>(ns), 60e9)
            << "a timestamp of now";
        EXPECT_EQ(line_of(p, "STATS"), "frames=1");
        EXPECT_EQ(line_of(p, "ENDED"), "stopped final=yes");
        EXPECT_EQ(p.wait(10s), 0) << p.log();
        EXPECT_TRUE(wait_until([&] { return leases().empty() && captures().empty(); }));
    }
}

TEST_F(LibPromisc, CxxOneExceptionClassPerDaemonError) {
    for (bool over_varlink : {false, true}) {
        SCOPED_TRACE(over_varlink ? "varlink" : "D-Bus");
        const std::string dbus = std::string(PROMISCD_BUS_NAME) + ".Error.";
        const std::string vl = "org.promiscd.promisc.";
        auto name = [&](const std::string& n) { return (over_varlink ? vl : dbus) + n; };
        auto args = varlink(over_varlink);
        args.insert(args.end(), {"errors", dev_});
        Process& p = program("check", args);
        EXPECT_EQ(p.wait(60s), 0) << p.log();
        auto expect = [&](const std::string& label, const std::string& cls, const std::string& code,
                          int err, const std::string& err_name) {
            const std::string line = case_of(p, label);
            EXPECT_EQ(line.rfind(
                          cls + " " + code + " " + std::to_string(err) + " " + err_name + " | ", 0),
                      0u)
                << line;
        };
        expect("nosuch", "NoSuchInterfaceError", "NoSuchInterface", ENODEV,
               name("NoSuchInterface"));
        EXPECT_TRUE(contains(case_of(p, "nosuch"), "interface 'nosuch0' does not exist"));
        expect("empty", "InvalidArgumentError", "InvalidArgument", EINVAL, name("InvalidArgument"));
        expect("filter", "InvalidFilterError", "InvalidFilter", EINVAL, name("InvalidFilter"));
        expect("released-twice", "NoSuchLeaseError", "NoSuchLease", ENOENT, "-");
        expect("password", "InteractiveAuthorizationRequiredError",
               "InteractiveAuthorizationRequired", EACCES,
               over_varlink ? vl + "InteractiveAuthorizationRequired"
                            : "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired");
        expect("quota", "QuotaExceededError", "QuotaExceeded", EDQUOT, name("QuotaExceeded"));
        expect("unreachable", "DaemonUnreachableError", "DaemonUnreachable", ECONNREFUSED, "-");

        auto deny_args = varlink(over_varlink);
        deny_args.insert(deny_args.end(), {"denied", dev_});
        Process& d = program("check", deny_args, kDeniedUser);
        EXPECT_EQ(d.wait(30s), 0) << d.log();
        const std::string denied =
            over_varlink ? vl + "AccessDenied" : "org.freedesktop.DBus.Error.AccessDenied";
        for (const auto& label : {"acquire", "capture"}) {
            const std::string line = case_of(d, label);
            EXPECT_EQ(line.rfind("AccessDeniedError AccessDenied " + std::to_string(EACCES) + " " +
                                     denied + " | uid " + std::to_string(kDeniedUser.uid) +
                                     " is not authorized",
                                 0),
                      0u)
                << line;
        }
        EXPECT_EQ(line_of(d, "LEASES"), "0");
        EXPECT_TRUE(leases().empty());
    }
}

// ---------------------------------------------------------------- C

TEST_F(LibPromisc, CModeOnAndOffAnswerEalreadyTheSecondTime) {
    for (bool over_varlink : {false, true}) {
        SCOPED_TRACE(over_varlink ? "varlink" : "D-Bus");
        auto args = varlink(over_varlink);
        args.insert(args.end(), {"modes", dev_});
        Process& p = program("check_c", args);
        EXPECT_EQ(said(p, "ON").value, 0);
        auto l = leases();
        ASSERT_EQ(l.size(), 1u) << l;
        EXPECT_EQ(l[0][5], kAllowedUser.uid);
        EXPECT_TRUE(promisc(dev_));
        p.write_stdin("\n");
        std::vector<Said> on;
        ASSERT_TRUE(wait_until([&] { return (on = all_said(p, "ON")).size() == 2; })) << p.log();
        EXPECT_EQ(on[1].value, -EALREADY);
        EXPECT_TRUE(contains(on[1].message, "already holds")) << on[1].message;
        EXPECT_EQ(said(p, "IS").value, 1);
        EXPECT_EQ(leases().size(), 1u) << "the second mode_on took no second lease";
        p.write_stdin("\n");
        EXPECT_EQ(said(p, "OFF").value, 0);
        EXPECT_TRUE(leases().empty()) << "mode_off released it";
        EXPECT_FALSE(promisc(dev_));
        p.write_stdin("\n");
        EXPECT_EQ(p.wait(10s), 0) << p.log();
        auto off = all_said(p, "OFF");
        ASSERT_EQ(off.size(), 2u) << p.log();
        EXPECT_EQ(off[1].value, -EALREADY);
        auto is = all_said(p, "IS");
        ASSERT_EQ(is.size(), 2u);
        EXPECT_EQ(is[1].value, 0);
        EXPECT_TRUE(leases().empty());
        EXPECT_FALSE(promisc(dev_));
    }
}

TEST_F(LibPromisc, CWaitDataTimesOutOnAnIdleLinkThenReturnsAFrame) {
    for (bool over_varlink : {false, true}) {
        SCOPED_TRACE(over_varlink ? "varlink" : "D-Bus");
        auto args = varlink(over_varlink);
        args.insert(args.end(), {"wait", dev_});
        Process& p = program("check_c", args);
        EXPECT_EQ(said(p, "NOTHING").value, -ENOTCONN) << "no mode on yet";
        EXPECT_EQ(said(p, "ON").value, 0);
        EXPECT_EQ(said(p, "IDLE").value, -EAGAIN);
        said(p, "READY");
        const Bytes frame = test_frame(mac_, peer_mac_, 75, 3);
        sender_->send(frame);
        EXPECT_EQ(said(p, "DATA").value, 0);
        EXPECT_EQ(line_of(p, "FRAME"), dev_ + " 75 75 1 " + hex(frame));
        EXPECT_EQ(said(p, "OFF").value, 0);
        EXPECT_EQ(said(p, "AFTER").value, -ENOTCONN);
        EXPECT_EQ(p.wait(10s), 0) << p.log();
        EXPECT_TRUE(wait_until([&] { return leases().empty() && captures().empty(); }));
    }
}

TEST_F(LibPromisc, COneErrnoPerDaemonError) {
    Process& p = program("check_c", {"errors", dev_});
    EXPECT_EQ(p.wait(60s), 0) << p.log();
    const std::string dbus = std::string(PROMISCD_BUS_NAME) + ".Error.";
    auto s = said(p, "NOSUCH");
    EXPECT_EQ(s.value, -ENODEV);
    EXPECT_EQ(s.error_name, dbus + "NoSuchInterface");
    EXPECT_TRUE(contains(s.message, "'nosuch0' does not exist")) << s.message;
    s = said(p, "EMPTY");
    EXPECT_EQ(s.value, -EINVAL);
    EXPECT_EQ(s.error_name, dbus + "InvalidArgument");
    EXPECT_EQ(said(p, "NULL").value, -EINVAL);
    EXPECT_EQ(said(p, "ON").value, 0);
    s = said(p, "BADFILTER");
    EXPECT_EQ(s.value, -EINVAL);
    EXPECT_EQ(s.error_name, dbus + "InvalidFilter");
    EXPECT_EQ(said(p, "SECOND").value, 0);
    s = said(p, "QUOTA");
    EXPECT_EQ(s.value, -EDQUOT);
    EXPECT_EQ(s.error_name, dbus + "QuotaExceeded");
    EXPECT_EQ(said(p, "UNREACHABLE").value, -ECONNREFUSED);
    EXPECT_EQ(line_of(p, "UNREACHABLE_CTX"), "null");

    Process& d = program("check_c", {"denied", dev_}, kDeniedUser);
    EXPECT_EQ(d.wait(30s), 0) << d.log();
    s = said(d, "ON");
    EXPECT_EQ(s.value, -EACCES);
    EXPECT_EQ(s.error_name, "org.freedesktop.DBus.Error.AccessDenied");
    EXPECT_EQ(said(d, "IS").value, 0);
    EXPECT_TRUE(wait_until([&] { return leases().empty(); }));
}

// ---------------------------------------------------------------- examples

TEST_F(LibPromisc, ExamplesRunAgainstTheDaemon) {
    Process& hold = program("hold_lease", {dev_, "1"});
    EXPECT_EQ(hold.wait(20s), 0) << hold.log();
    EXPECT_TRUE(contains(hold.log(), " on " + dev_ + ": active")) << hold.log();

    Process& cap = program("capture", {dev_, "3", "ether proto 0x88b5"});
    ASSERT_TRUE(wait_until([&] { return captures().size() == 1; }, 20s)) << cap.log();
    std::vector<Bytes> sent;
    for (uint32_t i = 0; i < 3; ++i) {
        sent.push_back(test_frame(mac_, peer_mac_, 64 + i, i));
        sender_->send(sent.back());
    }
    EXPECT_EQ(cap.wait(20s), 0) << cap.log();
    for (const auto& f : sent)
        EXPECT_TRUE(contains(cap.log(), std::to_string(f.size()) + " bytes:")) << cap.log();
    EXPECT_TRUE(contains(cap.log(), "3 frames, 0 dropped; ended: count-reached")) << cap.log();

    Process& mode = program("promisc_mode", {dev_, "2"});
    ASSERT_TRUE(wait_until([&] { return captures().size() == 1; }, 20s)) << mode.log();
    for (uint32_t i = 0; i < 2; ++i)
        sender_->send(test_frame(mac_, peer_mac_, 70, i));
    EXPECT_EQ(mode.wait(20s), 0) << mode.log();
    EXPECT_TRUE(contains(mode.log(), dev_ + ": 70 bytes at ")) << mode.log();
    EXPECT_TRUE(wait_until([&] { return leases().empty() && captures().empty(); }));

    // who_holds, as a user polkit allows nothing, while hold_lease comes and goes.
    Process& held = program("hold_lease", {dev_, "30"});
    ASSERT_TRUE(wait_until([&] { return leases().size() == 1; }, 20s)) << held.log();
    Process& who = program("who_holds", {"6"}, kDeniedUser);
    ASSERT_TRUE(wait_until([&] { return contains(who.log(), "(hold_lease)\n"); }, 20s))
        << who.log();
    held.signal(SIGTERM);
    held.wait(10s);
    EXPECT_EQ(who.wait(20s), 0) << who.log();
    const std::string log = who.log();
    EXPECT_TRUE(std::regex_search(log, std::regex("^lease [0-9]+ on " + dev_ + ": active, uid " +
                                                  std::to_string(kAllowedUser.uid) +
                                                  " \\(hold_lease\\)\n")))
        << log;
    EXPECT_TRUE(
        std::regex_search(log, std::regex("\nended: lease [0-9]+ on " + dev_ + ": owner-gone\n")))
        << log;
    EXPECT_TRUE(contains(log, "\n" + dev_ + ": promiscuous mode off (promiscd)\n")) << log;
}

} // namespace
