// The contract, made true on both transports: the same request gets the
// same answer, error name and message over D-Bus and over varlink; every
// lease has a D-Bus object whatever created it; revocations reach the owner;
// and the other promises of the XML and the IDL, each checked the way a
// client sees it (python3-dbus, busctl, a plain python varlink client).
#include "bus_stack.hpp"
#include "netns.hpp"
#include "process.hpp"
#include "test_paths.h"

#include <algorithm>
#include <csignal>
#include <gtest/gtest.h>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

using namespace promiscd::testing;
using nlohmann::json;

namespace {

const std::string vl = "org.promiscd.promisc.";
const std::string root_path = "/org/promiscd/Promisc1";
const std::string manager = std::string(PROMISCD_BUS_NAME) + ".Manager";
const std::string lease_iface = std::string(PROMISCD_BUS_NAME) + ".Lease";
const std::string clients = std::string(PROMISCD_SOURCE_ROOT) + "/tests/integration/clients/";

const std::string& rules = kPromiscGroupRules;

using As = std::function<std::vector<std::string>(std::vector<std::string>)>;
As as(const TestUser& u) {
    return [u](std::vector<std::string> argv) { return as_user(u, std::move(argv)); };
}

// An answer as a client sees it, transport aside: the error's short name
// (AccessDenied whether org.freedesktop.DBus.Error.AccessDenied or
// org.promiscd.promisc.AccessDenied) and its message; "OK" and "" on success.
// fds: the descriptors the answer brought into the client, as the client's
// fstat and /proc see them ("pipe r", "packet-socket rw"; "," between).
struct Answer {
    std::string error;
    std::string message;
    std::string fds;
    bool operator==(const Answer&) const = default;
};
std::ostream& operator<<(std::ostream& o, const Answer& a) {
    o << a.error << " \"" << a.message << "\"";
    if (!a.fds.empty())
        o << " with " << a.fds;
    return o;
}

std::string short_name(const std::string& name) {
    return name.substr(name.rfind('.') + 1);
}

class Contract : public ::testing::Test {
protected:
    void SetUp() override {
        PROMISCD_REQUIRE_ROOT();
        stack_ = std::make_unique<BusStack>();
        stack_->start_polkit(rules);
        ns_ = std::make_unique<Netns>();
        dev_ = add_veth(*ns_).name;
        ifb_ = add_ifb(*ns_);
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
            std::cerr << "---- promiscd log ----\n" << daemon_->log() << "\n";
        procs_.clear();
        daemon_.reset();
        ns_.reset();
        stack_.reset();
    }
    void start_daemon(std::vector<std::string> extra = {}, std::vector<std::string> prefix = {}) {
        Process::Options o;
        o.env = stack_->env();
        o.log_path = state_ / ("promiscd-" + std::to_string(++starts_) + ".log");
        std::vector<std::string> argv = prefix;
        for (std::string a :
             {std::string(PROMISCD_DAEMON_BINARY), std::string("--log-target=console"),
              std::string("--log-level=debug"), "--state-dir=" + state_.path(),
              "--config=" + config_, "--varlink=" + sock_})
            argv.push_back(a);
        argv.insert(argv.end(), extra.begin(), extra.end());
        daemon_ = std::make_unique<Process>(ns_->wrap(argv), o);
        ASSERT_TRUE(wait_until([&] { return stack_->name_has_owner(PROMISCD_BUS_NAME); }))
            << daemon_->log();
    }
    Process& spawn(std::vector<std::string> argv, const As& who = {}) {
        if (who)
            argv = who(argv);
        Process::Options o;
        o.env = stack_->env();
        o.stdin_pipe = true;
        procs_.push_back(std::make_unique<Process>(argv, o));
        return *procs_.back();
    }
    Process& holder(std::vector<std::string> args, const As& who = {}) {
        std::vector<std::string> argv = {"/usr/bin/python3", clients + "lease_holder.py"};
        argv.insert(argv.end(), args.begin(), args.end());
        return spawn(argv, who);
    }
    Process& vclient(std::vector<std::string> args, const As& who = {}) {
        std::vector<std::string> argv = {"/usr/bin/python3", clients + "varlink_client.py", sock_};
        argv.insert(argv.end(), args.begin(), args.end());
        return spawn(argv, who);
    }
    // One call over each transport.
    Answer over_dbus(const std::string& path, const std::string& iface, const std::string& method,
                     std::vector<std::string> args, const As& who) {
        std::vector<std::string> argv = {"/usr/bin/python3", clients + "call.py", path, iface,
                                         method};
        argv.insert(argv.end(), args.begin(), args.end());
        if (who)
            argv = who(argv);
        auto r = run(argv, stack_->env());
        std::istringstream in(r.out);
        std::string word;
        in >> word;
        if (word == "OK") {
            // NEWFDS <count> [<kind> <access>]...
            const auto at = r.out.find("\nNEWFDS ");
            if (at == std::string::npos)
                return {"?", r.out + r.err, ""};
            std::istringstream fl(r.out.substr(at + 8, r.out.find('\n', at + 1) - at - 8));
            int n = 0;
            fl >> n;
            std::string fds;
            for (std::string kind, access; n-- > 0 && fl >> kind >> access;)
                fds += (fds.empty() ? "" : ",") + kind + " " + access;
            return {"OK", "", fds};
        }
        if (word != "ERROR")
            return {"?", r.out + r.err, ""};
        std::string name, message;
        in >> name;
        std::getline(in, message);
        return {short_name(name), message.empty() ? "" : message.substr(1), ""};
    }
    Answer over_varlink(const std::string& method, const json& params, const As& who) {
        std::vector<std::string> argv = {
            "/usr/bin/python3", clients + "varlink_client.py", sock_, "--exit", vl + method,
            params.dump()};
        if (who)
            argv = who(argv);
        auto r = run(argv);
        auto pos = r.out.find("\nREPLY ");
        if (pos != std::string::npos) {
            // FD <n> <kind> <access>, one line for each descriptor received.
            std::string fds;
            std::istringstream lines(r.out);
            for (std::string line; std::getline(lines, line);) {
                std::istringstream fl(line);
                std::string word, n, kind, access;
                if (fl >> word >> n >> kind >> access && word == "FD")
                    fds += (fds.empty() ? "" : ",") + kind + " " + access;
            }
            return {"OK", "", fds};
        }
        pos = r.out.find("\nERROR ");
        if (pos == std::string::npos)
            return {"?", r.out + r.err, ""};
        std::istringstream in(r.out.substr(pos + 7));
        std::string name, rest;
        in >> name;
        std::getline(in, rest);
        json p = json::parse(rest, nullptr, false);
        return {short_name(name), p.is_object() ? p.value("message", rest) : rest, ""};
    }
    json vreply(const std::string& method, const json& params = json::object()) {
        auto r = run({"/usr/bin/python3", clients + "varlink_client.py", sock_, "--exit",
                      vl + method, params.dump()});
        auto pos = r.out.find("REPLY ");
        if (pos == std::string::npos) {
            ADD_FAILURE() << method << " over varlink: " << r.out << r.err;
            return json();
        }
        return json::parse(r.out.substr(pos + 6, r.out.find('\n', pos) - pos - 6));
    }
    // A lease (Acquire) or capture (OpenCapture) held by a varlink
    // connection of `who` that stays open: its id, once the whole reply line
    // is there (0, and a failure, when none came).
    uint64_t held(const std::string& method, const json& params, const As& who) {
        auto& c = vclient({vl + method, params.dump()}, who);
        size_t pos = std::string::npos;
        std::string out;
        const bool replied = wait_until(
            [&] {
                out = c.log();
                pos = out.find("REPLY ");
                return pos != std::string::npos && out.find('\n', pos) != std::string::npos;
            },
            20s);
        if (!replied) {
            ADD_FAILURE() << method << " " << params.dump() << ": no reply: " << out;
            return 0;
        }
        const json r =
            json::parse(out.substr(pos + 6, out.find('\n', pos) - pos - 6), nullptr, false);
        json id;
        if (r.is_object() && method == "Acquire" && r.contains("lease") && r["lease"].is_object())
            id = r["lease"].value("id", json());
        else if (r.is_object() && method != "Acquire")
            id = r.value("capture", json());
        EXPECT_TRUE(id.is_number_unsigned()) << out;
        return id.is_number_unsigned() ? id.get<uint64_t>() : 0;
    }
    CommandResult busctl(std::vector<std::string> args) {
        std::vector<std::string> argv = {"busctl", "--system", "--json=short"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run(argv, stack_->env());
    }
    bool promisc(const std::string& dev) {
        auto s = link_state(*ns_, dev);
        return s && s->promisc();
    }

    TempDir state_;
    std::string sock_, config_, dev_, ifb_;
    std::unique_ptr<BusStack> stack_;
    std::unique_ptr<Netns> ns_;
    std::unique_ptr<Process> daemon_;
    std::vector<std::unique_ptr<Process>> procs_;
    int starts_ = 0;
};

} // namespace

// One table of requests, run against both transports: the same error, with
// the same message, or success on both.
TEST_F(Contract, TheSameRequestGetsTheSameAnswerOnBothTransports) {
    write_file(config_, R"({"quotas": {"leases_per_uid": 1}})");
    start_daemon();
    // pdallow holds one lease (its quota), root one on the ifb.
    auto& mine = holder({dev_}, as(kAllowedUser));
    ASSERT_NE(mine.wait_for_output("LEASE "), std::string::npos) << mine.log();
    auto& roots = vclient({vl + "Acquire", json{{"interface", ifb_}}.dump()});
    ASSERT_NE(roots.wait_for_output("REPLY"), std::string::npos) << roots.log();
    const auto leases = vreply("ListLeases")["leases"];
    std::string root_id, mine_id;
    for (const auto& l : leases)
        (l["uid"] == 0 ? root_id : mine_id) = std::to_string(l["id"].get<uint64_t>());
    const std::string root_lease = root_path + "/lease/" + root_id;

    struct Row {
        const char* what;
        As who;
        // D-Bus: path, interface, method, signature and arguments.
        std::string path, iface, method;
        std::vector<std::string> args;
        // varlink: method and parameters.
        std::string vmethod;
        json params;
        std::string error; // expected short error name ("OK" for success)
    };
    const TestUser& allow = kAllowedUser;
    const TestUser& deny = kDeniedUser;
    const std::string opts_tll = R"({"tll": ["t", 5]})";
    const std::vector<Row> rows = {
        {"unknown option",
         {},
         root_path,
         manager,
         "AcquireLease",
         {"sa{sv}", dev_, opts_tll},
         "Acquire",
         {{"interface", dev_}, {"tll", 5}},
         "InvalidArgument"},
        {"wrong type",
         {},
         root_path,
         manager,
         "AcquireLease",
         {"sa{sv}", dev_, R"({"ttl": ["s", "5"]})"},
         "Acquire",
         {{"interface", dev_}, {"ttl", "5"}},
         "InvalidArgument"},
        {"invalid name",
         {},
         root_path,
         manager,
         "AcquireLease",
         {"sa{sv}", "eth/0", "{}"},
         "Acquire",
         {{"interface", "eth/0"}},
         "InvalidArgument"},
        {"bad escape",
         {},
         root_path,
         manager,
         "AcquireLease",
         {"sa{sv}", "v\\q", "{}"},
         "Acquire",
         {{"interface", "v\\q"}},
         "InvalidArgument"},
        {"no such link",
         {},
         root_path,
         manager,
         "AcquireLease",
         {"sa{sv}", "nosuch0", "{}"},
         "Acquire",
         {{"interface", "nosuch0"}},
         "NoSuchInterface"},
        {"ttl too long",
         {},
         root_path,
         manager,
         "AcquireLease",
         {"sa{sv}", dev_, R"({"ttl": ["t", 99999999999]})"},
         "Acquire",
         {{"interface", dev_}, {"ttl", 99999999999ULL}},
         "InvalidArgument"},
        {"polkit says no",
         as(deny),
         root_path,
         manager,
         "AcquireLease",
         {"sa{sv}", dev_, "{}"},
         "Acquire",
         {{"interface", dev_}},
         "AccessDenied"},
        {"over the uid's quota",
         as(allow),
         root_path,
         manager,
         "AcquireLease",
         {"sa{sv}", ifb_, "{}"},
         "Acquire",
         {{"interface", ifb_}},
         "QuotaExceeded"},
        {"revoke a lease that never was",
         {},
         root_path,
         manager,
         "RevokeLease",
         {"os", root_path + "/lease/999", "x"},
         "Revoke",
         {{"id", 999}, {"reason", "x"}},
         "NoSuchLease"},
        {"revoke with too long a reason",
         {},
         root_path,
         manager,
         "RevokeLease",
         {"os", root_lease, std::string(300, 'r')},
         "Revoke",
         {{"id", std::stoull(root_id)}, {"reason", std::string(300, 'r')}},
         "InvalidArgument"},
        {"revoke another's lease without manage",
         as(deny),
         root_path,
         manager,
         "RevokeLease",
         {"os", root_lease, "x"},
         "Revoke",
         {{"id", std::stoull(root_id)}, {"reason", "x"}},
         "AccessDenied"},
        {"release another's lease",
         as(deny),
         root_lease,
         lease_iface,
         "Release",
         {""},
         "Release",
         {{"id", std::stoull(root_id)}},
         "NotOwner"},
        {"renew another's lease",
         as(deny),
         root_lease,
         lease_iface,
         "Renew",
         {"t", "60"},
         "Renew",
         {{"id", std::stoull(root_id)}, {"ttl", 60}},
         "NotOwner"},
        {"renew beyond the limit",
         {},
         root_lease,
         lease_iface,
         "Renew",
         {"t", "99999999999"},
         "Renew",
         {{"id", std::stoull(root_id)}, {"ttl", 99999999999ULL}},
         "InvalidArgument"},
        {"unknown policy",
         {},
         root_path,
         manager,
         "SetLinkPolicy",
         {"ss", dev_, "maybe"},
         "SetLinkPolicy",
         {{"interface", dev_}, {"policy", "maybe"}},
         "InvalidArgument"},
        {"policy of a missing link",
         {},
         root_path,
         manager,
         "SetLinkPolicy",
         {"ss", "nosuch0", "yield"},
         "SetLinkPolicy",
         {{"interface", "nosuch0"}, {"policy", "yield"}},
         "NoSuchInterface"},
        {"policy as a denied user",
         as(deny),
         root_path,
         manager,
         "SetLinkPolicy",
         {"ss", dev_, "yield"},
         "SetLinkPolicy",
         {{"interface", dev_}, {"policy", "yield"}},
         "AccessDenied"},
        {"snaplen out of range",
         {},
         root_path,
         manager,
         "OpenCapture",
         {"sa{sv}", dev_, R"({"snaplen": ["u", 0]})"},
         "OpenCapture",
         {{"interface", dev_}, {"snaplen", 0}},
         "InvalidArgument"},
        {"unknown format",
         {},
         root_path,
         manager,
         "OpenCapture",
         {"sa{sv}", dev_, R"({"format": ["s", "pcapx"]})"},
         "OpenCapture",
         {{"interface", dev_}, {"format", "pcapx"}},
         "InvalidArgument"},
        {"bad filter",
         {},
         root_path,
         manager,
         "OpenCapture",
         {"sa{sv}", dev_, R"({"filter": ["s", "udp port"]})"},
         "OpenCapture",
         {{"interface", dev_}, {"filter", "udp port"}},
         "InvalidFilter"},
        {"capture as a denied user",
         as(deny),
         root_path,
         manager,
         "OpenCapture",
         {"sa{sv}", dev_, "{}"},
         "OpenCapture",
         {{"interface", dev_}},
         "AccessDenied"},
    };
    for (const auto& r : rows) {
        SCOPED_TRACE(r.what);
        Answer d = over_dbus(r.path, r.iface, r.method, r.args, r.who);
        Answer v = over_varlink(r.vmethod, r.params, r.who);
        EXPECT_EQ(d.error, r.error) << "D-Bus: " << d;
        EXPECT_EQ(d, v) << "D-Bus and varlink differ";
        EXPECT_FALSE(d.message.empty());
    }
    // Nothing of it changed anything.
    EXPECT_EQ(vreply("ListLeases")["leases"].size(), 2u) << "both leases are still there";
    // (Held in a variable: a range over a member of a temporary dangles.)
    const json links = vreply("ListLinks")["links"];
    for (const auto& l : links)
        EXPECT_EQ(l["policy"], "enforce") << l;
}

// Every method, as every kind of caller, on both transports: the matrix of
// docs/SECURITY.md. polkit (kPromiscGroupRules) allows pdallow acquire and
// capture and refuses pddeny everything; what the rules leave to the .policy
// (auth_admin) needs a password, which a call that does not allow
// interactive authorization is told. Root is never asked. Owners need no
// authorization for their own leases; someone else's lease or capture is
// org.promiscd.manage.
TEST_F(Contract, EveryMethodAsEveryCaller) {
    write_file(config_, R"({"quotas": {"leases_per_uid": 100}})");
    start_daemon();
    // A lease or a capture held by a varlink connection of `who`: every lease
    // and capture has a D-Bus object too, so both transports can name it.
    auto hold = [&](const std::string& method, const json& params, const As& who) {
        return held(method, params, who);
    };
    auto lease_of = [&](const As& who) { return hold("Acquire", {{"interface", ifb_}}, who); };
    auto capture_of = [&](const As& who) {
        return hold("OpenCapture", {{"interface", ifb_}, {"promisc", false}}, who);
    };
    const std::string IAR = "InteractiveAuthorizationRequired";
    struct Caller {
        const char* name;
        As who;
        bool root, may_acquire; // pdallow: acquire and capture; pddeny: nothing
    };
    const std::vector<Caller> callers = {
        {"pddeny", as(kDeniedUser), false, false},
        {"pdallow", as(kAllowedUser), false, true},
        {"root", {}, true, true},
    };
    for (const auto& c : callers) {
        SCOPED_TRACE(c.name);
        // What a request that needs an action gets from this caller.
        auto needs = [&](bool granted) {
            if (c.root || granted)
                return std::string("OK");
            return std::string(c.may_acquire ? IAR : "AccessDenied");
        };
        const std::string manage = needs(false); // granted to nobody but root
        // The same request over both transports; same_target: both name the
        // same lease or capture, so the answers must match word for word.
        auto both = [&](const char* what, const std::string& path, const std::string& iface,
                        const std::string& method, std::vector<std::string> args,
                        const std::string& vmethod, const json& params, const std::string& expected,
                        bool same_target = true) {
            SCOPED_TRACE(what);
            Answer d = over_dbus(path, iface, method, args, c.who);
            EXPECT_EQ(d.error, expected) << "D-Bus: " << d;
            Answer v = over_varlink(vmethod, params, c.who);
            EXPECT_EQ(v.error, expected) << "varlink: " << v;
            if (same_target) {
                EXPECT_EQ(d, v) << "D-Bus and varlink differ";
            }
        };
        auto lease_path = [&](uint64_t id) { return root_path + "/lease/" + std::to_string(id); };
        // Reads: anyone.
        both("ListLinks", root_path, manager, "ListLinks", {""}, "ListLinks", json::object(), "OK");
        both("ListLeases", root_path, manager, "ListLeases", {""}, "ListLeases", json::object(),
             "OK");
        // Acquire and capture to a pipe: org.promiscd.promisc.acquire / .capture.
        both("acquire", root_path, manager, "AcquireLease", {"sa{sv}", dev_, "{}"}, "Acquire",
             {{"interface", dev_}}, needs(c.may_acquire));
        both("capture", root_path, manager, "OpenCapture",
             {"sa{sv}", dev_, R"({"promisc": ["b", false]})"}, "OpenCapture",
             {{"interface", dev_}, {"promisc", false}}, needs(c.may_acquire));
        // The raw socket and link policies: administrators only.
        both("raw socket", root_path, manager, "OpenCapture",
             {"sa{sv}", dev_, R"({"promisc": ["b", false], "format": ["s", "socket"]})"},
             "OpenCapture", {{"interface", dev_}, {"promisc", false}, {"format", "socket"}},
             manage);
        // (A change: asking for the policy a link already has is answered
        // without asking anyone, as it changes nothing.)
        both("policy", root_path, manager, "SetLinkPolicy", {"ss", dev_, "yield"}, "SetLinkPolicy",
             {{"interface", dev_}, {"policy", "yield"}}, manage);

        // Someone else's lease and capture: org.promiscd.manage (root's for the
        // users, pdallow's for root). A call that is granted ends its target,
        // so then each transport gets one of its own.
        const As owner = c.root ? as(kAllowedUser) : As{};
        uint64_t a = lease_of(owner), b = c.root ? lease_of(owner) : a;
        both("revoke another's", root_path, manager, "RevokeLease", {"os", lease_path(a), "test"},
             "Revoke", {{"id", b}, {"reason", "test"}}, manage, a == b);
        // Release, Renew and Stop of someone else's: org.promiscd.manage is
        // asked, and any refusal says NotOwner (root: granted; a release is
        // then a revocation).
        const std::string not_owner = c.root ? "OK" : "NotOwner";
        a = lease_of(owner), b = c.root ? lease_of(owner) : a;
        both("release another's", lease_path(a), lease_iface, "Release", {""}, "Release",
             {{"id", b}}, not_owner, a == b);
        a = lease_of(owner);
        both("renew another's", lease_path(a), lease_iface, "Renew", {"t", "60"}, "Renew",
             {{"id", a}, {"ttl", 60}}, not_owner);
        a = capture_of(owner), b = c.root ? capture_of(owner) : a;
        both("stop another's capture", root_path + "/capture/" + std::to_string(a),
             std::string(PROMISCD_BUS_NAME) + ".Capture", "Stop", {""}, "StopCapture", {{"id", b}},
             not_owner, a == b);

        // One's own lease (the connection that took it): no authorization at
        // all. pddeny can hold none.
        if (c.may_acquire) {
            SCOPED_TRACE("one's own");
            auto& d = holder({ifb_}, c.who);
            ASSERT_NE(d.wait_for_output("LEASE "), std::string::npos) << d.log();
            d.write_stdin("renew 60\n");
            EXPECT_NE(d.wait_for_output("RENEWED"), std::string::npos) << d.log();
            d.write_stdin("revoke mine\n");
            EXPECT_NE(d.wait_for_output("REVOKED"), std::string::npos) << d.log();
            EXPECT_NE(d.wait_for_output("ENDED released"), std::string::npos) << d.log();
            auto& v = vclient({vl + "Acquire", json{{"interface", ifb_}}.dump()}, c.who);
            ASSERT_NE(v.wait_for_output("REPLY"), std::string::npos) << v.log();
            const std::string out = v.log();
            const auto pos = out.find("REPLY ");
            const uint64_t id =
                json::parse(out.substr(pos + 6, out.find('\n', pos) - pos - 6))["lease"]["id"]
                    .get<uint64_t>();
            size_t mark = v.log().size();
            v.write_stdin("call " + vl + "Renew " + json{{"id", id}, {"ttl", 60}}.dump() + "\n");
            EXPECT_NE(v.wait_for_output("REPLY {}", 5s, mark), std::string::npos) << v.log();
            mark = v.log().size();
            v.write_stdin("call " + vl + "Revoke " + json{{"id", id}, {"reason", "mine"}}.dump() +
                          "\n");
            EXPECT_NE(v.wait_for_output("REPLY {}", 5s, mark), std::string::npos) << v.log();
        }
    }
}

// polkit granting one action at a time: the user it is granted to gets the
// requests of that action and of the actions it implies (the .policy's
// annotations), and no other, over both transports; every refused
// request changes nothing (leases, captures, link policies, the kernel's
// flag); a capture to a pipe brings the client the read end of a pipe and
// nothing else, the raw-socket action a packet socket and nothing else
// (what the client's fstat and /proc say).
TEST_F(Contract, EachActionGrantedAloneGrantsOnlyItsRequests) {
    write_file(config_, R"({"quotas": {"leases_per_uid": 100}})");
    start_daemon();
    const As user = as(kAllowedUser);
    // Root's lease and capture: the targets of the managing requests. A
    // request that is granted ends its target, so each transport then gets
    // one of its own.
    auto hold = [&](const std::string& method, const json& params) {
        return held(method, params, {});
    };
    // What a refusal must leave as it was.
    auto world = [&] {
        json w;
        w["leases"] = vreply("ListLeases")["leases"];
        w["links"] = vreply("ListLinks")["links"];
        auto tree = busctl({"--list", "tree", PROMISCD_BUS_NAME});
        w["objects"] = tree.out;
        w["promisc"] = {promisc(dev_), promisc(ifb_)};
        return w;
    };
    const std::string acquire = "org.promiscd.promisc.acquire", capture = "org.promiscd.capture",
                      raw = "org.promiscd.capture.raw-socket", manage = "org.promiscd.manage";
    // The .policy's org.freedesktop.policykit.imply annotations: polkit
    // grants an action to whoever it grants an action implying it.
    const std::map<std::string, std::set<std::string>> implies = {
        {acquire, {}}, {capture, {acquire}}, {raw, {capture, acquire}}, {manage, {acquire}}};
    for (const std::string& granted : {acquire, capture, raw, manage}) {
        SCOPED_TRACE("granted: " + granted);
        stack_->start_polkit(R"js(
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.promiscd.") != 0)
        return polkit.Result.NOT_HANDLED;
    if (subject.user == "pdallow" && action.id == ")js" +
                             granted + R"js(")
        return polkit.Result.YES;
    return polkit.Result.NO;
});
)js");
        struct Row {
            const char* what;
            std::string action;    // the one that grants it
            std::string refusal;   // the error when it is not granted
            std::string fds;       // what a granted call brings the client
            bool takes_root_lease; // ends (when granted) the target it names
            bool takes_root_capture;
        };
        const std::vector<Row> rows = {
            {"acquire", acquire, "AccessDenied", "", false, false},
            {"capture to a pipe", capture, "AccessDenied", "pipe r", false, false},
            {"capture on a raw socket", raw, "AccessDenied", "packet-socket rw", false, false},
            {"set a link's policy", manage, "AccessDenied", "", false, false},
            {"revoke root's lease", manage, "AccessDenied", "", true, false},
            {"release root's lease", manage, "NotOwner", "", true, false},
            {"renew root's lease", manage, "NotOwner", "", true, false},
            {"stop root's capture", manage, "NotOwner", "", false, true},
        };
        for (const auto& r : rows) {
            SCOPED_TRACE(r.what);
            const bool ok = r.action == granted || implies.at(granted).count(r.action);
            // Targets: the same for both transports unless the call ends it.
            uint64_t la = 0, lb = 0, ca = 0, cb = 0;
            if (r.takes_root_lease) {
                la = hold("Acquire", {{"interface", ifb_}});
                lb = ok ? hold("Acquire", {{"interface", ifb_}}) : la;
            }
            if (r.takes_root_capture) {
                ca = hold("OpenCapture", {{"interface", ifb_}, {"promisc", false}});
                cb = ok ? hold("OpenCapture", {{"interface", ifb_}, {"promisc", false}}) : ca;
            }
            const std::string lpath = root_path + "/lease/" + std::to_string(la);
            const json before = ok ? json() : world();
            Answer d, v;
            const std::string what = r.what;
            if (what == "acquire") {
                d = over_dbus(root_path, manager, "AcquireLease", {"sa{sv}", dev_, "{}"}, user);
                v = over_varlink("Acquire", {{"interface", dev_}}, user);
            } else if (what == "capture to a pipe") {
                d = over_dbus(root_path, manager, "OpenCapture",
                              {"sa{sv}", dev_, R"({"promisc": ["b", false]})"}, user);
                v = over_varlink("OpenCapture", {{"interface", dev_}, {"promisc", false}}, user);
            } else if (what == "capture on a raw socket") {
                d = over_dbus(
                    root_path, manager, "OpenCapture",
                    {"sa{sv}", dev_, R"({"promisc": ["b", false], "format": ["s", "socket"]})"},
                    user);
                v = over_varlink("OpenCapture",
                                 {{"interface", dev_}, {"promisc", false}, {"format", "socket"}},
                                 user);
            } else if (what == "set a link's policy") {
                d = over_dbus(root_path, manager, "SetLinkPolicy", {"ss", dev_, "yield"}, user);
                // (Set back by root when granted, so that varlink's call
                // changes something too, and the next rows start from enforce.)
                const json back = {{"interface", dev_}, {"policy", "enforce"}};
                if (ok) {
                    EXPECT_EQ(over_varlink("SetLinkPolicy", back, {}), (Answer{"OK", "", ""}));
                }
                v = over_varlink("SetLinkPolicy", {{"interface", dev_}, {"policy", "yield"}}, user);
                if (ok) {
                    EXPECT_EQ(over_varlink("SetLinkPolicy", back, {}), (Answer{"OK", "", ""}));
                }
            } else if (what == "revoke root's lease") {
                d = over_dbus(root_path, manager, "RevokeLease", {"os", lpath, "test"}, user);
                v = over_varlink("Revoke", {{"id", lb}, {"reason", "test"}}, user);
            } else if (what == "release root's lease") {
                d = over_dbus(lpath, lease_iface, "Release", {""}, user);
                v = over_varlink("Release", {{"id", lb}}, user);
            } else if (what == "renew root's lease") {
                d = over_dbus(lpath, lease_iface, "Renew", {"t", "60"}, user);
                v = over_varlink("Renew", {{"id", lb}, {"ttl", 60}}, user);
            } else if (what == "stop root's capture") {
                d = over_dbus(root_path + "/capture/" + std::to_string(ca),
                              std::string(PROMISCD_BUS_NAME) + ".Capture", "Stop", {""}, user);
                v = over_varlink("StopCapture", {{"id", cb}}, user);
            }
            const Answer expected = ok ? Answer{"OK", "", r.fds} : Answer{r.refusal, d.message, ""};
            EXPECT_EQ(d, expected) << "D-Bus";
            EXPECT_EQ(v.error, expected.error) << "varlink: " << v;
            EXPECT_EQ(v.fds, expected.fds) << "varlink: " << v;
            if (la == lb && ca == cb) {
                EXPECT_EQ(d, v) << "D-Bus and varlink differ";
            }
            if (!ok) {
                EXPECT_FALSE(d.message.empty());
                EXPECT_EQ(world(), before) << "a refused request changed something";
            }
            procs_.clear(); // root's holders: their leases and captures end
        }
    }
}

