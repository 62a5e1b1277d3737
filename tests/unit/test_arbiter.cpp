// The arbiter's rules, each as an event sequence and the commands it must
// produce (DESIGN.md "Lease semantics").
#include "core/arbiter.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <set>

#include <functional>

using namespace promiscd::core;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

namespace {

constexpr Usec sec = usec_per_sec;

// Commands as short strings, so expectations read like the rules.
std::string describe(const Command& c) {
    return std::visit(
        [](const auto& v) -> std::string {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, SetFlag>)
                return "set " + std::to_string(v.ifindex) + " " + v.name + (v.on ? " on" : " off");
            else if constexpr (std::is_same_v<T, LeaseStateChanged>)
                return "lease " + std::to_string(v.id) + " " + std::string(to_string(v.from)) +
                       "->" + std::string(to_string(v.to));
            else if constexpr (std::is_same_v<T, LeaseEnded>)
                return "lease " + std::to_string(v.lease.id) + " ended " +
                       std::string(to_string(v.reason));
            else if constexpr (std::is_same_v<T, ConflictDetected>)
                return "conflict " + v.name + " " + std::to_string(v.clears);
            else
                return "external " + v.name + (v.on ? " on" : " off");
        },
        c);
}

// The rule tables list what the daemon does; the reports of others' changes
// (ExternalFlagChange) are checked on their own below.
std::vector<std::string> describe(const Commands& cs) {
    std::vector<std::string> out;
    for (const auto& c : cs)
        if (!std::holds_alternative<ExternalFlagChange>(c))
            out.push_back(describe(c));
    return out;
}

std::vector<std::string> describe_all(const Commands& cs) {
    std::vector<std::string> out;
    for (const auto& c : cs)
        out.push_back(describe(c));
    return out;
}

LinkInfo link(int idx, const std::string& name, bool flag = false) {
    LinkInfo l;
    l.ifindex = idx;
    l.name = name;
    l.admin_flag = flag;
    l.promiscuity = flag ? 1 : 0;
    return l;
}

Owner owner(const std::string& id, uint32_t uid = 1000) {
    return Owner{"dbus", id, uid, 42, "tool"};
}

LeaseRequest req(const std::string& ifname, const std::string& who = ":1.1", uint32_t uid = 1000) {
    LeaseRequest r;
    r.interface = ifname;
    r.owner = owner(who, uid);
    return r;
}

// A test context: the arbiter, a clock, and a log of every command issued.
struct Ctx {
    Arbiter a;
    Usec now = 1000 * sec;
    explicit Ctx(Limits l = {}) : a(l) {}
    // Echo the daemon's own flag change back, as the kernel would (and as the
    // watcher marks it: superseded, since the table already holds it).
    void echo(const Commands& cs) {
        for (const auto& c : cs)
            if (const auto* s = std::get_if<SetFlag>(&c))
                a.link_changed(link(s->ifindex, s->name, s->on), now,
                               Arbiter::FlagNews::Superseded);
    }
};

ErrorCode code_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.code();
    }
    ADD_FAILURE() << "no error thrown";
    return ErrorCode::Failed;
}

std::string message_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

// ---------------------------------------------------------------- table

struct Step {
    std::string what;
    std::function<Commands(Ctx&)> event;
    std::vector<std::string> expect;
};
struct Scenario {
    std::string name;
    std::vector<LinkInfo> links;
    std::vector<Step> steps;
};

