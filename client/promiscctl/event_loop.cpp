#include "event_loop.hpp"

#include <algorithm>
#include <poll.h>
#include <sys/epoll.h>
#include <system_error>

namespace promiscd::ctl {

namespace {

void check(int r, const char* what) {
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), what);
}

std::uint64_t monotonic_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

} // namespace

struct EventLoop::Handler {
    EventLoop* loop = nullptr;
    std::function<void()> plain;
    std::function<void(uint32_t)> io;
    std::function<void(const siginfo_t&)> child;
    std::uint64_t period_usec = 0; // repeating timers

    // Exceptions must not cross sd-event's C frames: park them for run().
    template <typename F>
    int guard(F&& f) {
        try {
            f();
        } catch (...) {
            loop->fail(std::current_exception());
        }
        return 0;
    }

    static int on_signal(sd_event_source*, const signalfd_siginfo*, void* ud) {
        auto* h = static_cast<Handler*>(ud);
        return h->guard([&] { h->plain(); });
    }
    static int on_io(sd_event_source*, int, uint32_t revents, void* ud) {
        auto* h = static_cast<Handler*>(ud);
        return h->guard([&] { h->io(revents); });
    }
    static int on_time(sd_event_source* s, uint64_t usec, void* ud) {
        auto* h = static_cast<Handler*>(ud);
        if (h->period_usec) {
            sd_event_source_set_time(s, usec + h->period_usec);
            sd_event_source_set_enabled(s, SD_EVENT_ON);
        }
        return h->guard([&] { h->plain(); });
    }
    static int on_child(sd_event_source*, const siginfo_t* si, void* ud) {
        auto* h = static_cast<Handler*>(ud);
        return h->guard([&] { h->child(*si); });
    }
    static int on_bus_io(sd_event_source*, int, uint32_t, void* ud) {
        static_cast<EventLoop*>(ud)->drain_bus();
        return 0;
    }
    static int on_bus_time(sd_event_source*, uint64_t, void* ud) {
        static_cast<EventLoop*>(ud)->drain_bus();
        return 0;
    }
    static int on_bus_idle(sd_event_source*, uint64_t, void*) { return 0; }
    static int on_bus_prepare(sd_event_source*, void* ud) {
        auto* loop = static_cast<EventLoop*>(ud);
        // Calls made by other callbacks may have queued messages that no
        // poll would report: handle them before sleeping.
        loop->drain_bus();
        loop->refresh_bus();
        return 0;
    }
};

EventLoop::EventLoop() {
    check(sd_event_new(&event_), "sd_event_new");
}

EventLoop::~EventLoop() {
    for (auto* s : sources_)
        sd_event_source_disable_unref(s);
    sd_event_unref(event_);
}

void EventLoop::add(sd_event_source* s, std::unique_ptr<Handler> h) {
    sources_.push_back(s);
    if (h)
        handlers_.push_back(std::move(h));
}

void EventLoop::fail(std::exception_ptr e) {
    if (!error_)
        error_ = std::move(e);
    sd_event_exit(event_, 1);
}

void EventLoop::attach(promisc::Client& client,
                       std::function<void(const promisc::Error&)> on_lost) {
    client_ = &client;
    on_lost_ = std::move(on_lost);
    sd_event_source* s = nullptr;
    // A source that never fires, for its prepare callback: run before each
    // sleep, it takes in what other callbacks' calls queued and follows the
    // client's descriptor and timeout.
    // (A timer for the end of time: enabled, as prepare callbacks need.)
    check(
        sd_event_add_time(event_, &s, CLOCK_MONOTONIC, UINT64_MAX, 0, &Handler::on_bus_idle, this),
        "bus prepare");
    add(s, nullptr);
    sd_event_source_set_enabled(s, SD_EVENT_ON);
    check(sd_event_source_set_prepare(s, &Handler::on_bus_prepare), "bus prepare");
    check(
        sd_event_add_time(event_, &s, CLOCK_MONOTONIC, UINT64_MAX, 0, &Handler::on_bus_time, this),
        "bus timer");
    add(s, nullptr);
    bus_time_ = s;
    refresh_bus();
}

void EventLoop::drain_bus() {
    if (!client_ || bus_failed_)
        return;
    try {
        client_->process(std::chrono::milliseconds(0));
    } catch (const promisc::Error& e) {
        if (e.code() != promisc::ErrorCode::DaemonUnreachable || !on_lost_) {
            fail(std::current_exception());
            return;
        }
        // The connection is gone for good: stop watching it, tell the command.
        bus_failed_ = true;
        if (bus_io_)
            sd_event_source_set_enabled(bus_io_, SD_EVENT_OFF);
        sd_event_source_set_enabled(bus_time_, SD_EVENT_OFF);
        try {
            on_lost_(e);
        } catch (...) {
            fail(std::current_exception());
        }
    } catch (...) {
        fail(std::current_exception());
    }
}