// The fault matrix: promiscd SIGKILLed at 24 points of a busy run — D-Bus
// and varlink clients acquiring and releasing, a capture holding a lease, a
// link renamed and back, static leases reloaded — then started again. After
// each restart every link's flag is set if and only if a lease on it is
// active, and the long-lived holders' leases survive (their owners never
// left the bus). The clients of the busy run are killed with the daemon:
// mid-call, mid-capture.
TEST_F(Contract, KilledAtManyPointsKeepsFlagsAndLeasesTrue) {
    std::vector<std::string> links;
    for (int i = 0; i < 6; ++i)
        links.push_back(add_ifb(*ns_));
    const std::string held_a = links[0], held_b = links[1], stat = links[2];
    const std::string churned = links[3], vchurned = links[4], captured = links[5];
    auto config = [&](bool second_static) {
        json c = {{"static_leases", json::array({{{"interface", stat}, {"reason", "tap"}}})}};
        if (second_static)
            c["static_leases"].push_back({{"interface", dev_}, {"reason", "reloaded"}});
        write_file(config_, c.dump());
    };
    config(false);
    start_daemon();
    auto& a = holder({held_a});
    auto& b = holder({held_b});
    ASSERT_NE(a.wait_for_output("LEASE "), std::string::npos) << a.log();
    ASSERT_NE(b.wait_for_output("LEASE "), std::string::npos) << b.log();
    const std::string varlink_churn =
        "import json, socket, sys\n"
        "c = socket.socket(socket.AF_UNIX); c.connect(sys.argv[1])\n"
        "def call(m, p):\n"
        "    c.sendall((json.dumps({'method': 'org.promiscd.promisc.' + m, 'parameters': p}) + "
        "'\\0').encode())\n"
        "    d = b''\n"
        "    while not d.endswith(b'\\0'):\n"
        "        x = c.recv(65536)\n"
        "        if not x: sys.exit(0)\n"
        "        d += x\n"
        "    return json.loads(d[:-1])\n"
        "while True:\n"
        "    r = call('Acquire', {'interface': sys.argv[2]})\n"
        "    if 'error' in r: sys.exit(1)\n"
        "    call('Release', {'id': r['parameters']['lease']['id']})\n";
    auto kernel_promisc = [&] {
        std::set<std::string> on;
        for (const auto& l : link_states(*ns_))
            if (std::find(l.flags.begin(), l.flags.end(), "PROMISC") != l.flags.end())
                on.insert(l.name);
        return on;
    };
    auto wanted = [&] {
        std::set<std::string> on;
        const json leases = vreply("ListLeases")["leases"];
        for (const auto& l : leases)
            if (l["state"] == "active")
                on.insert(l["interface"].get<std::string>());
        return on;
    };
    for (int k = 0; k < 24; ++k) {
        SCOPED_TRACE("kill point " + std::to_string(k));
        std::vector<Process*> busy;
        busy.push_back(&spawn({"/usr/bin/python3", clients + "churn.py", "100000", churned}));
        busy.push_back(&spawn({"/usr/bin/python3", "-c", varlink_churn, sock_, vchurned}));
        busy.push_back(&vclient(
            {vl + "OpenCapture", json{{"interface", captured}, {"promisc", true}}.dump()}));
        // Something else in flight at some of the points.
        if (k % 3 == 1)
            ns_->exec_ok("ip link set dev " + churned + " name " + churned +
                         "r && ip link set dev " + churned + "r name " + churned);
        if (k % 4 == 2) {
            config(k % 8 == 2);
            daemon_->signal(SIGHUP);
        }
        // 24 points spread over the first ~half second of the busy run.
        std::this_thread::sleep_for(std::chrono::milliseconds(20 + (k * 53) % 500));
        daemon_->signal(SIGKILL);
        daemon_->wait(10s);
        for (auto* p : busy)
            p->signal(SIGKILL);
        start_daemon();
        // Settled: the kernel's flags are exactly what the leases want.
        EXPECT_TRUE(wait_until([&] { return kernel_promisc() == wanted(); }, 10s))
            << "flags on: " << testing::PrintToString(kernel_promisc())
            << ", active leases on: " << testing::PrintToString(wanted()) << "\n"
            << daemon_->log();
        const auto on = kernel_promisc();
        EXPECT_TRUE(on.count(held_a) && on.count(held_b)) << "the holders' leases survive";
        EXPECT_TRUE(on.count(stat)) << "the static lease is back";
        EXPECT_FALSE(on.count(churned) || on.count(vchurned) || on.count(captured))
            << "nothing of the killed clients is left";
        EXPECT_EQ(a.log().find("ENDED"), std::string::npos) << a.log();
        EXPECT_EQ(b.log().find("ENDED"), std::string::npos) << b.log();
        if (HasFailure())
            break;
    }
    // The adopted lease is still the holder's own: it can release it.
    a.write_stdin("release\n");
    EXPECT_NE(a.wait_for_output("RELEASED"), std::string::npos) << a.log();
    EXPECT_TRUE(wait_until([&] { return !kernel_promisc().count(held_a); }));
}