Step acquire(const std::string& ifname, const std::string& who, std::vector<std::string> expect,
             bool wait = false) {
    return {"acquire " + ifname + " by " + who,
            [=](Ctx& c) {
                auto r = req(ifname, who);
                r.wait = wait;
                auto res = c.a.acquire(r, c.now);
                c.echo(res.commands);
                return res.commands;
            },
            std::move(expect)};
}
Step release(LeaseId id, std::vector<std::string> expect) {
    return {"release " + std::to_string(id),
            [=](Ctx& c) {
                auto cs = c.a.release(id);
                c.echo(cs);
                return cs;
            },
            std::move(expect)};
}
// A notification from the kernel (another agent, or a link appearing).
Step notify(LinkInfo l, std::vector<std::string> expect, Usec advance = 0) {
    return {"notify " + l.name + (l.admin_flag ? " on" : " off"),
            [=](Ctx& c) {
                c.now += advance;
                auto cs = c.a.link_changed(l, c.now);
                c.echo(cs);
                return cs;
            },
            std::move(expect)};
}
Step removed(int idx, std::vector<std::string> expect) {
    return {"removed " + std::to_string(idx), [=](Ctx& c) { return c.a.link_removed(idx); },
            std::move(expect)};
}
Step policy(const std::string& ifname, Policy p, std::vector<std::string> expect) {
    return {"policy " + ifname + " " + std::string(to_string(p)),
            [=](Ctx& c) {
                auto cs = c.a.set_policy(ifname, p, c.now);
                c.echo(cs);
                return cs;
            },
            std::move(expect)};
}
Step owner_gone(const std::string& who, std::vector<std::string> expect) {
    return {"owner gone " + who,
            [=](Ctx& c) {
                auto cs = c.a.owner_gone("dbus", who);
                c.echo(cs);
                return cs;
            },
            std::move(expect)};
}
Step shutdown(std::vector<std::string> expect) {
    return {"shutdown", [](Ctx& c) { return c.a.shutdown(); }, std::move(expect)};
}

class Rules : public ::testing::TestWithParam<Scenario> {};

TEST_P(Rules, ProduceExpectedCommands) {
    const Scenario& s = GetParam();
    Ctx c;
    for (const auto& l : s.links)
        c.a.link_changed(l, c.now);
    for (const auto& step : s.steps) {
        c.now += sec;
        EXPECT_EQ(describe(step.event(c)), step.expect) << "at step: " << step.what;
    }
}

