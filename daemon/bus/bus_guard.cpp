#include "bus_guard.hpp"

#include "config.h"

#include <algorithm>
#include <cstring>
#include <system_error>

namespace promiscd::bus {

namespace {

const std::string manager_iface = std::string(PROMISCD_BUS_NAME) + ".Manager";

} // namespace

BusGuard::BusGuard(sd_bus* bus, std::function<uint64_t()> now, GuardLimits limits)
    : now_(std::move(now)), limits_(limits) {
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
    try {
        if (self->take(sender))
            return 0;
    } catch (const std::bad_alloc&) {
        // No memory for a bucket: refuse rather than serve unmetered.
    }
    ++self->refused_;
    // A negative return with the error set: sd-bus answers the call with it
    // (unless no reply is expected) and dispatches it no further.
    return sd_bus_error_setf(error, "org.freedesktop.DBus.Error.LimitsExceeded",
                             "%s.%s is limited to %g calls per second per connection; "
                             "try again later",
                             sd_bus_message_get_interface(m), sd_bus_message_get_member(m),
                             self->limits_.per_second);
}

} // namespace promiscd::bus
