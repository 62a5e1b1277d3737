#include "sched/fair_queue.hpp"

#include <algorithm>
#include <vector>

namespace promiscd::sched {

bool FairQueue::penalized(const CallerState& c, uint64_t now) const {
    return c.denied_at && *c.denied_at + limits_.denied_memory_usec > now;
}

size_t FairQueue::queued_for(uint32_t caller) const {
    auto it = callers_.find(caller);
    return it == callers_.end() ? 0 : it->second.queue.size();
}

std::string FairQueue::refusal(uint32_t caller, const std::string& what) const {
    if (queued_total_ >= limits_.queued_total)
        return "too many " + what + " are waiting (" + std::to_string(queued_total_) + ", limit " +
               std::to_string(limits_.queued_total) + "); try again later";
    return "uid " + std::to_string(caller) + " already has " + std::to_string(queued_for(caller)) +
           " " + what + " waiting (limit " + std::to_string(limits_.queued_per_caller) +
           "); try again later";
}

std::optional<uint64_t> FairQueue::submit(uint32_t caller, uint64_t now, Start start) {
    if (queued_total_ >= limits_.queued_total || queued_for(caller) >= limits_.queued_per_caller)
        return std::nullopt;
    uint64_t ticket = next_ticket_++;
    callers_[caller].queue.push_back(Entry{ticket, std::move(start)});
    waiting_.emplace(ticket, caller);
    ++queued_total_;
    pump(now);
    return ticket;
}

void FairQueue::finished(uint64_t ticket, bool denied, uint64_t now) {
    auto it = running_.find(ticket);
    if (it == running_.end())
        return;
    const Running r = it->second;
    const uint32_t caller = r.caller;
    running_.erase(it);
    CallerState& c = callers_[caller];
    if (c.running > 0)
        --c.running;
    if (r.penalized && penalized_running_ > 0)
        --penalized_running_;
    if (denied)
        c.denied_at = now;
    forget_if_idle(caller);
    pump(now);
}

bool FairQueue::withdraw(uint64_t ticket, uint64_t now) {
    if (auto w = waiting_.find(ticket); w != waiting_.end()) {
        uint32_t caller = w->second;
        waiting_.erase(w);
        auto& q = callers_[caller].queue;
        auto e =
            std::find_if(q.begin(), q.end(), [&](const Entry& x) { return x.ticket == ticket; });
        if (e != q.end()) {
            q.erase(e);
            --queued_total_;
        }
        forget_if_idle(caller);
        return false;
    }
    if (running_.count(ticket)) {
        finished(ticket, false, now);
        return true;
    }
    return false;
}

void FairQueue::forget_if_idle(uint32_t caller) {
    auto it = callers_.find(caller);
    // A denial is remembered while it still counts; then the record goes, so
    // the table holds only callers with work or a fresh denial.
    if (it != callers_.end() && it->second.queue.empty() && it->second.running == 0 &&
        !it->second.denied_at)
        callers_.erase(it);
}

void FairQueue::pump(uint64_t now) {
    // A check whose answer is known at once finishes from inside start(); the
    // loop below picks up where it was instead of recursing.
    if (pumping_)
        return;
    pumping_ = true;
    struct Reset {
        bool& b;
        ~Reset() { b = false; }
    } reset{pumping_};
    // Forget denials that no longer count (bounded: only callers in the table).
    for (auto it = callers_.begin(); it != callers_.end();) {
        auto& c = it->second;
        if (c.denied_at && !penalized(c, now)) {
            c.denied_at.reset();
            if (c.queue.empty() && c.running == 0) {
                it = callers_.erase(it);
                continue;
            }
        }
        ++it;
    }
    while (running_.size() < limits_.in_flight_total && queued_total_ > 0) {
        // Round-robin from the caller after the last one served: first among
        // callers in good standing, then (within their share) the others.
        std::optional<uint32_t> pick;
        for (int pass = 0; pass < 2 && !pick; ++pass) {
            if (pass == 1 && penalized_running_ >= std::max(1u, limits_.in_flight_total / 2))
                break;
            auto eligible = [&](const std::pair<const uint32_t, CallerState>& kv) {
                const CallerState& c = kv.second;
                return !c.queue.empty() && c.running < limits_.in_flight_per_caller &&
                       penalized(c, now) == (pass == 1);
            };
            auto start = callers_.upper_bound(last_served_);
            for (auto it = start; it != callers_.end() && !pick; ++it)
                if (eligible(*it))
                    pick = it->first;
            for (auto it = callers_.begin(); it != start && !pick; ++it)
                if (eligible(*it))
                    pick = it->first;
        }
        if (!pick)
            break;
        last_served_ = *pick;
        CallerState& c = callers_[*pick];
        Entry e = std::move(c.queue.front());
        c.queue.pop_front();
        --queued_total_;
        waiting_.erase(e.ticket);
        const bool pen = penalized(c, now);
        running_.emplace(e.ticket, Running{*pick, pen});
        ++c.running;
        if (pen)
            ++penalized_running_;
        // May call finished() re-entrantly (an answer known at once).
        e.start(e.ticket);
    }
}

} // namespace promiscd::sched