const std::vector<Scenario> scenarios = {
    {"FirstLeaseSetsFlagLastClearsIt",
     {link(2, "eth0")},
     {acquire("eth0", ":1.1", {"set 2 eth0 on"}), acquire("eth0", ":1.2", {}),
      release(1, {"lease 1 ended released"}),
      release(2, {"lease 2 ended released", "set 2 eth0 off"})}},
    {"AdminFlagSurvivesLastLease",
     {link(2, "eth0", true)},
     {acquire("eth0", ":1.1", {}), release(1, {"lease 1 ended released"})}},
    {"AdminSetsFlagAfterDaemonCleared",
     {link(2, "eth0")},
     {acquire("eth0", ":1.1", {"set 2 eth0 on"}),
      release(1, {"lease 1 ended released", "set 2 eth0 off"}), notify(link(2, "eth0", true), {}),
      acquire("eth0", ":1.1", {}), release(2, {"lease 2 ended released"})}},
    {"EnforceSetsAgainAfterExternalClear",
     {link(2, "eth0")},
     {acquire("eth0", ":1.1", {"set 2 eth0 on"}), notify(link(2, "eth0", false), {"set 2 eth0 on"}),
      release(1, {"lease 1 ended released", "set 2 eth0 off"})}},
    {"EnforceStopsFightingAfterSixClearsInTenSeconds",
     {link(2, "eth0")},
     {acquire("eth0", ":1.1", {"set 2 eth0 on"}), notify(link(2, "eth0", false), {"set 2 eth0 on"}),
      notify(link(2, "eth0", false), {"set 2 eth0 on"}),
      notify(link(2, "eth0", false), {"set 2 eth0 on"}),
      notify(link(2, "eth0", false), {"set 2 eth0 on"}),
      notify(link(2, "eth0", false), {"set 2 eth0 on"}),
      notify(link(2, "eth0", false), {"conflict eth0 6", "lease 1 active->overridden"}),
      // Someone sets it again: the lease is effective again, but the flag is
      // not the daemon's, so the last release leaves it alone.
      notify(link(2, "eth0", true), {"lease 1 overridden->active"}),
      release(1, {"lease 1 ended released"})}},
    {"ClearsSpreadOverMoreThanTheWindowAreNotAConflict",
     {link(2, "eth0")},
     {acquire("eth0", ":1.1", {"set 2 eth0 on"}),
      notify(link(2, "eth0", false), {"set 2 eth0 on"}, 2 * sec),
      notify(link(2, "eth0", false), {"set 2 eth0 on"}, 2 * sec),
      notify(link(2, "eth0", false), {"set 2 eth0 on"}, 2 * sec),
      notify(link(2, "eth0", false), {"set 2 eth0 on"}, 2 * sec),
      notify(link(2, "eth0", false), {"set 2 eth0 on"}, 2 * sec),
      notify(link(2, "eth0", false), {"set 2 eth0 on"}, 2 * sec),
      notify(link(2, "eth0", false), {"set 2 eth0 on"}, 2 * sec)}},
    {"YieldOverridesAtOnceAndComesBackWhenSetAgain",
     {link(2, "eth0")},
     {policy("eth0", Policy::Yield, {}), acquire("eth0", ":1.1", {"set 2 eth0 on"}),
      notify(link(2, "eth0", false), {"lease 1 active->overridden"}), acquire("eth0", ":1.2", {}),
      notify(link(2, "eth0", true), {"lease 1 overridden->active", "lease 2 overridden->active"}),
      release(1, {"lease 1 ended released"}), release(2, {"lease 2 ended released"})}},
    {"SwitchingToEnforceTakesTheLinkBack",
     {link(2, "eth0")},
     {policy("eth0", Policy::Yield, {}), acquire("eth0", ":1.1", {"set 2 eth0 on"}),
      notify(link(2, "eth0", false), {"lease 1 active->overridden"}),
      policy("eth0", Policy::Enforce, {"set 2 eth0 on", "lease 1 overridden->active"}),
      release(1, {"lease 1 ended released", "set 2 eth0 off"})}},
    {"LinkRemovedLeasePendingThenAppliedToNewLink",
     {link(2, "eth0")},
     {acquire("eth0", ":1.1", {"set 2 eth0 on"}), removed(2, {"lease 1 active->pending"}),
      notify(link(7, "eth0"), {"set 7 eth0 on", "lease 1 pending->active"}),
      release(1, {"lease 1 ended released", "set 7 eth0 off"})}},
    {"WaitOnAbsentLinkIsPendingUntilItAppears",
     {},
     {acquire("wan0", ":1.1", {}, true),
      notify(link(3, "wan0"), {"set 3 wan0 on", "lease 1 pending->active"})}},
    {"RenameAwayLeaseFollowsTheName",
     {link(2, "eth0")},
     {acquire("eth0", ":1.1", {"set 2 eth0 on"}),
      notify(link(2, "lan0", true), {"lease 1 active->pending", "set 2 lan0 off"}),
      notify(link(2, "eth0"), {"set 2 eth0 on", "lease 1 pending->active"})}},
    {"RenameIntoALeasedName",
     {link(3, "eth3")},
     {acquire("wan0", ":1.1", {}, true),
      notify(link(3, "wan0"), {"set 3 wan0 on", "lease 1 pending->active"})}},
    {"OwnerGoneEndsOnlyItsLeases",
     {link(2, "eth0"), link(3, "eth1")},
     {acquire("eth0", ":1.1", {"set 2 eth0 on"}), acquire("eth1", ":1.1", {"set 3 eth1 on"}),
      acquire("eth1", ":1.2", {}),
      owner_gone(":1.1",
                 {"lease 1 ended owner-gone", "lease 2 ended owner-gone", "set 2 eth0 off"}),
      owner_gone(":1.9", {})}},
    {"ShutdownClearsOnlyDaemonFlagsAndEndsAll",
     {link(2, "eth0"), link(3, "eth1", true), link(4, "eth2")},
     {acquire("eth0", ":1.1", {"set 2 eth0 on"}), acquire("eth1", ":1.1", {}),
      acquire("wan9", ":1.2", {}, true),
      shutdown({"set 2 eth0 off", "lease 1 ended daemon-shutdown", "lease 2 ended daemon-shutdown",
                "lease 3 ended daemon-shutdown"})}},
    {"SupersededNotificationsAreNotExternalChanges",
     {link(2, "eth0")},
     {{"acquire without echo",
       [](Ctx& c) { return c.a.acquire(req("eth0"), c.now).commands; },
       {"set 2 eth0 on"}},
      // Queued before our RTM_SETLINK (an operstate change), then the echo.
      {"stale and echo",
       [](Ctx& c) {
           auto cs = c.a.link_changed(link(2, "eth0", false), c.now, Arbiter::FlagNews::Superseded);
           auto more =
               c.a.link_changed(link(2, "eth0", true), c.now, Arbiter::FlagNews::Superseded);
           cs.insert(cs.end(), more.begin(), more.end());
           return cs;
       },
       {}},
      // Now a real clear.
      notify(link(2, "eth0", false), {"set 2 eth0 on"})}},
};

