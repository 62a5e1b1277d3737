// The rtnetlink adapters against the real kernel, each test in a namespace of its
// own: what LinkControl does must show in `ip link`, and what others do to a link
// (ip, tcpdump, a burst that overruns the socket) must reach LinkWatcher.
#include "net/link_control.hpp"
#include "net/link_watcher.hpp"
#include "netns.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <fcntl.h>
#include <linux/if.h>
#include <map>
#include <memory>
#include <set>
#include <systemd/sd-event.h>
#include <tuple>

using namespace promiscd::testing;
using promiscd::core::LinkInfo;
using promiscd::net::LinkControl;
using promiscd::net::LinkWatcher;
using promiscd::net::NetlinkError;
using ::testing::HasSubstr;

namespace {

LinkState state_of(const Netns& ns, const std::string& dev) {
    auto s = link_state(ns, dev);
    if (!s)
        throw std::runtime_error("link " + dev + " does not exist in " + ns.name());
    return *s;
}

std::unique_ptr<LinkControl> control_in(const Netns& ns) {
    Enter in(ns);
    return std::make_unique<LinkControl>();
}

// Everything a watcher reported, in order, and the view of the links that a user
// of the watcher would build from it.
struct Recorder {
    std::vector<LinkInfo> changed;
    std::vector<bool> superseded; // beside changed

    std::vector<std::pair<int, std::string>> removed;
    std::vector<std::vector<LinkInfo>> resynced;
    std::map<int, LinkInfo> view;

    void reset_view(const std::vector<LinkInfo>& links) {
        view.clear();
        for (const auto& l : links)
            view[l.ifindex] = l;
    }
    LinkWatcher::Callbacks callbacks() {
        return {
            .changed =
                [this](const LinkInfo& l, bool old) {
                    changed.push_back(l);
                    superseded.push_back(old);
                    view[l.ifindex] = l;
                },
            .removed =
                [this](int ifindex, const std::string& name) {
                    removed.emplace_back(ifindex, name);
                    view.erase(ifindex);
                },
            .resynced =
                [this](const std::vector<LinkInfo>& links) {
                    resynced.push_back(links);
                    reset_view(links);
                },
        };
    }
    bool saw(const std::function<bool(const LinkInfo&)>& pred) const {
        return std::any_of(changed.begin(), changed.end(), pred);
    }
};

std::unique_ptr<LinkWatcher> watcher_in(const Netns& ns, Recorder& rec, int rcvbuf = 0) {
    Enter in(ns);
    return std::make_unique<LinkWatcher>(rec.callbacks(), rcvbuf);
}

// Calls process() until nothing is left to read: one call handles a bounded
// slice, as one turn of the daemon's loop does.
unsigned drain(LinkWatcher& w) {
    unsigned calls = 0;
    pollfd p{w.fd(), POLLIN, 0};
    do {
        w.process();
        ++calls;
    } while (w.busy() || ::poll(&p, 1, 0) > 0);
    return calls;
}

// Calls process() until pred holds (notifications arrive asynchronously from the
// processes that cause them).
bool pump_until(LinkWatcher& w, const std::function<bool()>& pred) {
    return wait_until([&] {
        w.process();
        return pred();
    });
}

// What a user compares: the links `ip link` shows, and what the watcher says.
using Row = std::tuple<int, std::string, bool, unsigned, bool>;

std::set<Row> rows(const std::vector<LinkState>& links) {
    std::set<Row> out;
    for (const auto& l : links)
        out.emplace(l.ifindex, l.name, l.promisc(), l.promiscuity, l.up());
    return out;
}

template <class Range>
std::set<Row> rows_of(const Range& links) {
    std::set<Row> out;
    for (const auto& item : links) {
        const LinkInfo& l = [&]() -> const LinkInfo& {
            if constexpr (std::is_same_v<std::decay_t<decltype(item)>, LinkInfo>)
                return item;
            else
                return item.second;
        }();
        out.emplace(l.ifindex, l.name, l.admin_flag, l.promiscuity, (l.flags & IFF_UP) != 0);
    }
    return out;
}

// ---------------------------------------------------------------- LinkControl

void expect_control_toggles(const Netns& ns, const std::string& dev) {
    auto ctl = control_in(ns); // used after leaving: the socket stays in ns
    const int ifindex = state_of(ns, dev).ifindex;
    ASSERT_FALSE(state_of(ns, dev).promisc());

    ctl->set_promisc(ifindex, dev, true);
    auto on = state_of(ns, dev);
    EXPECT_TRUE(on.promisc()) << "ip link flags lack PROMISC after set_promisc(on)";
    EXPECT_EQ(on.promiscuity, 1u);

    ctl->set_promisc(ifindex, dev, false);
    auto off = state_of(ns, dev);
    EXPECT_FALSE(off.promisc()) << "ip link flags still show PROMISC after set_promisc(off)";
    EXPECT_EQ(off.promiscuity, 0u);
}

TEST(LinkControl, SetsAndClearsPromiscOnVeth) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto veth = add_veth(ns);
    expect_control_toggles(ns, veth.name);
    EXPECT_FALSE(state_of(ns, veth.peer_name).promisc()) << "the peer must not be touched";
}

