// The daemon's wiring on the real kernel: the LinkWatcher -> Arbiter ->
// LinkControl loop driven in-process inside a namespace, and promiscd as a
// separate process (static leases, SIGTERM clean-up, command line).
#include "netns.hpp"
#include "process.hpp"
#include "service/lease_service.hpp"
#include "test_paths.h"

#include <csignal>
#include <gtest/gtest.h>

using namespace promiscd;
using namespace promiscd::testing;

namespace {

bool promisc(const Netns& ns, const std::string& dev) {
    auto s = link_state(ns, dev);
    return s && s->promisc();
}

// Runs the service in-process inside a fresh namespace.
class InProcess : public ::testing::Test {
protected:
    void SetUp() override {
        PROMISCD_REQUIRE_ROOT();
        ns_ = std::make_unique<Netns>();
        veth_ = add_veth(*ns_);
        ifb_ = add_ifb(*ns_);
        enter_ = std::make_unique<Enter>(*ns_);
        sd_event* e = nullptr;
        ASSERT_GE(sd_event_new(&e), 0);
        event_.reset(e);
        service_ = std::make_unique<service::LeaseService>(
            event_.get(), service::LeaseService::Options{}, changes_);
        service_->start();
        service_->publish();
    }
    void TearDown() override {
        service_.reset();
        event_.reset();
        enter_.reset();
        ns_.reset();
    }
    // One turn of the loop: dispatch what is pending, waiting up to `timeout`.
    void turn(uint64_t timeout_usec = 1'000'000) { sd_event_run(event_.get(), timeout_usec); }
    core::LeaseId acquire(const std::string& dev, const std::string& who) {
        core::LeaseRequest r;
        r.interface = dev;
        r.owner = {"test", who, 0, static_cast<uint32_t>(::getpid()), "itest"};
        return service_->acquire(r);
    }