void EventLoop::refresh_bus() {
    if (!client_ || bus_failed_)
        return;
    promisc::PollInfo poll;
    try {
        poll = client_->poll_info();
    } catch (...) {
        fail(std::current_exception());
        return;
    }
    if (poll.fd != bus_fd_) {
        if (bus_io_) {
            sources_.erase(std::remove(sources_.begin(), sources_.end(), bus_io_), sources_.end());
            sd_event_source_disable_unref(bus_io_);
            bus_io_ = nullptr;
        }
        bus_fd_ = poll.fd;
        if (bus_fd_ >= 0) {
            sd_event_source* s = nullptr;
            check(sd_event_add_io(event_, &s, bus_fd_, EPOLLIN, &Handler::on_bus_io, this),
                  "bus io");
            add(s, nullptr);
            bus_io_ = s;
        }
    }
    if (bus_io_) {
        uint32_t events = 0;
        if (poll.events & POLLIN)
            events |= EPOLLIN;
        if (poll.events & POLLOUT)
            events |= EPOLLOUT;
        sd_event_source_set_io_events(bus_io_, events);
    }
    if (poll.timeout_ms < 0) {
        sd_event_source_set_enabled(bus_time_, SD_EVENT_OFF);
    } else {
        sd_event_source_set_time(bus_time_, monotonic_usec() +
                                                static_cast<std::uint64_t>(poll.timeout_ms) * 1000);
        sd_event_source_set_enabled(bus_time_, SD_EVENT_ONESHOT);
    }
}

void EventLoop::on_signal(int sig, std::function<void()> cb) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    // sd-event reads signals from a signalfd, which needs them blocked.
    check(-sigprocmask(SIG_BLOCK, &set, nullptr), "sigprocmask");
    auto h = std::make_unique<Handler>();
    h->loop = this;
    h->plain = std::move(cb);
    sd_event_source* s = nullptr;
    check(sd_event_add_signal(event_, &s, sig, &Handler::on_signal, h.get()), "signal source");
    add(s, std::move(h));
}

void EventLoop::on_child(pid_t pid, std::function<void(const siginfo_t&)> cb) {
    auto h = std::make_unique<Handler>();
    h->loop = this;
    h->child = std::move(cb);
    sd_event_source* s = nullptr;
    check(sd_event_add_child(event_, &s, pid, WEXITED, &Handler::on_child, h.get()),
          "child source");
    add(s, std::move(h));
}

sd_event_source* EventLoop::on_io(int fd, uint32_t events, std::function<void(uint32_t)> cb) {
    auto h = std::make_unique<Handler>();
    h->loop = this;
    h->io = std::move(cb);
    sd_event_source* s = nullptr;
    check(sd_event_add_io(event_, &s, fd, events, &Handler::on_io, h.get()), "io source");
    add(s, std::move(h));
    return s;
}

void EventLoop::every(std::chrono::milliseconds period, std::function<void()> cb) {
    auto h = std::make_unique<Handler>();
    h->loop = this;
    h->plain = std::move(cb);
    h->period_usec = static_cast<std::uint64_t>(period.count()) * 1000;
    sd_event_source* s = nullptr;
    check(sd_event_add_time(event_, &s, CLOCK_MONOTONIC, monotonic_usec() + h->period_usec, 0,
                            &Handler::on_time, h.get()),
          "timer");
    sd_event_source_set_enabled(s, SD_EVENT_ON);
    add(s, std::move(h));
}

void EventLoop::after(std::chrono::milliseconds delay, std::function<void()> cb) {
    auto h = std::make_unique<Handler>();
    h->loop = this;
    h->plain = std::move(cb);
    sd_event_source* s = nullptr;
    check(sd_event_add_time(event_, &s, CLOCK_MONOTONIC,
                            monotonic_usec() + static_cast<std::uint64_t>(delay.count()) * 1000, 0,
                            &Handler::on_time, h.get()),
          "timer");
    add(s, std::move(h));
}

int EventLoop::run() {
    int r = sd_event_loop(event_);
    if (error_)
        std::rethrow_exception(error_);
    check(r, "event loop");
    return r;
}

void EventLoop::exit(int code) {
    sd_event_exit(event_, code);
}

} // namespace promiscd::ctl