TEST(LinkControl, SetsAndClearsPromiscOnIfb) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    expect_control_toggles(ns, add_ifb(ns));
}

TEST(LinkControl, SetsAndClearsPromiscOnPlainLink) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    // dummy where the kernel has it (not here: ifb stands in).
    expect_control_toggles(ns, add_plain_link(ns));
}

TEST(LinkControl, SettingTwiceIsHarmless) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto dev = add_ifb(ns);
    auto ctl = control_in(ns);
    const int ifindex = state_of(ns, dev).ifindex;
    ctl->set_promisc(ifindex, dev, true);
    ctl->set_promisc(ifindex, dev, true);
    // The admin bit is a bit, not a count: one clear undoes both.
    EXPECT_EQ(state_of(ns, dev).promiscuity, 1u);
    ctl->set_promisc(ifindex, dev, false);
    EXPECT_FALSE(state_of(ns, dev).promisc());
    EXPECT_EQ(state_of(ns, dev).promiscuity, 0u);
}

// Everything `ip -d link` shows about a link except the promiscuous bit and count.
void expect_same_but_promisc(const LinkState& before, const LinkState& after) {
    auto without_promisc = [](std::vector<std::string> flags) {
        std::erase(flags, "PROMISC");
        std::sort(flags.begin(), flags.end());
        return flags;
    };
    EXPECT_EQ(after.ifindex, before.ifindex);
    EXPECT_EQ(after.name, before.name);
    EXPECT_EQ(after.mtu, before.mtu);
    EXPECT_EQ(after.up(), before.up());
    EXPECT_EQ(after.allmulti(), before.allmulti());
    EXPECT_EQ(after.allmulti_count, before.allmulti_count);
    EXPECT_EQ(after.operstate, before.operstate);
    EXPECT_EQ(without_promisc(after.flags), without_promisc(before.flags));
}

void expect_only_promisc_changes(const Netns& ns, const std::string& dev) {
    auto ctl = control_in(ns);
    const auto before = state_of(ns, dev);
    ASSERT_FALSE(before.promisc());

    ctl->set_promisc(before.ifindex, dev, true);
    const auto on = state_of(ns, dev);
    EXPECT_TRUE(on.promisc());
    EXPECT_EQ(on.promiscuity, before.promiscuity + 1);
    expect_same_but_promisc(before, on);

    ctl->set_promisc(before.ifindex, dev, false);
    const auto off = state_of(ns, dev);
    EXPECT_FALSE(off.promisc());
    EXPECT_EQ(off.promiscuity, before.promiscuity);
    expect_same_but_promisc(before, off);
    EXPECT_EQ(off.flags, before.flags);
}

TEST(LinkControl, ChangesNothingButPromiscOnAnUpLink) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto veth = add_veth(ns);
    ns.exec_ok("ip link set dev " + veth.name + " mtu 1400 allmulticast on up && ip link set dev " +
               veth.peer_name + " up");
    ASSERT_TRUE(wait_until([&] { return state_of(ns, veth.name).operstate == "UP"; }));
    auto s = state_of(ns, veth.name);
    ASSERT_EQ(s.mtu, 1400u);
    ASSERT_TRUE(s.allmulti());
    ASSERT_TRUE(s.up());
    expect_only_promisc_changes(ns, veth.name);
}

