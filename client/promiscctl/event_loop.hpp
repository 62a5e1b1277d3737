// The one sd-event loop of the long-running commands (hold, run, monitor,
// capture): signals, a child process, fds, timers and the bus connection,
// all on the main thread. A callback that throws stops the loop and run()
// rethrows, so errors reach the same exit-code mapping as everywhere else.
#pragma once

#include <promisc/promisc.hpp>

#include <chrono>
#include <csignal>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <systemd/sd-event.h>
#include <vector>

namespace promiscd::ctl {

class EventLoop {
public:
    EventLoop();
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Runs the client's process() from this loop whenever its connection
    // has something. on_lost runs once if promiscd becomes unreachable;
    // without it run() throws the error.
    void attach(promisc::Client& client,
                std::function<void(const promisc::Error&)> on_lost = nullptr);
    // Handles sig here instead of its default action (it is blocked, and
    // read through the loop).
    void on_signal(int sig, std::function<void()> cb);
    // Called when pid exits; SIGCHLD must have been blocked before pid was
    // started (sd-event reads it through a signalfd).
    void on_child(pid_t pid, std::function<void(const siginfo_t&)> cb);
    // Called when fd has events (EPOLLIN, …); returns a handle to turn it off.
    sd_event_source* on_io(int fd, uint32_t events, std::function<void(uint32_t revents)> cb);
    // Called every period, first after one period.
    void every(std::chrono::milliseconds period, std::function<void()> cb);
    // Called once after delay.
    void after(std::chrono::milliseconds delay, std::function<void()> cb);

    // Runs until exit(); returns its code.
    int run();
    void exit(int code);

    struct Handler; // a callback kept alive for its source

private:
    void add(sd_event_source* s, std::unique_ptr<Handler> h);
    void fail(std::exception_ptr e);
    void drain_bus();
    void refresh_bus();

    sd_event* event_ = nullptr;
    std::vector<std::unique_ptr<Handler>> handlers_;
    std::vector<sd_event_source*> sources_;
    promisc::Client* client_ = nullptr;
    std::function<void(const promisc::Error&)> on_lost_;
    bool bus_failed_ = false;
    // The client's descriptor changes (varlink connects its event stream
    // when it first needs it): the source follows it.
    int bus_fd_ = -1;
    sd_event_source* bus_io_ = nullptr;
    sd_event_source* bus_time_ = nullptr;
    std::exception_ptr error_;
};

} // namespace promiscd::ctl