INSTANTIATE_TEST_SUITE_P(Arbiter, Rules, ::testing::ValuesIn(scenarios),
                         [](const auto& p) { return p.param.name; });

// ---------------------------------------------------------------- single rules

TEST(Arbiter, AbsentLinkWithoutWaitIsNoSuchInterface) {
    Ctx c;
    EXPECT_EQ(code_of([&] { c.a.acquire(req("eth9"), c.now); }), ErrorCode::NoSuchInterface);
    EXPECT_EQ(message_of([&] { c.a.acquire(req("eth9"), c.now); }),
              "interface 'eth9' does not exist");
    EXPECT_EQ(c.a.lease_count(), 0u);
}

TEST(Arbiter, NewLeaseReportsItsState) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    auto r1 = c.a.acquire(req("eth0"), c.now);
    EXPECT_EQ(c.a.get(r1.id).state, LeaseState::Active);
    auto w = req("wan0");
    w.wait = true;
    auto r2 = c.a.acquire(w, c.now);
    EXPECT_EQ(c.a.get(r2.id).state, LeaseState::Pending);
    EXPECT_THAT(describe(r2.commands), IsEmpty());
}

TEST(Arbiter, OriginTracksWhoSetTheFlag) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    c.a.link_changed(link(3, "eth1", true), c.now);
    EXPECT_EQ(c.a.link(2)->origin, Origin::None);
    EXPECT_EQ(c.a.link(3)->origin, Origin::Admin);
    c.echo(c.a.acquire(req("eth0"), c.now).commands);
    EXPECT_EQ(c.a.link(2)->origin, Origin::Daemon);
    EXPECT_EQ(c.a.link(2)->leases, 1u);
    EXPECT_EQ(c.a.daemon_set_links(), std::set<int>{2});
}

TEST(Arbiter, TtlExpiresAndRenewExtends) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    auto r = req("eth0");
    r.ttl = 30 * sec;
    auto t0 = c.now;
    auto res = c.a.acquire(r, t0);
    c.echo(res.commands);
    EXPECT_EQ(c.a.next_expiry(), t0 + 30 * sec);
    EXPECT_THAT(describe(c.a.expire(t0 + 29 * sec)), IsEmpty());
    c.a.renew(res.id, 60 * sec, t0 + 29 * sec);
    EXPECT_EQ(c.a.next_expiry(), t0 + 89 * sec);
    EXPECT_THAT(describe(c.a.expire(t0 + 88 * sec)), IsEmpty());
    EXPECT_THAT(describe(c.a.expire(t0 + 89 * sec)),
                ElementsAre("lease 1 ended expired", "set 2 eth0 off"));
    EXPECT_EQ(c.a.next_expiry(), std::nullopt);
}

TEST(Arbiter, RenewAndReleaseOfEndedOrUnknownLeases) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    auto id = c.a.acquire(req("eth0"), c.now).id;
    c.a.release(id);
    EXPECT_EQ(code_of([&] { c.a.release(id); }), ErrorCode::NoSuchLease);
    EXPECT_EQ(message_of([&] { c.a.release(id); }), "lease 1 has already ended");
    EXPECT_EQ(code_of([&] { c.a.renew(id, 10 * sec, c.now); }), ErrorCode::NoSuchLease);
    EXPECT_EQ(message_of([&] { c.a.renew(99, 10 * sec, c.now); }), "there is no lease 99");
    EXPECT_EQ(code_of([&] { c.a.get(0); }), ErrorCode::NoSuchLease);
}