// 1. Every lease has a D-Bus object, whatever created it: --hold, the
// configuration file, varlink, a capture. Their owners read the same on both
// transports, and D-Bus can end them.
TEST_F(Contract, EveryLeaseHasADBusObject) {
    auto tap = add_ifb(*ns_);
    write_file(config_, R"({"static_leases": [{"interface": ")" + tap + R"(", "reason": "tap"}]})");
    start_daemon({"--hold=" + ifb_});
    auto& monitor = spawn({"/usr/bin/python3", clients + "monitor.py"});
    ASSERT_NE(monitor.wait_for_output("READY"), std::string::npos) << monitor.log();
    auto& v = vclient({"--more", vl + "Acquire", json{{"interface", dev_}}.dump()});
    ASSERT_NE(v.wait_for_output("REPLY"), std::string::npos) << v.log();
    auto& cap = spawn({"/usr/bin/python3", clients + "capture_client.py", dev_, "{}", "--no-read"});
    ASSERT_NE(cap.wait_for_output("CAPTURE "), std::string::npos) << cap.log();

    auto leases = vreply("ListLeases")["leases"];
    ASSERT_EQ(leases.size(), 4u) << leases;
    auto managed = busctl({"call", PROMISCD_BUS_NAME, root_path,
                           "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"});
    ASSERT_EQ(managed.status, 0) << managed.err;
    std::map<std::string, std::string> owners; // varlink's view of each lease's owner
    for (const auto& l : leases) {
        const std::string path = root_path + "/lease/" + std::to_string(l["id"].get<uint64_t>());
        EXPECT_NE(managed.out.find("\"" + path + "\""), std::string::npos)
            << path << " is missing from GetManagedObjects";
        auto owner = busctl({"get-property", PROMISCD_BUS_NAME, path, lease_iface, "Owner"});
        EXPECT_EQ(owner.status, 0) << owner.err;
        EXPECT_NE(owner.out.find("\"" + l["owner"].get<std::string>() + "\""), std::string::npos)
            << "D-Bus says " << owner.out << ", varlink says " << l["owner"];
        owners[l["interface"]] += l["owner"].get<std::string>() + " ";
    }
    EXPECT_EQ(owners[ifb_], "config:hold ");
    EXPECT_EQ(owners[tap], "config:static ");
    EXPECT_NE(owners[dev_].find("varlink:"), std::string::npos) << owners[dev_];
    EXPECT_NE(owners[dev_].find(":1."), std::string::npos)
        << "the capture's lease: " << owners[dev_];
    // The varlink lease was announced on the bus, and D-Bus can end it.
    std::string vpath;
    for (const auto& l : leases)
        if (l["owner"].get<std::string>().rfind("varlink:", 0) == 0)
            vpath = root_path + "/lease/" + std::to_string(l["id"].get<uint64_t>());
    EXPECT_NE(monitor.wait_for_output("ADDED " + vpath + " " + lease_iface), std::string::npos)
        << monitor.log();
    auto release = busctl({"call", PROMISCD_BUS_NAME, vpath, lease_iface, "Release"});
    EXPECT_EQ(release.status, 0) << release.err;
    EXPECT_NE(v.wait_for_output("\"ended\": \"revoked\""), std::string::npos) << v.log();
}

