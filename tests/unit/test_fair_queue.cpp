// The fair queue of costly work: bounds in flight and queued, per caller and in
// all; round-robin across callers; denied callers wait behind the others.
#include "sched/fair_queue.hpp"

#include <gtest/gtest.h>
#include <vector>

using promiscd::sched::FairQueue;
using promiscd::sched::QueueLimits;

namespace {

constexpr uint64_t sec = 1'000'000;

struct Recorder {
    std::vector<std::pair<uint32_t, uint64_t>> started; // caller, ticket
    FairQueue::Start start(uint32_t caller) {
        return [this, caller](uint64_t t) { started.emplace_back(caller, t); };
    }
    std::vector<uint32_t> callers() const {
        std::vector<uint32_t> out;
        for (auto& [c, t] : started)
            out.push_back(c);
        return out;
    }
};

QueueLimits limits(unsigned total, unsigned per_caller, unsigned queued_per_caller = 16,
                   unsigned queued_total = 512) {
    QueueLimits l;
    l.in_flight_total = total;
    l.in_flight_per_caller = per_caller;
    l.queued_per_caller = queued_per_caller;
    l.queued_total = queued_total;
    return l;
}

} // namespace

TEST(FairQueue, StartsAtOnceWhileSlotsAreFree) {
    FairQueue q(limits(2, 2));
    Recorder r;
    ASSERT_TRUE(q.submit(1000, 0, r.start(1000)));
    ASSERT_TRUE(q.submit(1000, 0, r.start(1000)));
    EXPECT_EQ(r.started.size(), 2u);
    EXPECT_EQ(q.in_flight(), 2u);
    ASSERT_TRUE(q.submit(1000, 0, r.start(1000)));
    EXPECT_EQ(r.started.size(), 2u) << "the third waits for a slot";
    EXPECT_EQ(q.queued(), 1u);
    q.finished(r.started[0].second, false, 0);
    EXPECT_EQ(r.started.size(), 3u);
    EXPECT_EQ(q.queued(), 0u);
}

TEST(FairQueue, PerCallerBoundLeavesSlotsForOthers) {
    FairQueue q(limits(4, 1));
    Recorder r;
    for (int i = 0; i < 5; ++i)
        ASSERT_TRUE(q.submit(1000, 0, r.start(1000)));
    EXPECT_EQ(r.started.size(), 1u) << "one in flight per caller";
    ASSERT_TRUE(q.submit(2000, 0, r.start(2000)));
    EXPECT_EQ(r.callers(), (std::vector<uint32_t>{1000, 2000}));
}

TEST(FairQueue, FullQueuesRefuseAndQueueNothing) {
    FairQueue q(limits(1, 1, 2, 3));
    Recorder r;
    ASSERT_TRUE(q.submit(1000, 0, r.start(1000))); // running
    ASSERT_TRUE(q.submit(1000, 0, r.start(1000))); // queued 1
    ASSERT_TRUE(q.submit(1000, 0, r.start(1000))); // queued 2
    EXPECT_FALSE(q.submit(1000, 0, r.start(1000))) << "per-caller queue full";
    EXPECT_NE(q.refusal(1000, "checks").find("uid 1000 already has 2"), std::string::npos)
        << q.refusal(1000, "checks");
    ASSERT_TRUE(q.submit(2000, 0, r.start(2000))); // queued 3 (global limit)
    EXPECT_FALSE(q.submit(3000, 0, r.start(3000))) << "global queue full";
    EXPECT_NE(q.refusal(3000, "checks").find("limit 3"), std::string::npos)
        << q.refusal(3000, "checks");
    EXPECT_EQ(q.queued(), 3u);
}

TEST(FairQueue, RoundRobinAcrossCallers) {
    FairQueue q(limits(1, 1));
    Recorder r;
    ASSERT_TRUE(q.submit(1, 0, r.start(1)));
    for (int i = 0; i < 3; ++i)
        ASSERT_TRUE(q.submit(1, 0, r.start(1)));
    ASSERT_TRUE(q.submit(2, 0, r.start(2)));
    ASSERT_TRUE(q.submit(3, 0, r.start(3)));
    for (int i = 0; i < 5; ++i)
        q.finished(r.started.back().second, false, 0);
    EXPECT_EQ(r.callers(), (std::vector<uint32_t>{1, 2, 3, 1, 1, 1}))
        << "a caller with a backlog does not keep the others waiting";
}

