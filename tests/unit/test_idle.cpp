// Idle exit: armed only while nothing is held, fired once the time passed.
#include "idle.hpp"

#include <gtest/gtest.h>

using namespace promiscd;

TEST(Idle, TheRule) {
    EXPECT_TRUE(is_idle({}));
    EXPECT_FALSE(is_idle({1, 0, 0, 0}));
    EXPECT_FALSE(is_idle({0, 1, 0, 0}));
    EXPECT_FALSE(is_idle({0, 0, 1, 0}));
    EXPECT_FALSE(is_idle({0, 0, 0, 1})) << "a request waiting for polkit keeps the daemon";
}

TEST(Idle, ArmsWhenIdleAndFiresOnce) {
    sd_event* raw = nullptr;
    ASSERT_GE(sd_event_new(&raw), 0);
    EventPtr event(raw);
    IdleState state{1, 0, 0, 0};
    int fired = 0;
    IdleExit idle(
        event.get(), 1, [&] { return state; }, [&] { ++fired; });
    idle.update();
    EXPECT_FALSE(idle.armed()) << "a lease is held";
    state.leases = 0;
    idle.update();
    EXPECT_TRUE(idle.armed());
    state.connections = 1;
    idle.update();
    EXPECT_FALSE(idle.armed()) << "a client came";
    state.connections = 0;
    idle.update();
    for (int i = 0; i < 30 && !fired; ++i)
        sd_event_run(event.get(), 100'000);
    EXPECT_EQ(fired, 1);
}

TEST(Idle, ZeroSecondsNeverExits) {
    sd_event* raw = nullptr;
    ASSERT_GE(sd_event_new(&raw), 0);
    EventPtr event(raw);
    IdleExit idle(
        event.get(), 0, [] { return IdleState{}; }, [] {});
    idle.update();
    EXPECT_FALSE(idle.armed());
}