TEST(LinkControl, ChangesNothingButPromiscOnADownLink) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto veth = add_veth(ns);
    ns.exec_ok("ip link set dev " + veth.name + " mtu 9000 allmulticast on");
    auto s = state_of(ns, veth.name);
    ASSERT_EQ(s.mtu, 9000u);
    ASSERT_TRUE(s.allmulti());
    ASSERT_FALSE(s.up());
    expect_only_promisc_changes(ns, veth.name);
}

TEST(LinkControl, ChangesNothingButPromiscOnAnIfb) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto dev = add_ifb(ns);
    ns.exec_ok("ip link set dev " + dev + " mtu 4000 allmulticast on up");
    ASSERT_TRUE(state_of(ns, dev).up());
    expect_only_promisc_changes(ns, dev);
}

TEST(LinkControl, UnknownIfindexIsAnErrorNamingTheLink) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto ctl = control_in(ns);
    try {
        ctl->set_promisc(2147483000, "ghost0", true);
        FAIL() << "set_promisc on a nonexistent link did not throw";
    } catch (const NetlinkError& e) {
        EXPECT_EQ(e.errnum(), ENODEV);
        EXPECT_STREQ(e.what(),
                     "cannot set promiscuous mode on 'ghost0' (index 2147483000): No such device");
    }
}

TEST(LinkControl, LinkRemovedBeforeTheCallIsAnErrorNamingTheLink) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto dev = add_ifb(ns);
    const int ifindex = state_of(ns, dev).ifindex;
    ns.exec_ok("ip link del dev " + dev);
    auto ctl = control_in(ns);
    try {
        ctl->set_promisc(ifindex, dev, false);
        FAIL() << "set_promisc on a removed link did not throw";
    } catch (const NetlinkError& e) {
        EXPECT_EQ(e.errnum(), ENODEV);
        EXPECT_THAT(e.what(), HasSubstr("cannot clear promiscuous mode on '" + dev + "' (index " +
                                        std::to_string(ifindex) + ")"));
        EXPECT_THAT(e.what(), HasSubstr("No such device"));
    }
    // The control stays usable after an error.
    auto other = add_ifb(ns);
    ctl->set_promisc(state_of(ns, other).ifindex, other, true);
    EXPECT_TRUE(state_of(ns, other).promisc());
}

// ---------------------------------------------------------------- LinkWatcher

TEST(LinkWatcher, StartDumpsTheLinksIpLinkShows) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto veth = add_veth(ns);
    auto ifb = add_ifb(ns);
    ns.exec_ok("ip link set dev " + ifb + " promisc on up");
    Recorder rec;
    auto w = watcher_in(ns, rec);

    auto links = w->start();
    EXPECT_EQ(rows_of(links), rows(link_states(ns)));
    EXPECT_EQ(rows_of(w->dump()), rows(link_states(ns)));

    // The notification socket is what a poll loop watches: it must never block
    // the loop, nor leak into children.
    EXPECT_TRUE(::fcntl(w->fd(), F_GETFL) & O_NONBLOCK);
    EXPECT_TRUE(::fcntl(w->fd(), F_GETFD) & FD_CLOEXEC);
    w->process(); // nothing pending: returns at once
    EXPECT_EQ(w->resync_count(), 0u);
}

TEST(LinkWatcher, SeesPromiscSetAndClearedByAnotherProcess) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto dev = add_ifb(ns);
    const int ifindex = state_of(ns, dev).ifindex;
    Recorder rec;
    auto w = watcher_in(ns, rec);
    rec.reset_view(w->start());

    ns.exec_ok("ip link set dev " + dev + " promisc on");
    ASSERT_TRUE(pump_until(*w, [&] { return rec.view[ifindex].admin_flag; }))
        << "no RTM_NEWLINK with IFF_PROMISC after `ip link set promisc on`";
    EXPECT_EQ(rec.view[ifindex].name, dev);
    EXPECT_EQ(rec.view[ifindex].promiscuity, 1u);
    EXPECT_TRUE(rec.view[ifindex].flags & IFF_PROMISC);

    ns.exec_ok("ip link set dev " + dev + " promisc off");
    ASSERT_TRUE(pump_until(*w, [&] { return !rec.view[ifindex].admin_flag; }))
        << "no RTM_NEWLINK without IFF_PROMISC after `ip link set promisc off`";
    EXPECT_EQ(rec.view[ifindex].promiscuity, 0u);
    EXPECT_TRUE(rec.removed.empty());
    EXPECT_TRUE(rec.resynced.empty());
}