TEST(Arbiter, BadTtlIsInvalidArgumentAndChangesNothing) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    auto r = req("eth0");
    r.ttl = sec / 2;
    EXPECT_EQ(code_of([&] { c.a.acquire(r, c.now); }), ErrorCode::InvalidArgument);
    r.ttl = c.a.limits().max_ttl + sec;
    EXPECT_EQ(code_of([&] { c.a.acquire(r, c.now); }), ErrorCode::InvalidArgument);
    EXPECT_EQ(c.a.lease_count(), 0u);
    EXPECT_EQ(c.a.link(2)->info.admin_flag, false);
    auto id = c.a.acquire(req("eth0"), c.now).id;
    EXPECT_EQ(code_of([&] { c.a.renew(id, 10, c.now); }), ErrorCode::InvalidArgument);
    EXPECT_EQ(c.a.get(id).expires, std::nullopt);
}

TEST(Arbiter, TtlZeroMeansNoExpiry) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    auto r = req("eth0");
    r.ttl = 0;
    auto id = c.a.acquire(r, c.now).id;
    EXPECT_EQ(c.a.get(id).expires, std::nullopt);
    EXPECT_EQ(c.a.next_expiry(), std::nullopt);
    c.a.renew(id, 30 * sec, c.now);
    EXPECT_EQ(c.a.next_expiry(), c.now + 30 * sec);
    c.a.renew(id, 0, c.now);
    EXPECT_EQ(c.a.get(id).expires, std::nullopt) << "renew(0) lifts the expiry";
    EXPECT_EQ(c.a.next_expiry(), std::nullopt);
    EXPECT_TRUE(c.a.expire(c.now + 3600 * sec).empty());
}

TEST(Arbiter, RevocationIsCarriedToTheEnd) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    auto id = c.a.acquire(req("eth0"), c.now).id;
    auto cmds =
        c.a.release(id, EndReason::Revoked, Revocation{"varlink:3 (uid 0)", 0, "maintenance"});
    const LeaseEnded* e = nullptr;
    for (const auto& cmd : cmds)
        if (auto* x = std::get_if<LeaseEnded>(&cmd))
            e = x;
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->reason, EndReason::Revoked);
    ASSERT_TRUE(e->revocation);
    EXPECT_EQ(e->revocation->message, "maintenance");
    EXPECT_EQ(e->revocation->by_uid, 0u);
}

TEST(Arbiter, UnknownOriginIsNeverCleared) {
    Ctx c;
    c.a.link_changed(link(2, "eth0", true), c.now);
    c.a.adopt_unknown_flag(2);
    c.a.finish_adoption();
    EXPECT_EQ(c.a.link(2)->origin, Origin::Unknown);
    auto id = c.a.acquire(req("eth0"), c.now).id;
    EXPECT_EQ(c.a.get(id).state, LeaseState::Active);
    auto cmds = c.a.release(id);
    for (const auto& cmd : cmds)
        EXPECT_FALSE(std::holds_alternative<SetFlag>(cmd)) << "a flag of unknown origin stays";
    EXPECT_EQ(c.a.link(2)->origin, Origin::Unknown);
    c.a.link_changed(link(2, "eth0", false), c.now);
    EXPECT_EQ(c.a.link(2)->origin, Origin::None);
}

// The loop may read the echoes of many of our changes only after making them
// all: the watcher marks them superseded, and none is another agent's.
TEST(Arbiter, OwnChangesReadLateAreNotExternal) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    std::vector<bool> echoes;
    for (int i = 0; i < 10; ++i) {
        auto r = c.a.acquire(req("eth0"), c.now);
        auto rel = c.a.release(r.id);
        for (const auto* cs : {&r.commands, &rel})
            for (const auto& cmd : *cs)
                if (const auto* s = std::get_if<SetFlag>(&cmd))
                    echoes.push_back(s->on);
    }
    ASSERT_EQ(echoes.size(), 20u);
    for (bool on : echoes)
        EXPECT_THAT(c.a.link_changed(link(2, "eth0", on), c.now, Arbiter::FlagNews::Superseded),
                    IsEmpty());
    EXPECT_EQ(c.a.link(2)->external_changes, 0u);
    EXPECT_FALSE(c.a.link(2)->info.admin_flag);
    // What comes after the echoes is news again.
    c.a.link_changed(link(2, "eth0", true), c.now);
    EXPECT_EQ(c.a.link(2)->external_changes, 1u);
}

