// Who gets the next slot for costly work done on a caller's behalf (polkit
// checks, filter compilation). Work in flight is bounded in all and per
// caller (uid); beyond that it waits in bounded queues, served round-robin
// across callers. A caller refused recently (polkit said no, a filter was
// too costly) is served only when no one else is waiting, and may hold at
// most half of the slots: a refused user's flood waits behind everyone else
// instead of delaying them. Pure: time is an argument, starting is a callback.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace promiscd::sched {

struct QueueLimits {
    unsigned in_flight_total = 32;
    unsigned in_flight_per_caller = 2;
    unsigned queued_per_caller = 16;
    unsigned queued_total = 512;
    // How long a denial keeps a caller at the back of the line (microseconds).
    uint64_t denied_memory_usec = 60'000'000;
};

class FairQueue {
public:
    // Receives the ticket submit() returns (it may run before submit returns).
    using Start = std::function<void(uint64_t ticket)>;
    explicit FairQueue(QueueLimits limits = {}) : limits_(limits) {}

    // Queues work for `caller`; `start` runs (maybe at once, from inside
    // submit) when a slot is free, and the work must then end with
    // finished(). nullopt when the caller's queue or the global one is full:
    // the caller is refused and nothing was queued.
    std::optional<uint64_t> submit(uint32_t caller, uint64_t now, Start start);
    // Started work ended; `denied` (refused) remembers the caller for a while.
    // Starts what can start now.
    void finished(uint64_t ticket, bool denied, uint64_t now);
    // The caller went away: queued work is dropped; running work frees its
    // slot (the owner stops it itself). True when it was running.
    bool withdraw(uint64_t ticket, uint64_t now);

    size_t in_flight() const { return running_.size(); }
    size_t queued() const { return queued_total_; }
    size_t queued_for(uint32_t caller) const;
    const QueueLimits& limits() const { return limits_; }
    void set_limits(const QueueLimits& limits) { limits_ = limits; }
    // Why submit() refused, for the message (call right after it); `what`
    // names the work ("authorization checks").
    std::string refusal(uint32_t caller, const std::string& what) const;

private:
    struct Entry {
        uint64_t ticket;
        Start start;
    };
    struct CallerState {
        std::deque<Entry> queue;
        unsigned running = 0;
        std::optional<uint64_t> denied_at;
    };
    bool penalized(const CallerState& c, uint64_t now) const;
    void pump(uint64_t now);
    void forget_if_idle(uint32_t caller);

    QueueLimits limits_;
    uint64_t next_ticket_ = 1;
    std::map<uint32_t, CallerState> callers_;
    struct Running {
        uint32_t caller;
        bool penalized; // counted in penalized_running_
    };
    std::map<uint64_t, Running> running_;
    bool pumping_ = false;
    std::map<uint64_t, uint32_t> waiting_; // ticket -> caller
    size_t queued_total_ = 0;
    unsigned penalized_running_ = 0;
    uint32_t last_served_ = 0; // round-robin position
};

} // namespace promiscd::sched