// 2 and 3. Revoking one's own lease is releasing it (no authorization); a
// revocation's reason and revoker reach the owner on both transports, and
// the audit record.
TEST_F(Contract, RevocationsAndOwnRevocations) {
    start_daemon();
    // pdallow may not manage, yet revokes its own leases (the owner is the
    // connection that took it, as for Release).
    auto& mine = holder({dev_}, as(kAllowedUser));
    ASSERT_NE(mine.wait_for_output("LEASE "), std::string::npos) << mine.log();
    mine.write_stdin("revoke done\n");
    EXPECT_NE(mine.wait_for_output("REVOKED"), std::string::npos) << mine.log();
    EXPECT_NE(mine.wait_for_output("ENDED released"), std::string::npos) << mine.log();
    auto& vmine = vclient({vl + "Acquire", json{{"interface", dev_}}.dump()}, as(kAllowedUser));
    ASSERT_NE(vmine.wait_for_output("REPLY"), std::string::npos) << vmine.log();
    auto vid = vreply("ListLeases")["leases"][0]["id"].get<uint64_t>();
    vmine.write_stdin("call " + vl + "Revoke " + json{{"id", vid}}.dump() + "\n");
    EXPECT_NE(vmine.wait_for_output("REPLY {}"), std::string::npos) << vmine.log();
    EXPECT_TRUE(vreply("ListLeases")["leases"].empty());

    // root revokes others' leases with a reason.
    auto& dbus_owner = holder({dev_}, as(kAllowedUser));
    auto& vl_owner =
        vclient({"--more", vl + "Acquire", json{{"interface", ifb_}}.dump()}, as(kAllowedUser));
    ASSERT_NE(dbus_owner.wait_for_output("LEASE "), std::string::npos);
    ASSERT_NE(vl_owner.wait_for_output("REPLY"), std::string::npos);
    const auto held = vreply("ListLeases")["leases"];
    ASSERT_EQ(held.size(), 2u) << held;
    for (const auto& l : held) {
        auto r = over_varlink(
            "Revoke", {{"id", l["id"].get<uint64_t>()}, {"reason", "maintenance window"}}, {});
        EXPECT_EQ(r.error, "OK") << r;
    }
    EXPECT_NE(dbus_owner.wait_for_output("ENDED revoked"), std::string::npos) << dbus_owner.log();
    EXPECT_NE(dbus_owner.log().find("message=maintenance window"), std::string::npos)
        << dbus_owner.log();
    EXPECT_NE(dbus_owner.log().find("revoked_by_uid=0"), std::string::npos) << dbus_owner.log();
    EXPECT_NE(vl_owner.wait_for_output("\"ended\": \"revoked\""), std::string::npos)
        << vl_owner.log();
    EXPECT_NE(vl_owner.log().find("\"message\": \"maintenance window\""), std::string::npos)
        << vl_owner.log();
    EXPECT_NE(vl_owner.log().find("\"revoked_by_uid\": 0"), std::string::npos) << vl_owner.log();
    EXPECT_NE(daemon_->log().find("PROMISCD_REVOCATION=maintenance window"), std::string::npos)
        << daemon_->log();
}

