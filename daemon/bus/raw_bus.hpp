// sdbus-c++ 1.2 keeps the sd_bus and sd_bus_message it wraps to itself. A few
// things the daemon needs are only in sd-bus: message flags (interactive
// authorization), and a filter that sees every message before dispatch
// (per-sender rate limits). The raw message is a protected member of
// sdbus::Message, reachable through a pointer to member of a derived class;
// the raw bus is the one a message was created on.
#pragma once

#include <sdbus-c++/IProxy.h>
#include <sdbus-c++/Message.h>
#include <systemd/sd-bus.h>

namespace promiscd::bus {

struct MessageAccess : sdbus::Message {
    static sd_bus_message* raw(const sdbus::Message& m) {
        return static_cast<sd_bus_message*>(m.*(&MessageAccess::msg_));
    }
};

inline sd_bus_message* raw_message(const sdbus::Message& m) {
    return MessageAccess::raw(m);
}

// The sd_bus under `proxy`'s connection (not referenced: it lives as long as
// the connection).
inline sd_bus* raw_bus(sdbus::IProxy& proxy) {
    auto call = proxy.createMethodCall("org.freedesktop.DBus.Peer", "Ping");
    sd_bus_message* m = raw_message(call);
    return m ? sd_bus_message_get_bus(m) : nullptr;
}

} // namespace promiscd::bus