TEST(LinkWatcher, SeesLinksAddedAndRemoved) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    Recorder rec;
    auto w = watcher_in(ns, rec);
    rec.reset_view(w->start());

    const std::string dev = unique_name("i");
    ns.exec_ok("ip link add name " + dev + " type ifb");
    ASSERT_TRUE(pump_until(*w, [&] { return rec.saw([&](auto& l) { return l.name == dev; }); }));
    const int ifindex = state_of(ns, dev).ifindex;
    EXPECT_TRUE(rec.saw([&](auto& l) { return l.name == dev && l.ifindex == ifindex; }));

    ns.exec_ok("ip link del dev " + dev);
    ASSERT_TRUE(pump_until(*w, [&] { return !rec.removed.empty(); }));
    EXPECT_EQ(rec.removed.front(), std::make_pair(ifindex, dev));
    EXPECT_EQ(rows_of(rec.view), rows(link_states(ns)));
}

TEST(LinkWatcher, RenameKeepsTheIfindex) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto veth = add_veth(ns);
    const int ifindex = state_of(ns, veth.name).ifindex;
    Recorder rec;
    auto w = watcher_in(ns, rec);
    rec.reset_view(w->start());

    const std::string renamed = unique_name("r");
    ns.exec_ok("ip link set dev " + veth.name + " name " + renamed);
    ASSERT_TRUE(pump_until(*w, [&] { return rec.view[ifindex].name == renamed; }));
    EXPECT_TRUE(rec.saw([&](auto& l) { return l.ifindex == ifindex && l.name == renamed; }));
    EXPECT_TRUE(rec.removed.empty()) << "a rename is not a removal";
    EXPECT_EQ(state_of(ns, renamed).ifindex, ifindex);
    EXPECT_FALSE(link_state(ns, veth.name));
}

TEST(LinkWatcher, LeavingABridgeIsNotARemoval) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto port = add_ifb(ns);
    const int ifindex = state_of(ns, port).ifindex;
    const std::string br = unique_name("b");
    ns.exec_ok("ip link add name " + br + " type bridge && ip link set dev " + port + " master " +
               br + " && ip link set dev " + br + " up && ip link set dev " + port + " up");
    Recorder rec;
    auto w = watcher_in(ns, rec);
    rec.reset_view(w->start());

    // The bridge reports its ports with AF_BRIDGE messages, and an AF_BRIDGE
    // RTM_DELLINK when a port leaves: the link itself stays.
    ns.exec_ok("ip link set dev " + port + " nomaster");
    ns.exec_ok("ip link set dev " + port + " promisc on"); // a marker: all before it is read
    ASSERT_TRUE(pump_until(*w, [&] { return rec.view[ifindex].admin_flag; }));
    EXPECT_TRUE(rec.removed.empty())
        << "removed(" << rec.removed.front().first << ", " << rec.removed.front().second << ")";
    EXPECT_EQ(rows_of(rec.view), rows(link_states(ns)));
}

TEST(LinkWatcher, PacketSocketRaisesPromiscuityButNotTheAdminFlag) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto veth = add_veth(ns);
    ns.exec_ok("ip link set dev " + veth.name + " up && ip link set dev " + veth.peer_name + " up");
    const int ifindex = state_of(ns, veth.name).ifindex;
    Recorder rec;
    auto w = watcher_in(ns, rec);
    rec.reset_view(w->start());

    {
        // tcpdump asks for promiscuous mode with PACKET_MR_PROMISC, by default.
        Process tcpdump(ns.wrap({"tcpdump", "-i", veth.name, "-w", "/dev/null"}));
        ASSERT_TRUE(pump_until(*w, [&] { return rec.view[ifindex].promiscuity == 1; }))
            << "no RTM_NEWLINK with IFLA_PROMISCUITY 1 while tcpdump runs\n"
            << tcpdump.log();
        EXPECT_FALSE(rec.view[ifindex].admin_flag);
        auto s = state_of(ns, veth.name);
        EXPECT_EQ(s.promiscuity, 1u);
        EXPECT_FALSE(s.promisc()) << "ip link shows PROMISC for a packet socket's request";

        // The admin bit and the packet socket count independently.
        auto ctl = control_in(ns);
        ctl->set_promisc(ifindex, veth.name, true);
        ASSERT_TRUE(pump_until(*w, [&] { return rec.view[ifindex].admin_flag; }));
        EXPECT_EQ(rec.view[ifindex].promiscuity, 2u);
        EXPECT_EQ(state_of(ns, veth.name).promiscuity, 2u);
        ctl->set_promisc(ifindex, veth.name, false);
        ASSERT_TRUE(pump_until(*w, [&] { return !rec.view[ifindex].admin_flag; }));
        EXPECT_EQ(rec.view[ifindex].promiscuity, 1u);

        EXPECT_TRUE(tcpdump.running()) << tcpdump.log();
        tcpdump.stop();
    }
    ASSERT_TRUE(pump_until(*w, [&] { return rec.view[ifindex].promiscuity == 0; }))
        << "promiscuity did not drop back after tcpdump exited";
    EXPECT_FALSE(rec.view[ifindex].admin_flag);
    EXPECT_EQ(state_of(ns, veth.name).promiscuity, 0u);
}