TEST(Arbiter, ExternalChangesAreCounted) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    c.a.acquire(req("eth0"), c.now);
    c.a.link_changed(link(2, "eth0", true), c.now,
                     Arbiter::FlagNews::Superseded); // our own change, echoed
    EXPECT_EQ(c.a.link(2)->external_changes, 0u);
    auto cmds = c.a.link_changed(link(2, "eth0", false), c.now); // someone cleared it
    EXPECT_EQ(c.a.link(2)->external_changes, 1u);
    // enforce sets it again at once: the view looks the same as before, but
    // the counter shows what happened.
    EXPECT_TRUE(std::find(cmds.begin(), cmds.end(), Command(SetFlag{2, "eth0", true})) !=
                cmds.end());
    EXPECT_EQ(c.a.link(2)->origin, Origin::Daemon);
}

// The indexes follow every change: counts per uid, per link and in all stay
// right across acquire, release, owner-gone, expiry and renames.
TEST(Arbiter, IndexesStayConsistent) {
    Limits l;
    l.leases_per_uid = 3;
    Ctx c(l);
    c.a.link_changed(link(2, "eth0"), c.now);
    c.a.link_changed(link(3, "eth1"), c.now);
    auto r = req("eth0", ":1.1", 1000);
    r.ttl = 5 * sec;
    auto a = c.a.acquire(r, c.now).id;
    c.a.acquire(req("eth1", ":1.1", 1000), c.now);
    c.a.acquire(req("eth0", ":1.2", 1000), c.now);
    EXPECT_EQ(c.a.leases_of_uid(1000), 3u);
    EXPECT_EQ(code_of([&] { c.a.acquire(req("eth1", ":1.3", 1000), c.now); }),
              ErrorCode::QuotaExceeded);
    EXPECT_EQ(c.a.link(2)->leases, 2u);
    EXPECT_EQ(c.a.active_count(), 3u);
    c.a.expire(c.now + 6 * sec);
    EXPECT_EQ(c.a.find(a), nullptr);
    EXPECT_EQ(c.a.leases_of_uid(1000), 2u);
    c.a.owner_gone("dbus", ":1.1");
    EXPECT_EQ(c.a.leases_of_uid(1000), 1u);
    EXPECT_EQ(c.a.link(3)->leases, 0u);
    // Rename eth0 away: its lease becomes pending, the new name has none.
    auto l2 = link(2, "eth9", true);
    c.a.link_changed(l2, c.now);
    EXPECT_EQ(c.a.link(2)->leases, 0u);
    EXPECT_EQ(c.a.active_count(), 0u);
    EXPECT_FALSE(c.a.link_by_name("eth0"));
    c.a.link_changed(link(3, "eth0"), c.now);
    EXPECT_EQ(c.a.link_by_name("eth0")->leases, 1u);
    EXPECT_EQ(c.a.active_count(), 1u);
    c.a.acquire(req("eth0", ":1.4", 1000), c.now);
    c.a.acquire(req("eth0", ":1.4", 1000), c.now);
    EXPECT_EQ(c.a.leases_of_uid(1000), 3u);
}

TEST(Arbiter, LongReasonIsRejected) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    auto r = req("eth0");
    r.reason = std::string(300, 'x');
    EXPECT_EQ(code_of([&] { c.a.acquire(r, c.now); }), ErrorCode::InvalidArgument);
}