// 5. Monitor hears of a lease only once the kernel set the flag: a lease the
// kernel refuses is never announced (promiscd here lacks CAP_NET_ADMIN).
TEST_F(Contract, NothingIsAnnouncedBeforeTheKernelAgreed) {
    start_daemon({}, {"setpriv", "--inh-caps=-net_admin", "--bounding-set=-net_admin", "--"});
    auto& monitor = vclient({"--more", vl + "Monitor"});
    ASSERT_NE(monitor.wait_for_output("subscribed"), std::string::npos) << monitor.log();
    auto r = over_varlink("Acquire", {{"interface", dev_}}, {});
    EXPECT_EQ(r.error, "Failed") << r;
    EXPECT_NE(r.message.find("cannot set promiscuous mode"), std::string::npos) << r;
    std::this_thread::sleep_for(300ms);
    EXPECT_EQ(monitor.log().find("lease-granted"), std::string::npos)
        << "a lease the kernel refused was announced: " << monitor.log();
    EXPECT_EQ(monitor.log().find("lease-ended"), std::string::npos) << monitor.log();
    // With the kernel's agreement the order is: granted, then the flag.
    expect_clean_stop(*daemon_);
    daemon_.reset();
    start_daemon();
    auto& m2 = vclient({"--more", vl + "Monitor"});
    ASSERT_NE(m2.wait_for_output("subscribed"), std::string::npos) << m2.log();
    EXPECT_EQ(over_varlink("Acquire", {{"interface", dev_}}, {}).error, "OK");
    EXPECT_NE(m2.wait_for_output("\"by\": \"promiscd\""), std::string::npos) << m2.log();
    EXPECT_LT(m2.log().find("lease-granted"), m2.log().find("\"by\": \"promiscd\"")) << m2.log();
}

