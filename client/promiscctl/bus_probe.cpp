#include "bus_probe.hpp"

#include "config.h"

#include <cstdlib>
#include <string>
#include <systemd/sd-bus.h>

namespace promiscd::ctl {

namespace {

// Whether `name` is owned on the system bus or can be activated there.
bool on_system_bus(const char* name) {
    sd_bus* bus = nullptr;
    if (sd_bus_open_system(&bus) < 0)
        return false;
    bool found = false;
    sd_bus_message* reply = nullptr;
    int has = 0;
    if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "NameHasOwner", nullptr, &reply, "s",
                           name) >= 0 &&
        sd_bus_message_read(reply, "b", &has) >= 0 && has)
        found = true;
    reply = sd_bus_message_unref(reply);
    char** names = nullptr;
    if (!found &&
        sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "ListActivatableNames", nullptr, &reply,
                           "") >= 0 &&
        sd_bus_message_read_strv(reply, &names) >= 0 && names) {
        for (char** n = names; *n; ++n)
            found = found || std::string(*n) == name;
    }
    if (names) {
        for (char** n = names; *n; ++n)
            free(*n);
        free(names);
    }
    sd_bus_message_unref(reply);
    sd_bus_flush_close_unref(bus);
    return found;
}

} // namespace

bool dbus_available() {
    return on_system_bus(PROMISCD_BUS_NAME);
}

bool polkit_available() {
    return on_system_bus("org.freedesktop.PolicyKit1");
}

} // namespace promiscd::ctl
