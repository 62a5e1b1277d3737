#include "idle.hpp"

#include <system_error>

namespace promiscd {

IdleExit::IdleExit(sd_event* event, uint64_t seconds, std::function<IdleState()> state,
                   std::function<void()> expire)
    : event_(event), seconds_(seconds), state_(std::move(state)), expire_(std::move(expire)) {
    sd_event_source* s = nullptr;
    int r =
        sd_event_add_time(event_, &s, CLOCK_MONOTONIC, UINT64_MAX, 0, &IdleExit::on_timer, this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "cannot add the idle timer");
    timer_.reset(s);
    sd_event_source_set_description(s, "idle-exit");
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

IdleExit::~IdleExit() = default;

void IdleExit::set_seconds(uint64_t seconds) {
    seconds_ = seconds;
    sd_event_source_set_enabled(timer_.get(), SD_EVENT_OFF);
    update();
}

bool IdleExit::armed() const {
    int enabled = SD_EVENT_OFF;
    sd_event_source_get_enabled(timer_.get(), &enabled);
    return enabled != SD_EVENT_OFF;
}

void IdleExit::update() {
    if (seconds_ == 0 || !is_idle(state_())) {
        sd_event_source_set_enabled(timer_.get(), SD_EVENT_OFF);
        return;
    }
    if (armed())
        return; // already counting down
    sd_event_source_set_time(timer_.get(), loop_now(event_) + seconds_ * 1'000'000);
    sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
}

int IdleExit::on_timer(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<IdleExit*>(userdata);
    if (is_idle(self->state_()))
        self->expire_();
    return 0;
}

} // namespace promiscd