// 6 and 7. ttl 0 is no expiry (acquire and renew); varlink takes "parameters":
// null as none.
TEST_F(Contract, TtlZeroAndNullParameters) {
    start_daemon();
    auto& d = holder({dev_, "--ttl", "0"});
    ASSERT_NE(d.wait_for_output("LEASE "), std::string::npos) << d.log();
    auto& v = vclient({vl + "Acquire", json{{"interface", ifb_}, {"ttl", 0}}.dump()});
    ASSERT_NE(v.wait_for_output("REPLY"), std::string::npos) << v.log();
    EXPECT_NE(v.log().find("\"expires\": null"), std::string::npos) << v.log();
    const json leases = vreply("ListLeases")["leases"];
    for (const auto& l : leases)
        EXPECT_TRUE(l["expires"].is_null()) << l;
    d.write_stdin("renew 0\n");
    EXPECT_NE(d.wait_for_output("RENEWED"), std::string::npos) << d.log();
    auto raw = run({"/usr/bin/python3", clients + "varlink_client.py", sock_, "--exit", "--raw",
                    "b'{\"method\": \"org.varlink.service.GetInfo\", \"parameters\": null}\\0'"});
    EXPECT_NE(raw.out.find("REPLY {\"interfaces\""), std::string::npos) << raw.out;
}

