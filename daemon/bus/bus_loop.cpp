#include "bus_loop.hpp"

#include "log.hpp"

#include <poll.h>
#include <system_error>

namespace promiscd::bus {

namespace {

void check(int r, const char* what) {
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), what);
}

} // namespace

BusLoop::BusLoop(sd_event* event, sdbus::IConnection& connection,
                 std::function<void(const std::string&)> on_failure, std::function<void()> between)
    : event_(event), connection_(connection), on_failure_(std::move(on_failure)),
      between_(std::move(between)) {
    auto poll = connection_.getEventLoopPollData();
    sd_event_source* s = nullptr;
    check(sd_event_add_io(event_, &s, poll.fd, EPOLLIN, &BusLoop::on_io, this), "bus io source");
    io_.reset(s);
    sd_event_source_set_description(s, "bus-io");
    // Before every poll the bus may have queued output or a new timeout.
    check(sd_event_source_set_prepare(s, &BusLoop::on_prepare), "bus prepare");
    check(sd_event_add_time(event_, &s, CLOCK_MONOTONIC, UINT64_MAX, 0, &BusLoop::on_time, this),
          "bus time source");
    time_.reset(s);
    sd_event_source_set_description(s, "bus-timeout");
    refresh();
}

BusLoop::~BusLoop() = default;

void BusLoop::drain() {
    process(SIZE_MAX);
}

void BusLoop::process(size_t max_messages) {
    if (failed_)
        return;
    try {
        more_ = false;
        for (size_t i = 0; i < max_messages; ++i) {
            if (!connection_.processPendingRequest())
                return;
            if (between_)
                between_();
        }
        // The slice is used up and sd-bus may hold more messages in its read
        // buffer than it has parsed: the socket is then no longer readable,
        // so come back at once, after the others' turn.
        more_ = true;
    } catch (const std::exception& e) {
        failed_ = true;
        sd_event_source_set_enabled(io_.get(), SD_EVENT_OFF);
        sd_event_source_set_enabled(time_.get(), SD_EVENT_OFF);
        if (on_failure_)
            on_failure_(e.what());
    }
}

void BusLoop::refresh() {
    if (failed_)
        return;
    auto poll = connection_.getEventLoopPollData();
    uint32_t events = 0;
    if (poll.events & POLLIN)
        events |= EPOLLIN;
    if (poll.events & POLLOUT)
        events |= EPOLLOUT;
    sd_event_source_set_io_events(io_.get(), events);
    const uint64_t when = more_ ? 0 : poll.timeout_usec;
    if (when == UINT64_MAX) {
        sd_event_source_set_enabled(time_.get(), SD_EVENT_OFF);
    } else {
        sd_event_source_set_time(time_.get(), when);
        sd_event_source_set_enabled(time_.get(), SD_EVENT_ONESHOT);
    }
}

int BusLoop::on_io(sd_event_source*, int, uint32_t, void* userdata) {
    static_cast<BusLoop*>(userdata)->process(kSlice);
    return 0;
}

int BusLoop::on_time(sd_event_source*, uint64_t, void* userdata) {
    static_cast<BusLoop*>(userdata)->process(kSlice);
    return 0;
}

int BusLoop::on_prepare(sd_event_source*, void* userdata) {
    // Only the poll data: messages still queued after a slice make sd-bus
    // report a timeout of 0, so the time source is due at once, after the
    // other sources that are ready have had their turn.
    static_cast<BusLoop*>(userdata)->refresh();
    return 0;
}

} // namespace promiscd::bus
