// Runs an sdbus-c++ connection inside the daemon's sd-event loop: its fd and
// timeout become sd-event sources, refreshed before every poll. Each dispatch
// processes at most kSlice messages, so a flood on the bus cannot starve the
// timers, rtnetlink, varlink, capture relays or the watchdog. No thread.
#pragma once

#include "event.hpp"

#include <cstddef>
#include <functional>
#include <sdbus-c++/IConnection.h>
#include <string>
#include <systemd/sd-event.h>

namespace promiscd::bus {

class BusLoop {
public:
    // on_failure runs once when the connection fails (the bus went away).
    // between runs after every message processed: what a call changed is
    // published (the change stream flushed) before the next message is read,
    // so a client that got a reply finds what the reply names.
    BusLoop(sd_event* event, sdbus::IConnection& connection,
            std::function<void(const std::string&)> on_failure, std::function<void()> between = {});
    ~BusLoop();
    BusLoop(const BusLoop&) = delete;
    BusLoop& operator=(const BusLoop&) = delete;

    // At most this many messages per dispatch.
    static constexpr size_t kSlice = 32;

    // Process everything the connection has queued (incoming and outgoing):
    // only where nothing else must run meanwhile (idle exit, shutdown).
    void drain();

private:
    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_time(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_prepare(sd_event_source* s, void* userdata);
    void refresh();
    void process(size_t max_messages);

    sd_event* event_;
    sdbus::IConnection& connection_;
    std::function<void(const std::string&)> on_failure_;
    std::function<void()> between_;
    bool failed_ = false;
    bool more_ = false; // the last slice was cut short: more may be buffered
    EventSourcePtr io_;
    EventSourcePtr time_;
};

} // namespace promiscd::bus