// 8. A capture open during a crash: its lease does not outlive it, even with
// its client still on the bus.
TEST_F(Contract, CapturesLeaseEndsWithTheCrash) {
    start_daemon();
    auto& cap = spawn({"/usr/bin/python3", clients + "capture_client.py", dev_, "{}", "--no-read"});
    ASSERT_NE(cap.wait_for_output("CAPTURE "), std::string::npos) << cap.log();
    ASSERT_TRUE(promisc(dev_));
    daemon_->signal(SIGKILL);
    daemon_->wait(5s);
    ASSERT_TRUE(cap.running()) << "the client stays on the bus";
    start_daemon();
    EXPECT_TRUE(wait_until([&] { return !promisc(dev_); })) << "no capture holds it any more";
    EXPECT_TRUE(vreply("ListLeases")["leases"].empty());
}

// 9. An external change that enforce undoes at once is visible on D-Bus.
TEST_F(Contract, ExternalChangesAreVisibleOnDBus) {
    start_daemon();
    auto& monitor = spawn({"/usr/bin/python3", clients + "monitor.py"});
    ASSERT_NE(monitor.wait_for_output("READY"), std::string::npos) << monitor.log();
    auto& d = holder({dev_});
    ASSERT_NE(d.wait_for_output("LEASE "), std::string::npos) << d.log();
    ASSERT_NE(monitor.wait_for_output("FLAG " + dev_ + " on promiscd"), std::string::npos)
        << monitor.log();
    ns_->exec_ok("ip link set dev " + dev_ + " promisc off");
    EXPECT_NE(monitor.wait_for_output("FLAG " + dev_ + " off another agent"), std::string::npos)
        << monitor.log();
    EXPECT_TRUE(wait_until([&] { return promisc(dev_); })) << "enforce set it again";
    std::string link;
    const auto links = vreply("ListLinks")["links"];
    for (const auto& l : links)
        if (l["name"] == dev_)
            link = root_path + "/link/" + std::to_string(l["index"].get<int>());
    ASSERT_FALSE(link.empty()) << links;
    auto count = busctl({"get-property", PROMISCD_BUS_NAME, link,
                         std::string(PROMISCD_BUS_NAME) + ".Link", "ExternalChanges"});
    EXPECT_NE(count.out.find("\"data\":1"), std::string::npos) << count.out << count.err;
}