TEST(LinkWatcher, PeerInAnotherNamespaceIsNotSeen) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    Netns other;
    auto veth = add_veth(ns, other);
    ASSERT_TRUE(link_state(other, veth.peer_name));
    ASSERT_FALSE(link_state(ns, veth.peer_name));
    Recorder rec;
    auto w = watcher_in(ns, rec);
    auto links = w->start();
    EXPECT_EQ(rows_of(links), rows(link_states(ns)));

    other.exec_ok("ip link set dev " + veth.peer_name + " promisc on");
    ns.exec_ok("ip link set dev " + veth.name + " promisc on"); // marker
    const int ifindex = state_of(ns, veth.name).ifindex;
    ASSERT_TRUE(pump_until(*w, [&] {
        return rec.saw([&](auto& l) { return l.ifindex == ifindex && l.admin_flag; });
    }));
    EXPECT_FALSE(rec.saw([&](auto& l) { return l.name == veth.peer_name; }));
}

TEST(LinkWatcher, AttachedToSdEventDispatchesFromTheLoop) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto dev = add_ifb(ns);
    const int ifindex = state_of(ns, dev).ifindex;
    sd_event* raw = nullptr;
    ASSERT_GE(sd_event_new(&raw), 0);
    std::unique_ptr<sd_event, decltype(&sd_event_unref)> loop(raw, &sd_event_unref);
    Recorder rec;
    auto w = watcher_in(ns, rec);
    rec.reset_view(w->start());
    w->attach(loop.get());

    ns.exec_ok("ip link set dev " + dev + " promisc on");
    ASSERT_TRUE(wait_until([&] {
        EXPECT_GE(sd_event_run(loop.get(), 50'000), 0);
        return rec.view[ifindex].admin_flag;
    })) << "the sd-event source did not dispatch the notification";

    // Destroying the watcher removes its source: the loop runs on, without it.
    w.reset();
    ns.exec_ok("ip link set dev " + dev + " promisc off");
    EXPECT_GE(sd_event_run(loop.get(), 50'000), 0);
    EXPECT_TRUE(rec.view[ifindex].admin_flag);
}

// The daemon makes many changes before its loop reads their echoes: settled()
// marks every notification of the link up to the echo of the last change, so
// none of them reads as another agent's; a change by `ip` afterwards is news.
TEST(LinkWatcher, EchoesOfOurOwnChangesAreMarkedSuperseded) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    auto dev = add_ifb(ns);
    auto other = add_ifb(ns);
    const int ifindex = state_of(ns, dev).ifindex;
    const int other_index = state_of(ns, other).ifindex;
    Recorder rec;
    auto w = watcher_in(ns, rec);
    auto ctl = control_in(ns);
    rec.reset_view(w->start());

    // Another link's change in the middle stays news.
    for (int i = 0; i < 10; ++i) {
        ctl->set_promisc(ifindex, dev, true);
        w->settled(ifindex, true);
        if (i == 5)
            ns.exec_ok("ip link set dev " + other + " promisc on");
        ctl->set_promisc(ifindex, dev, false);
        w->settled(ifindex, false);
    }
    EXPECT_TRUE(w->busy()) << "settled() read nothing ahead";
    drain(*w);
    unsigned echoes = 0;
    for (size_t i = 0; i < rec.changed.size(); ++i) {
        if (rec.changed[i].ifindex == ifindex) {
            ++echoes;
            EXPECT_TRUE(rec.superseded[i]) << "echo " << i << " of our own change is news";
        } else if (rec.changed[i].ifindex == other_index) {
            EXPECT_FALSE(rec.superseded[i]) << "another link's change was marked ours";
        }
    }
    EXPECT_EQ(echoes, 20u) << "the kernel echoes each change of the admin bit";
    EXPECT_TRUE(rec.view[other_index].admin_flag);

    ns.exec_ok("ip link set dev " + dev + " promisc on");
    rec.changed.clear();
    rec.superseded.clear();
    ASSERT_TRUE(pump_until(*w, [&] { return rec.view[ifindex].admin_flag; }));
    ASSERT_EQ(rec.superseded.size(), 1u);
    EXPECT_FALSE(rec.superseded[0]) << "a change by `ip` after ours was marked superseded";
    EXPECT_TRUE(rec.resynced.empty());
}

// A burst of changes that overruns a tiny receive buffer: the kernel drops
// notifications and says so with ENOBUFS; the watcher must re-dump, and what it
// then reports must be what `ip link` shows.
std::string burst_batch(const TempDir& dir, const std::vector<std::string>& names) {
    std::string batch;
    for (const auto& n : names)
        batch += "link add name " + n + " type ifb\n";
    for (const auto& n : names)
        batch += "link set dev " + n + " promisc on\n";
    for (size_t i = 0; i < names.size(); ++i) {
        if (i % 3 == 0)
            batch += "link set dev " + names[i] + " promisc off\n";
        if (i % 7 == 0)
            batch += "link set dev " + names[i] + " up\n";
        if (i % 10 == 5)
            batch += "link del dev " + names[i] + "\n";
    }
    write_file(dir / "burst.batch", batch);
    return dir / "burst.batch";
}

std::vector<std::string> burst_names(size_t n) {
    std::vector<std::string> names;
    for (size_t i = 0; i < n; ++i)
        names.push_back("burst" + std::to_string(i));
    return names;
}

TEST(LinkWatcher, OverrunTriggersAResyncThatMatchesIpLink) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    TempDir dir;
    Recorder rec;
    auto w = watcher_in(ns, rec, 2048);
    rec.reset_view(w->start());

    const auto names = burst_names(200);
    run({"ip", "-n", ns.name(), "-batch", burst_batch(dir, names)});
    const auto expected = rows(link_states(ns));
    ASSERT_EQ(expected.size(), 1 + names.size() - names.size() / 10) << "the burst went wrong";

    drain(*w);
    EXPECT_GE(w->resync_count(), 1u) << "no overrun seen after a burst of ~800 notifications";
    ASSERT_FALSE(rec.resynced.empty());
    EXPECT_EQ(rec.resynced.size(), w->resync_count());
    EXPECT_EQ(rows_of(rec.resynced.back()), expected);
    EXPECT_EQ(rows_of(rec.view), expected);
    // Whatever survived in the queue before the overrun is older than the dump
    // and must not have been delivered.
    EXPECT_LT(rec.changed.size(), 3 * names.size());
    EXPECT_TRUE(rec.removed.empty()) << "a stale RTM_DELLINK was delivered after the resync";

    // The watcher carries on normally after the resync.
    const int ifindex = state_of(ns, "burst1").ifindex;
    ns.exec_ok("ip link set dev burst1 promisc off");
    ASSERT_TRUE(pump_until(*w, [&] { return !rec.view[ifindex].admin_flag; }));
    EXPECT_EQ(rows_of(rec.view), rows(link_states(ns)));
}

TEST(LinkWatcher, DefaultBufferFollowsABurstWithoutLosingAnything) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    TempDir dir;
    Recorder rec;
    auto w = watcher_in(ns, rec);
    rec.reset_view(w->start());

    // ~260 notifications. 1 MiB (2 MiB once the kernel has doubled it) holds
    // 500-1,000 of them; a burst of 400 links overflows it and resyncs instead.
    run({"ip", "-n", ns.name(), "-batch", burst_batch(dir, burst_names(100))});
    const unsigned calls = drain(*w);
    EXPECT_EQ(w->resync_count(), 0u);
    EXPECT_EQ(rows_of(rec.view), rows(link_states(ns)));
    // ~260 notifications do not fit one slice: the watcher gave the loop back
    // in between instead of reading them all in one go.
    EXPECT_GT(calls, 1u) << "one process() read more than " << LinkWatcher::kReadsPerDispatch
                         << " datagrams";
}

} // namespace