TEST(FairQueue, DeniedCallersWaitBehindEveryoneElse) {
    FairQueue q(limits(1, 1));
    Recorder r;
    ASSERT_TRUE(q.submit(66, 0, r.start(66)));
    q.finished(r.started.back().second, /*denied=*/true, 1 * sec);
    // uid 66 floods; uid 7 asks once, later.
    for (int i = 0; i < 4; ++i)
        ASSERT_TRUE(q.submit(66, 2 * sec, r.start(66)));
    ASSERT_TRUE(q.submit(7, 2 * sec, r.start(7)));
    // One of 66's checks took the free slot before 7 came; when it ends, 7 goes first.
    q.finished(r.started.back().second, true, 3 * sec);
    EXPECT_EQ(r.started.back().first, 7u);
}

TEST(FairQueue, PenalizedCallersHoldAtMostHalfTheSlots) {
    FairQueue q(limits(4, 4));
    Recorder r;
    ASSERT_TRUE(q.submit(66, 0, r.start(66)));
    q.finished(r.started.back().second, true, 0);
    r.started.clear();
    for (int i = 0; i < 6; ++i)
        ASSERT_TRUE(q.submit(66, 1, r.start(66)));
    EXPECT_EQ(r.started.size(), 2u) << "two of four slots stay free for others";
    ASSERT_TRUE(q.submit(7, 1, r.start(7)));
    ASSERT_TRUE(q.submit(8, 1, r.start(8)));
    EXPECT_EQ(r.started.size(), 4u);
}

TEST(FairQueue, DenialIsForgottenAfterAWhile) {
    QueueLimits l = limits(1, 1);
    l.denied_memory_usec = 10 * sec;
    FairQueue q(l);
    Recorder r;
    ASSERT_TRUE(q.submit(66, 0, r.start(66)));
    q.finished(r.started.back().second, true, 0);
    ASSERT_TRUE(q.submit(7, 20 * sec, r.start(7)));
    ASSERT_TRUE(q.submit(66, 20 * sec, r.start(66)));
    ASSERT_TRUE(q.submit(7, 20 * sec, r.start(7)));
    q.finished(r.started.back().second, false, 20 * sec);
    EXPECT_EQ(r.callers(), (std::vector<uint32_t>{66, 7, 66})) << "served in turn again";
}

TEST(FairQueue, WithdrawDropsQueuedAndFreesRunning) {
    FairQueue q(limits(1, 1));
    Recorder r;
    auto a = q.submit(1, 0, r.start(1));
    auto b = q.submit(2, 0, r.start(2));
    ASSERT_TRUE(a && b);
    EXPECT_FALSE(q.withdraw(*b, 0)) << "b was only queued";
    EXPECT_EQ(q.queued(), 0u);
    auto c = q.submit(3, 0, r.start(3));
    EXPECT_TRUE(q.withdraw(*a, 0)) << "a was running";
    EXPECT_EQ(r.callers(), (std::vector<uint32_t>{1, 3}));
    q.finished(*c, false, 0);
    EXPECT_EQ(q.in_flight(), 0u);
}

TEST(FairQueue, AnswerKnownAtOnceDoesNotRecurse) {
    FairQueue q(limits(1, 1, 100000, 100000));
    int started = 0;
    // Every check finishes from inside start(): the queue must drain in a loop.
    std::function<void(uint64_t)> start = [&](uint64_t t) {
        ++started;
        q.finished(t, false, 0);
    };
    // Fill the queue behind a running check, then let it go.
    uint64_t first = 0;
    ASSERT_TRUE(q.submit(1, 0, [&](uint64_t t) { first = t; }));
    for (int i = 0; i < 50000; ++i)
        ASSERT_TRUE(q.submit(static_cast<uint32_t>(2 + i % 7), 0, start));
    q.finished(first, false, 0);
    EXPECT_EQ(started, 50000);
    EXPECT_EQ(q.in_flight(), 0u);
}