TEST(Arbiter, QuotasRefuseAndChangeNothing) {
    Limits l;
    l.leases_per_uid = 2;
    l.leases_total = 3;
    Ctx c(l);
    c.a.link_changed(link(2, "eth0"), c.now);
    c.a.acquire(req("eth0", ":1.1", 1000), c.now);
    c.a.acquire(req("eth0", ":1.1", 1000), c.now);
    EXPECT_EQ(code_of([&] { c.a.acquire(req("eth0", ":1.1", 1000), c.now); }),
              ErrorCode::QuotaExceeded);
    EXPECT_EQ(message_of([&] { c.a.acquire(req("eth0", ":1.1", 1000), c.now); }),
              "uid 1000 already holds 2 leases (limit 2)");
    c.a.acquire(req("eth0", ":1.2", 1001), c.now);
    EXPECT_EQ(code_of([&] { c.a.acquire(req("eth0", ":1.3", 1002), c.now); }),
              ErrorCode::QuotaExceeded);
    EXPECT_EQ(c.a.lease_count(), 3u);
    EXPECT_EQ(c.a.next_id(), 4u) << "a refused request must not consume an id";
}

struct BadName {
    std::string name;
    std::string message;
};
class InterfaceNames : public ::testing::TestWithParam<BadName> {};

TEST_P(InterfaceNames, AreRejectedWithAReason) {
    Ctx c;
    try {
        c.a.acquire(req(GetParam().name), c.now);
        FAIL() << "accepted " << GetParam().name;
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
        EXPECT_EQ(std::string(e.what()), GetParam().message);
    }
    EXPECT_EQ(c.a.lease_count(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Arbiter, InterfaceNames,
    ::testing::Values(
        BadName{"", "invalid interface name: it is empty"},
        BadName{"abcdefghijklmnop",
                "invalid interface name 'abcdefghijklmnop': longer than 15 bytes"},
        BadName{"eth/0", "invalid interface name 'eth/0': contains '/'"},
        BadName{"eth:0", "invalid interface name 'eth:0': contains ':'"},
        BadName{"eth 0", "invalid interface name 'eth 0': contains whitespace or a "
                         "control character"},
        BadName{"eth\t0", "invalid interface name 'eth\\x090': contains whitespace "
                          "or a control character"},
        BadName{".", "invalid interface name '.': '.' and '..' are not interface names"},
        BadName{"..", "invalid interface name '..': '.' and '..' are not interface names"}));

TEST(Arbiter, LongestValidNameIsAccepted) {
    Ctx c;
    auto r = req("abcdefghijklmno");
    r.wait = true;
    EXPECT_NO_THROW(c.a.acquire(r, c.now));
}

TEST(Arbiter, SetPolicyOnAbsentLinkIsNoSuchInterface) {
    Ctx c;
    EXPECT_EQ(code_of([&] { c.a.set_policy("eth9", Policy::Yield, c.now); }),
              ErrorCode::NoSuchInterface);
}

TEST(Arbiter, PolicyPatternsGiveDefaults) {
    Ctx c;
    c.a.set_policy_patterns({{"veth*", Policy::Yield}, {"*", Policy::Enforce}});
    EXPECT_EQ(c.a.policy_for("veth12"), Policy::Yield);
    EXPECT_EQ(c.a.policy_for("eth0"), Policy::Enforce);
    c.a.link_changed(link(2, "veth12"), c.now);
    c.a.set_policy("veth12", Policy::Enforce, c.now);
    EXPECT_EQ(c.a.policy_for("veth12"), Policy::Enforce) << "explicit policy wins over pattern";
}

// A namespace's links join under qualified names: the same name in two
// namespaces is two links, and patterns match the link's own name.
TEST(Arbiter, NamespacesLinksAreLinksOfTheirOwn) {
    Ctx c;
    c.a.set_policy_patterns({{"veth*", Policy::Yield}});
    c.a.link_changed(link(2, "veth0"), c.now);
    c.a.link_changed(link(kFirstNamespaceIndex, qualify(77, "veth0")), c.now);
    EXPECT_EQ(c.a.policy_for(qualify(77, "veth0")), Policy::Yield);
    auto res = c.a.acquire(req(qualify(77, "veth0")), c.now);
    EXPECT_THAT(describe(res.commands),
                ElementsAre("set " + std::to_string(kFirstNamespaceIndex) + " 77/veth0 on"));
    EXPECT_EQ(c.a.link(2)->leases, 0u) << "the host's veth0 is another link";
    EXPECT_EQ(code_of([&] { c.a.check_acquire(req(qualify(78, "veth0"))); }),
              ErrorCode::NoSuchInterface);
    try {
        c.a.check_acquire(req(qualify(78, "veth0")));
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "interface 'veth0' in network namespace 78 does not exist");
    }
}

TEST(Arbiter, ResyncRemovesMissingLinksAndAppliesNewOnes) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    c.a.link_changed(link(3, "eth1"), c.now);
    c.echo(c.a.acquire(req("eth0"), c.now).commands);
    auto w = req("eth5");
    w.wait = true;
    c.a.acquire(w, c.now);
    // The dump says eth0 is gone and eth5 appeared (both notifications missed).
    auto cs = c.a.links_resynced({link(3, "eth1"), link(9, "eth5")}, c.now);
    EXPECT_THAT(describe(cs),
                ElementsAre("lease 1 active->pending", "set 9 eth5 on", "lease 2 pending->active"));
    EXPECT_FALSE(c.a.link(2));
}

