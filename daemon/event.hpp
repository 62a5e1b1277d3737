// RAII for sd-event objects, shared by everything that runs on the loop.
#pragma once

#include <cstdint>
#include <ctime>
#include <memory>
#include <systemd/sd-event.h>

namespace promiscd {

struct EventDeleter {
    void operator()(sd_event* e) const noexcept { sd_event_unref(e); }
};
struct EventSourceDeleter {
    void operator()(sd_event_source* s) const noexcept { sd_event_source_disable_unref(s); }
};
using EventPtr = std::unique_ptr<sd_event, EventDeleter>;
using EventSourcePtr = std::unique_ptr<sd_event_source, EventSourceDeleter>;

// The loop's idea of now (CLOCK_MONOTONIC microseconds), or the clock's when
// the loop has not run yet.
inline uint64_t loop_now(sd_event* event) {
    uint64_t t = 0;
    if (sd_event_now(event, CLOCK_MONOTONIC, &t) < 0) {
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        t = static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
    }
    return t;
}

} // namespace promiscd