// 10. The daemon's own changes are never another agent's: with several
// clients acquiring and releasing at once, the loop makes many changes before
// it reads their echoes from the kernel, and must still tell them apart.
TEST_F(Contract, OwnChangesReadLateAreNotExternal) {
    start_daemon();
    std::vector<std::string> links = {dev_, ifb_};
    for (int i = 0; i < 4; ++i)
        links.push_back(add_ifb(*ns_));
    auto& monitor = spawn({"/usr/bin/python3", clients + "monitor.py"});
    ASSERT_NE(monitor.wait_for_output("READY"), std::string::npos) << monitor.log();
    std::vector<std::string> argv = {"/usr/bin/python3", clients + "churn.py", "40"};
    argv.insert(argv.end(), links.begin(), links.end());
    auto r = run(argv, stack_->env());
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_NE(r.out.find("DONE 240"), std::string::npos) << r.out;

    // The last Release's FlagChanged reached the monitor: everything before it too.
    const auto listed = vreply("ListLinks")["links"];
    for (const auto& l : listed) {
        if (std::find(links.begin(), links.end(), l["name"].get<std::string>()) == links.end())
            continue;
        EXPECT_EQ(l["external_changes"], 0) << l;
        EXPECT_FALSE(l["admin_flag"].get<bool>()) << l;
        EXPECT_FALSE(promisc(l["name"])) << l;
    }
    // Every change reached the monitor, each said to be promiscd's own.
    auto count = [&](const std::string& text) {
        const std::string log = monitor.log();
        size_t n = 0;
        for (size_t at = log.find(text); at != std::string::npos; at = log.find(text, at + 1))
            ++n;
        return n;
    };
    for (const auto& dev : links)
        EXPECT_TRUE(wait_until([&] { return count("FLAG " + dev + " off promiscd\n") == 40; }))
            << dev << ": " << count("FLAG " + dev + " off promiscd\n") << " clears seen\n"
            << monitor.log();
    EXPECT_EQ(monitor.log().find("another agent"), std::string::npos) << monitor.log();
}

// The objects the daemon serves have exactly the members of the XML contract:
// the same methods, properties (type and access) and signals, with the same
// argument types.
TEST_F(Contract, LiveInterfacesMatchTheXml) {
    start_daemon({"--hold=" + ifb_});
    auto& cap = spawn({"/usr/bin/python3", clients + "capture_client.py", dev_, "{}", "--no-read"});
    ASSERT_NE(cap.wait_for_output("CAPTURE "), std::string::npos) << cap.log();
    const std::string compare = R"py(
import sys, xml.etree.ElementTree as ET
import dbus
contract = ET.parse(sys.argv[1]).getroot()
bus = dbus.SystemBus()

def members(iface):
    out = set()
    for m in iface:
        if m.tag == "method" or m.tag == "signal":
            args = tuple((a.get("type"), a.get("direction", "in" if m.tag == "method" else "out"))
                         for a in m if a.tag == "arg")
            out.add((m.tag, m.get("name"), args))
        elif m.tag == "property":
            out.add((m.tag, m.get("name"), m.get("type"), m.get("access")))
    return out

bad = 0
for path in sys.argv[2:]:
    live = ET.fromstring(bus.get_object("org.promiscd.Promisc1", path, introspect=False)
                         .Introspect(dbus_interface="org.freedesktop.DBus.Introspectable"))
    for want in contract.findall("interface"):
        got = [i for i in live.findall("interface") if i.get("name") == want.get("name")]
        if not got:
            continue
        a, b = members(want), members(got[0])
        if a != b:
            bad += 1
            print(path, want.get("name"), "missing:", sorted(a - b), "extra:", sorted(b - a))
        else:
            print("SAME", path, want.get("name"))
sys.exit(1 if bad else 0)
)py";
    std::vector<std::string> argv = {"/usr/bin/python3", "-c", compare, PROMISCD_DBUS_XML,
                                     root_path};
    const json links = vreply("ListLinks")["links"];
    for (const auto& l : links)
        if (l["name"] == ifb_)
            argv.push_back(root_path + "/link/" + std::to_string(l["index"].get<int>()));
    const json leases = vreply("ListLeases")["leases"];
    for (const auto& l : leases)
        if (l["interface"] == ifb_)
            argv.push_back(root_path + "/lease/" + std::to_string(l["id"].get<uint64_t>()));
    argv.push_back(root_path + "/capture/1");
    auto r = run(argv, stack_->env());
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    for (const char* iface : {".Manager", ".Link", ".Lease", ".Capture"})
        EXPECT_NE(r.out.find(std::string(PROMISCD_BUS_NAME) + iface), std::string::npos)
            << iface << " was not compared: " << r.out << leases;
}
