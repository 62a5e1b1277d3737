#include "bus_guard.hpp"

#include "config.h"

#include <algorithm>
#include <cstring>
#include <system_error>

namespace promiscd::bus {

namespace {

const std::string manager_iface = std::string(PROMISCD_BUS_NAME) + ".Manager";

} // namespace

BusGuard::BusGuard(sd_bus* bus, std::function<uint64_t()> now, GuardLimits limits, Items items)
    : now_(std::move(now)), limits_(limits),
      items_(std::move(items)), all_{limits_.items_burst, now_()} {
    int r = sd_bus_add_filter(bus, &slot_, &BusGuard::on_message, this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "cannot add the bus filter");
}

BusGuard::~BusGuard() {
    sd_bus_slot_unref(slot_);
}

bool BusGuard::costly(const char* interface, const char* member) {
    if (!interface || !member)
        return false;
    auto is = [&](const char* i, const char* m) {
        return std::strcmp(interface, i) == 0 && std::strcmp(member, m) == 0;
    };
    return is("org.freedesktop.DBus.ObjectManager", "GetManagedObjects") ||
           is("org.freedesktop.DBus.Introspectable", "Introspect") ||
           is(manager_iface.c_str(), "ListLinks") || is(manager_iface.c_str(), "ListLeases");
}

bool BusGuard::take(const std::string& sender) {
    const uint64_t now = now_();
    if (buckets_.size() >= limits_.senders && !buckets_.count(sender)) {
        // Full: drop the buckets that have refilled (their senders are idle);
        // if every sender is busy, start everyone afresh rather than grow.
        std::erase_if(buckets_, [&](const auto& kv) {
            double t = kv.second.tokens + double(now - kv.second.last) / 1e6 * limits_.per_second;
            return t >= limits_.burst;
        });
        if (buckets_.size() >= limits_.senders)
            buckets_.clear();
    }
    auto [it, fresh] = buckets_.try_emplace(sender, Bucket{limits_.burst, now});
    Bucket& b = it->second;
    if (!fresh && now > b.last) {
        b.tokens =
            std::min(limits_.burst, b.tokens + double(now - b.last) / 1e6 * limits_.per_second);
        b.last = now;
    }
    if (b.tokens < 1)
        return false;
    b.tokens -= 1;
    return true;
}

bool BusGuard::take_items(double items) {
    const uint64_t now = now_();
    if (now > all_.last) {
        all_.tokens = std::min(limits_.items_burst, all_.tokens + double(now - all_.last) / 1e6 *
                                                                      limits_.items_per_second);
        all_.last = now;
    }
    // An answer larger than the burst waits for a full bucket.
    if (all_.tokens < std::min(items, limits_.items_burst))
        return false;
    all_.tokens -= items;
    return true;
}

int BusGuard::on_message(sd_bus_message* m, void* userdata, sd_bus_error* error) {
    auto* self = static_cast<BusGuard*>(userdata);
    uint8_t type = 0;
    if (sd_bus_message_get_type(m, &type) < 0 || type != SD_BUS_MESSAGE_METHOD_CALL)
        return 0;
    if (!costly(sd_bus_message_get_interface(m), sd_bus_message_get_member(m)))
        return 0;
    const char* sender = sd_bus_message_get_sender(m);
    if (!sender)
        return 0;
    const char* interface = sd_bus_message_get_interface(m);
    const char* member = sd_bus_message_get_member(m);
    try {
        if (!self->take(sender)) {
            ++self->refused_;
            return sd_bus_error_setf(error, "org.freedesktop.DBus.Error.LimitsExceeded",
                                     "%s.%s is limited to %g calls per second per connection; "
                                     "try again later",
                                     interface, member, self->limits_.per_second);
        }
        const double items =
            self->items_ ? double(std::max<size_t>(1, self->items_(interface, member))) : 1.0;
        if (self->take_items(items))
            return 0;
    } catch (const std::bad_alloc&) {
        // No memory for a bucket: refuse rather than serve unmetered.
    }
    ++self->refused_;
    // A negative return with the error set: sd-bus answers the call with it
    // (unless no reply is expected) and dispatches it no further.
    return sd_bus_error_setf(error, "org.freedesktop.DBus.Error.LimitsExceeded",
                             "promiscd answers large reads (GetManagedObjects, Introspect, "
                             "ListLinks, ListLeases) at up to %g items per second from all "
                             "callers together, and that is taken; try %s.%s again later",
                             self->limits_.items_per_second, interface, member);
}

} // namespace promiscd::bus
