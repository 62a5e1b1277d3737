// Sees every message from the bus before it is dispatched. Reads whose cost
// grows with the state the daemon holds (GetManagedObjects, Introspect,
// ListLinks, ListLeases) need no authorization, so they are rate-limited per
// sender with a token bucket, and all senders together by what the answers
// hold (objects, links or leases): a thousand connections cannot keep the
// loop building 12,000-object answers. Over either limit the call is
// answered LimitsExceeded (or, when no reply is expected, dropped) without
// being served. Everything else passes untouched.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <systemd/sd-bus.h>
#include <unordered_map>

namespace promiscd::bus {

struct GuardLimits {
    double burst = 32;      // costly reads a sender may make at once
    double per_second = 16; // and then per second
    size_t senders = 16384; // buckets kept; idle ones are dropped first
    // All senders together, in items answered (an object of
    // GetManagedObjects, a link of ListLinks): about a fifth of a core on
    // the machines of docs/PERFORMANCE.md. One answer larger than the burst
    // is served when the bucket is full, and leaves it in debt.
    double items_burst = 40000;
    double items_per_second = 10000;
};

class BusGuard {
public:
    // items(interface, member): how many items the answer to that costly read
    // would hold now (null: 1 each).
    using Items = std::function<size_t(const char* interface, const char* member)>;
    BusGuard(sd_bus* bus, std::function<uint64_t()> now, GuardLimits limits = {}, Items items = {});
    ~BusGuard();
    BusGuard(const BusGuard&) = delete;
    BusGuard& operator=(const BusGuard&) = delete;

    // The sender left the bus.
    void forget(const std::string& sender) { buckets_.erase(sender); }
    uint64_t refused() const { return refused_; }
    void set_limits(const GuardLimits& limits) { limits_ = limits; }

    // Whether interface.member is one of the costly reads.
    static bool costly(const char* interface, const char* member);

private:
    struct Bucket {
        double tokens = 0;
        uint64_t last = 0;
    };
    static int on_message(sd_bus_message* m, void* userdata, sd_bus_error* error);
    bool take(const std::string& sender);
    bool take_items(double items);

    sd_bus_slot* slot_ = nullptr;
    std::function<uint64_t()> now_;
    GuardLimits limits_;
    std::unordered_map<std::string, Bucket> buckets_;
    Items items_;
    Bucket all_; // every sender's costly reads, in items
    uint64_t refused_ = 0;
};

} // namespace promiscd::bus
