// Idle exit: a socket- or bus-activated daemon exits when nothing has been
// held for idle_exit_seconds (no lease, no capture, no varlink connection, no
// request waiting); the next client starts it again. The timer is armed when
// the daemon becomes idle and disarmed as soon as it is not.
#pragma once

#include "event.hpp"

#include <cstdint>
#include <functional>

namespace promiscd {

struct IdleState {
    size_t leases = 0;
    size_t captures = 0;
    size_t connections = 0; // varlink
    size_t pending = 0;     // requests waiting for polkit or a filter
};

// The rule itself.
inline bool is_idle(const IdleState& s) {
    return s.leases == 0 && s.captures == 0 && s.connections == 0 && s.pending == 0;
}

class IdleExit {
public:
    // `state` reads the daemon's counts; `expire` runs once the daemon has
    // been idle for `seconds` (0: never).
    IdleExit(sd_event* event, uint64_t seconds, std::function<IdleState()> state,
             std::function<void()> expire);
    ~IdleExit();
    IdleExit(const IdleExit&) = delete;
    IdleExit& operator=(const IdleExit&) = delete;

    void set_seconds(uint64_t seconds);
    // Something changed: arm or disarm.
    void update();
    bool armed() const;

private:
    static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);

    sd_event* event_;
    uint64_t seconds_;
    std::function<IdleState()> state_;
    std::function<void()> expire_;
    EventSourcePtr timer_;
};

} // namespace promiscd