TEST(Arbiter, FailedSetIsNotTheDaemonsFlag) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    auto res = c.a.acquire(req("eth0"), c.now);
    EXPECT_THAT(describe(res.commands), ElementsAre("set 2 eth0 on"));
    c.a.set_flag_failed(2, true);
    EXPECT_EQ(c.a.link(2)->origin, Origin::None);
    EXPECT_THAT(c.a.daemon_set_links(), IsEmpty());
}

TEST(Arbiter, AdoptionKeepsTheFlagWithoutFlicker) {
    Ctx c;
    c.a.link_changed(link(2, "eth0", true), c.now);
    c.a.link_changed(link(3, "eth1", true), c.now);
    c.a.link_changed(link(4, "eth2", true), c.now);
    Lease l;
    l.id = 17;
    l.interface = "eth0";
    l.owner = owner(":1.5");
    l.acquired = c.now - 100 * sec;
    c.a.adopt(l);
    c.a.adopt_daemon_flag(2, "eth0"); // held: stays on, no command
    c.a.adopt_daemon_flag(3, "eth1"); // nobody holds it any more: cleared
    c.a.adopt_daemon_flag(4, "ethX"); // name mismatch: never guess, left alone
    EXPECT_THAT(describe(c.a.finish_adoption()), ElementsAre("set 3 eth1 off"));
    EXPECT_EQ(c.a.get(17).state, LeaseState::Active);
    EXPECT_EQ(c.a.link(2)->origin, Origin::Daemon);
    EXPECT_EQ(c.a.link(4)->origin, Origin::Admin);
    EXPECT_EQ(c.a.next_id(), 18u);
    EXPECT_THAT(describe(c.a.release(17)),
                ElementsAre("lease 17 ended released", "set 2 eth0 off"));
}

TEST(Arbiter, OthersFlagChangesAreReportedOursAreNot) {
    Ctx c;
    c.a.link_changed(link(2, "eth0"), c.now);
    auto r = c.a.acquire(req("eth0"), c.now);
    // The kernel's echo of our own change is not someone else's.
    EXPECT_THAT(describe_all(c.a.link_changed(link(2, "eth0", true), c.now)), IsEmpty());
    EXPECT_THAT(describe_all(c.a.link_changed(link(2, "eth0", false), c.now)),
                ElementsAre("external eth0 off", "set 2 eth0 on"));
    c.a.link_changed(link(2, "eth0", true), c.now);
    c.a.release(r.id);
    c.a.link_changed(link(2, "eth0", false), c.now);
    EXPECT_THAT(describe_all(c.a.link_changed(link(2, "eth0", true), c.now)),
                ElementsAre("external eth0 on"));
}

TEST(Names, RoundTrip) {
    for (auto r : {EndReason::Released, EndReason::Expired, EndReason::OwnerGone,
                   EndReason::Revoked, EndReason::DaemonShutdown})
        EXPECT_EQ(parse_end_reason(to_string(r)), r);
    EXPECT_EQ(parse_policy("yield"), Policy::Yield);
    EXPECT_EQ(parse_policy("Yield"), std::nullopt);
    EXPECT_EQ(error_name(ErrorCode::QuotaExceeded), "QuotaExceeded");
}

} // namespace