    std::unique_ptr<Netns> ns_;
    VethPair veth_;
    std::string ifb_;
    std::unique_ptr<Enter> enter_;
    EventPtr event_;
    service::ChangeStream changes_;
    std::unique_ptr<service::LeaseService> service_;
};

TEST_F(InProcess, TwoLeasesFlagFollowsTheLastOne) {
    const auto& dev = veth_.name;
    ASSERT_FALSE(promisc(*ns_, dev));
    auto a = acquire(dev, "a");
    EXPECT_TRUE(promisc(*ns_, dev)) << "first lease sets the flag";
    auto b = acquire(dev, "b");
    EXPECT_TRUE(promisc(*ns_, dev));
    service_->release(a);
    turn(0);
    EXPECT_TRUE(promisc(*ns_, dev)) << "still held by the second lease";
    service_->release(b);
    turn(0);
    EXPECT_FALSE(promisc(*ns_, dev)) << "the last release clears the flag the daemon set";
    EXPECT_EQ(service_->arbiter().link_by_name(dev)->origin, core::Origin::None);
}

TEST_F(InProcess, AdminFlagSurvivesTheLastLease) {
    ns_->exec_ok("ip link set dev " + ifb_ + " promisc on");
    turn();
    EXPECT_EQ(service_->arbiter().link_by_name(ifb_)->origin, core::Origin::Admin);
    auto a = acquire(ifb_, "a");
    service_->release(a);
    turn(0);
    EXPECT_TRUE(promisc(*ns_, ifb_)) << "an administrator's flag is not the daemon's to clear";
}

TEST_F(InProcess, ExternalClearIsUndoneWithinOneTurn) {
    const auto& dev = veth_.name;
    acquire(dev, "a");
    turn(0);
    ASSERT_TRUE(promisc(*ns_, dev));
    ns_->exec_ok("ip link set dev " + dev + " promisc off");
    turn(); // the notification of the clear, and the daemon's answer
    EXPECT_TRUE(promisc(*ns_, dev)) << "enforce sets the flag again at once";
}

TEST_F(InProcess, LinkDeletedAndCreatedAgainGetsTheFlagAgain) {
    auto dev = add_ifb(*ns_);
    ASSERT_TRUE(wait_until([&] {
        turn(10'000);
        return service_->arbiter().link_by_name(dev).has_value();
    })) << "the watcher sees the new link";
    acquire(dev, "a");
    ASSERT_TRUE(promisc(*ns_, dev));
    ns_->exec_ok("ip link del dev " + dev);
    ASSERT_TRUE(wait_until([&] {
        turn(10'000);
        return service_->arbiter().leases()[0].state == core::LeaseState::Pending;
    }));
    ns_->exec_ok("ip link add dev " + dev + " type ifb");
    ASSERT_TRUE(wait_until([&] {
        turn(10'000);
        return promisc(*ns_, dev);
    })) << "the lease follows the name to the new link";
    EXPECT_EQ(service_->arbiter().leases()[0].state, core::LeaseState::Active);
}

TEST_F(InProcess, TtlExpiryClearsTheFlag) {
    const auto& dev = veth_.name;
    core::LeaseRequest r;
    r.interface = dev;
    r.owner = {"test", "ttl", 0, 1, "itest"};
    r.ttl = core::usec_per_sec;
    service_->acquire(r);
    ASSERT_TRUE(promisc(*ns_, dev));
    ASSERT_TRUE(wait_until(
        [&] {
            turn(100'000);
            return !promisc(*ns_, dev);
        },
        5s));
    EXPECT_EQ(service_->arbiter().lease_count(), 0u);
}

// ---------------------------------------------------------------- as a process

class DaemonProcess : public ::testing::Test {
protected:
    void SetUp() override {
        PROMISCD_REQUIRE_ROOT();
        write_file(state_ / "promiscd.json", "{}\n");
    }
    TempDir state_;
    // Every path pinned to the test: nothing of a promiscd on the host
    // (its state, socket or configuration) is read or touched.
    std::unique_ptr<Process> start(const Netns& ns, std::vector<std::string> args) {
        std::vector<std::string> argv = {PROMISCD_DAEMON_BINARY,
                                         "--log-target=console",
                                         "--log-level=debug",
                                         "--no-bus",
                                         "--state-dir=" + state_.path(),
                                         "--config=" + state_ / "promiscd.json",
                                         "--varlink=" + state_ / "io.promiscd"};
        argv.insert(argv.end(), args.begin(), args.end());
        return std::make_unique<Process>(ns.wrap(argv));
    }
};

TEST_F(DaemonProcess, SigtermClearsOnlyTheFlagsItSet) {
    Netns ns;
    auto veth = add_veth(ns);
    auto ifb = add_ifb(ns);
    ns.exec_ok("ip link set dev " + ifb + " promisc on");
    auto d = start(ns, {"--hold=" + veth.name, "--hold=" + ifb});
    ASSERT_TRUE(wait_until([&] { return promisc(ns, veth.name); })) << d->log();
    EXPECT_TRUE(promisc(ns, ifb));
    d->signal(SIGTERM);
    auto status = d->wait(10s);
    ASSERT_TRUE(status) << "promiscd did not exit on SIGTERM\n" << d->log();
    EXPECT_EQ(*status, 0) << d->log();
    EXPECT_FALSE(promisc(ns, veth.name)) << "the flag promiscd set is cleared\n" << d->log();
    EXPECT_TRUE(promisc(ns, ifb)) << "the administrator's flag is left alone\n" << d->log();
    EXPECT_NE(d->log().find("daemon-shutdown"), std::string::npos) << d->log();
    expect_clean_stop(*d); // exited already: no sanitizer report
}

TEST_F(DaemonProcess, HoldOnALinkThatAppearsLater) {
    Netns ns;
    auto name = unique_name("pl");
    auto d = start(ns, {"--hold=" + name});
    ASSERT_TRUE(wait_until([&] { return d->log().find("watching") != std::string::npos; }))
        << d->log();
    add_ifb(ns, name);
    EXPECT_TRUE(wait_until([&] { return promisc(ns, name); })) << d->log();
    d->signal(SIGINT);
    auto status = d->wait(10s);
    ASSERT_TRUE(status) << d->log();
    EXPECT_EQ(*status, 0) << d->log();
    EXPECT_FALSE(promisc(ns, name)) << d->log();
    expect_clean_stop(*d);
}

TEST_F(DaemonProcess, CommandLine) {
    auto help = run({PROMISCD_DAEMON_BINARY, "--help"});
    EXPECT_EQ(help.status, 0);
    EXPECT_NE(help.out.find("Usage: promiscd"), std::string::npos);
    auto version = run({PROMISCD_DAEMON_BINARY, "--version"});
    EXPECT_EQ(version.status, 0);
    EXPECT_NE(version.out.find("promiscd "), std::string::npos);
    auto bad = run({PROMISCD_DAEMON_BINARY, "--no-such-option"});
    EXPECT_EQ(bad.status, 2);
    auto bad_name = run({PROMISCD_DAEMON_BINARY, "--hold=eth/0"});
    EXPECT_EQ(bad_name.status, 2);
    EXPECT_NE(bad_name.err.find("contains '/'"), std::string::npos) << bad_name.err;
    auto bad_level = run({PROMISCD_DAEMON_BINARY, "--log-level=loud"});
    EXPECT_EQ(bad_level.status, 2);
    EXPECT_NE(bad_level.err.find("unknown log level 'loud'"), std::string::npos);
}

} // namespace
