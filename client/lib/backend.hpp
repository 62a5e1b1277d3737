// Inside libpromisc: what the public classes hold (their Impl), and the two
// transports behind them (dbus_backend.cpp, varlink_backend.cpp). Never
// installed.
#pragma once

#include <promisc/promisc.hpp>

#include "client/capture_reader.hpp"
#include "client/errors.hpp"
#include "client/promisc_client.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <poll.h>
#include <string>
#include <string_view>
#include <vector>

// What is defined here stays inside the library, although the classes that
// hold it are exported.
#define PROMISC_HIDDEN __attribute__((visibility("hidden")))

namespace promisc {

namespace detail {

// Throws the public exception class of code.
[[noreturn]] void raise(ErrorCode code, std::string name, const std::string& message);
ErrorCode code_of(promiscd::client::ErrorKind kind) noexcept;
// Inside a catch block: rethrows the exception being handled as a
// promisc::Error (internal errors, malformed streams, unexpected replies,
// system errors); anything else unchanged.
[[noreturn]] void rethrow_current();

LeaseState parse_state(std::string_view s) noexcept;
std::chrono::system_clock::time_point from_usec(std::uint64_t usec);
// The internal client's records as the public API gives them: one
// conversion for both transports.
Link public_link(const promiscd::client::LinkInfo& l);
LeaseInfo public_lease(const promiscd::client::LeaseInfo& l);
Event public_event(const promiscd::client::Event& e);
// "uid 0 (pid 42, promiscctl): maintenance": who revoked a lease and why.
std::string detail_of(const promiscd::client::LeaseEnd& end);

// A point in CLOCK_MONOTONIC time timeout from now (negative: never).
class Deadline {
public:
    explicit Deadline(std::chrono::milliseconds timeout);
    // Milliseconds left, rounded up; 0 once passed; -1 for never.
    int left_ms() const;

private:
    bool forever_;
    std::uint64_t end_;
};
std::uint64_t monotonic_usec();
// The smaller of two poll(2) timeouts (-1: none).
int min_timeout(int a, int b);
void wait_for(std::vector<pollfd>& fds, int timeout_ms);

} // namespace detail

struct PROMISC_HIDDEN Lease::Impl {
    virtual ~Impl() = default;

    std::uint64_t id = 0;
    std::string interface;
    LeaseState state = LeaseState::Unknown;
    // The record as last seen (Lease::info() gives it with state).
    LeaseInfo info;
    std::string end_reason;
    std::string end_detail;
    std::function<void(LeaseState, LeaseState)> callback;

    // State changes as the daemon announces them; run the callback.
    void change(LeaseState to);
    // A new record from the daemon: kept, and its state taken in.
    void update(const LeaseInfo& now);
    // The record, brought up to date where the transport keeps its own,
    // with state.
    virtual const LeaseInfo& current() {
        info.state = state;
        return info;
    }
    void ended(std::string reason, std::string detail = {});
    void check_held(const char* what) const;

    virtual void renew(std::uint64_t ttl_sec) = 0;
    virtual void release() = 0;
};

struct PROMISC_HIDDEN Capture::Impl {
    Impl(std::uint64_t capture_id, std::string link, const CaptureOptions& opts,
         promiscd::client::UniqueFd stream);
    virtual ~Impl();
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    std::uint64_t id;
    std::string interface;
    CaptureOptions options;

    std::optional<Frame> next(std::chrono::milliseconds timeout);
    std::optional<std::size_t> read(void* buffer, std::size_t size,
                                    std::chrono::milliseconds timeout);
    bool at_end() const noexcept;
    const std::string& reason() const;
    CaptureStats stats() const;
    void stop();
    int stream_fd() const noexcept;

protected:
    // The transport's part: ask the daemon to stop, take in what it
    // announced (without waiting), and what it said.
    virtual void request_stop() = 0;
    virtual void pump() = 0;
    virtual PollInfo transport_poll() const = 0;
    virtual std::string daemon_reason() const = 0;
    virtual void daemon_counters(CaptureStats& stats) const = 0;

private:
    void wait(int timeout_ms);
    void settle();

    // The stream: fd until the first next() or read() decides how it is read.
    promiscd::client::UniqueFd fd;
    std::optional<promiscd::client::CaptureReader> reader;
    bool raw = false;
    bool raw_eof = false;
    std::uint64_t frames = 0;
    bool stop_requested = false;
    mutable std::string reason_;
};

struct PROMISC_HIDDEN Monitor::Impl {
    virtual ~Impl() = default;
    std::vector<Link> links;
    std::vector<LeaseInfo> leases;
    std::function<void(const Event&)> callback;
    bool flag_events = true;
    void deliver(const Event& e) const {
        if (callback)
            callback(e);
    }
};

struct PROMISC_HIDDEN Client::Impl {
    virtual ~Impl();
    virtual Transport transport() const = 0;
    virtual std::vector<Link> links() = 0;
    virtual std::vector<LeaseInfo> leases() = 0;
    // self: the shared pointer that holds this, for the lease or capture to
    // keep the connection alive.
    virtual std::unique_ptr<Lease::Impl> acquire(const std::shared_ptr<Impl>& self,
                                                 const std::string& interface,
                                                 const LeaseOptions& options) = 0;
    virtual std::unique_ptr<Capture::Impl> capture(const std::shared_ptr<Impl>& self,
                                                   const std::string& interface,
                                                   const CaptureOptions& options) = 0;
    virtual void revoke(std::uint64_t lease_id, const std::string& reason) = 0;
    virtual void set_policy(const std::string& interface, const std::string& policy) = 0;
    virtual std::unique_ptr<Monitor::Impl> monitor(const std::shared_ptr<Impl>& self) = 0;
    virtual void release(std::uint64_t lease_id) = 0;
    virtual void on_daemon(std::function<void(bool)> callback) = 0;
    virtual void process(std::chrono::milliseconds timeout) = 0;
    virtual PollInfo poll_info() const = 0;
};

std::shared_ptr<Client::Impl> make_dbus_backend(const ClientOptions& options);
std::shared_ptr<Client::Impl> make_varlink_backend(const ClientOptions& options);

} // namespace promisc
