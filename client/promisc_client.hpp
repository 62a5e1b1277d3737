// libpromisc: the C++ client of promiscd's D-Bus API (org.promiscd.Promisc1),
// built on the proxies generated from the XML contract. It turns D-Bus errors
// back into typed exceptions and follows the daemon's signals on one thread:
// the caller runs the loop (poll_data() and dispatch()), nothing runs behind
// its back.
#pragma once

#include "client/errors.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace promiscd::client {

// An owned file descriptor (closed on destruction).
class UniqueFd {
public:
    UniqueFd() = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
    UniqueFd& operator=(UniqueFd&& o) noexcept;
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd = -1) noexcept;
    explicit operator bool() const noexcept { return fd_ >= 0; }

private:
    int fd_ = -1;
};

// A link as ListLinks and the Link object describe it.
struct LinkInfo {
    std::string path;
    std::int32_t index = 0;
    std::string name;
    bool admin_flag = false;       // IFF_PROMISC, the admin bit
    std::uint32_t promiscuity = 0; // the kernel's count
    bool promiscuous = false;      // promiscuity > 0
    std::string origin;            // "none", "daemon", "admin", "unknown"
    std::uint32_t leases = 0;
    std::string policy; // "enforce", "yield"
    // How often another agent changed the admin flag: from the Link object
    // and varlink's ListLinks (D-Bus's ListLinks does not carry it).
    std::optional<std::uint64_t> external_changes;
    // A link of another network namespace: the namespace as named, its inode.
    std::string netns;
    std::uint64_t netns_inode = 0;
};

// A lease as ListLeases and the Lease object describe it.
struct LeaseInfo {
    std::string path;
    std::uint64_t id = 0;
    std::string interface;
    std::string state; // "active", "pending", "overridden"
    // A unique bus name, "varlink:<n>", "config:static" (the configuration
    // file) or "config:hold" (promiscd --hold).
    std::string owner;
    std::uint32_t uid = 0;
    std::uint32_t pid = 0;
    std::string command; // empty when only signals described the lease
    std::string reason;
    std::uint64_t acquired_usec = 0; // CLOCK_REALTIME
    std::uint64_t expires_usec = 0;  // CLOCK_REALTIME, 0 = never
    // On a link of another network namespace: as named, and its inode.
    std::string netns;
    std::uint64_t netns_inode = 0;
};

// How a lease ended, beyond its reason: for a revocation, who and why.
struct LeaseEnd {
    std::string reason;     // "released", "expired", "revoked", ...
    std::string revoked_by; // e.g. ":1.7 (uid 0, pid 42, promiscctl)"
    std::optional<std::uint32_t> revoked_by_uid;
    std::string message; // the revoker's reason, may be empty
};

struct CaptureInfo {
    std::string path;
    std::uint64_t id = 0;
    std::string interface;
    std::string filter;
    std::string format;
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t drops = 0;
};

struct LeaseOptions {
    std::uint64_t ttl_sec = 0; // 0: no expiry
    std::string reason;
    bool wait = false; // a pending lease when the link is absent, instead of NoSuchInterface
    std::string netns; // another network namespace: NAME, pid:N or /PATH; empty: promiscd's
};

struct CaptureOptions {
    std::string filter;            // pcap-filter; empty: every frame
    std::uint32_t snaplen = 0;     // 0: the daemon's default
    bool promisc = true;           // the capture holds a lease
    std::string format;            // "pcapng" (empty: the daemon's default), "pcap", "socket"
    std::uint32_t buffer_size = 0; // 0: the daemon's default
    std::uint64_t count = 0;       // 0: no limit
    std::string netns;             // as for LeaseOptions
};

// What happened on the daemon's side, as a Watcher reports it.
struct Event {
    enum class Type {
        LinkAdded,
        LinkChanged,
        LinkRemoved,
        LeaseGranted,
        LeaseChanged,
        LeaseEnded,
        CaptureStarted,
        CaptureChanged,
        CaptureFinished,
        Conflict,
        FlagChanged, // the admin flag, as the daemon saw it change and who changed it
        DaemonStarted,
        DaemonStopped,
    };
    Type type = Type::LinkChanged;
    std::uint64_t timestamp_usec = 0; // CLOCK_REALTIME when it was received
    std::vector<std::string> changed; // property names, for *Changed
    LinkInfo link, previous_link;     // Link*: state after (and before) the change
    LeaseInfo lease, previous_lease;  // Lease*
    CaptureInfo capture;              // Capture*
    std::string reason;               // LeaseEnded, CaptureFinished ("" when unknown)
    LeaseEnd end;                     // LeaseEnded: the reason and, for a revocation, who and why
    std::string interface;            // Conflict, FlagChanged
    std::uint32_t clears = 0;         // Conflict
    bool flag_on = false;             // FlagChanged: the flag after the change
    std::string by;                   // FlagChanged: "promiscd" or "another agent"
};

// The lease path of an id and back ("/org/promiscd/Promisc1/lease/3" ↔ 3).
std::string lease_path(std::uint64_t id);
// The numeric last element of a daemon object path, if it has one.
std::optional<std::uint64_t> id_of_path(std::string_view path);

class Client;

// A lease this process holds. It belongs to the Client's bus connection: it
// ends when the process leaves the bus, and ~Lease releases it if still held.
// Callbacks run from Client::dispatch(). Must not outlive its Client.
class Lease {
public:
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    const std::string& path() const noexcept;
    std::uint64_t id() const noexcept;
    const LeaseInfo& info() const noexcept; // as last seen
    bool ended() const noexcept;
    const std::string& end_reason() const noexcept;
    // The reason, and for a revocation who revoked it and why (set before
    // on_ended's callback runs).
    const LeaseEnd& end() const noexcept;

    void on_state_changed(std::function<void(const std::string& from, const std::string& to)> cb);
    void on_ended(std::function<void(const std::string& reason)> cb);

    // Lease.Release(); the lease counts as ended ("released") once it returns.
    void release();
    void renew(std::uint64_t ttl_sec);
    // Re-read the lease (after the daemon restarted); false when it is gone.
    bool refresh();

    struct State;

private:
    friend class Client;
    explicit Lease(std::shared_ptr<State> state);
    std::shared_ptr<State> state_;
};

// A capture this process opened: the stream's fd and the Capture object.
class Capture {
public:
    ~Capture();
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;

    const std::string& path() const noexcept;
    std::uint64_t id() const noexcept;
    // The read end of the pipe (or the packet socket for format "socket").
    const UniqueFd& fd() const noexcept;
    UniqueFd take_fd() noexcept;
    // Counters as the Capture object last reported them.
    const CaptureInfo& info() const noexcept;
    bool finished() const noexcept;
    const std::string& finish_reason() const noexcept;

    void on_finished(std::function<void(const std::string& reason)> cb);
    // Capture.Stop(); the stream then ends cleanly.
    void stop();

    struct State;

private:
    friend class Client;
    explicit Capture(std::shared_ptr<State> state);
    std::shared_ptr<State> state_;
};

// Follows links, leases and captures: loads them once, then keeps them up to
// date from the daemon's signals and reports each change. Must not outlive
// its Client.
class Watcher {
public:
    ~Watcher();
    Watcher(const Watcher&) = delete;
    Watcher& operator=(const Watcher&) = delete;

    void on_event(std::function<void(const Event&)> cb);
    // Whether the daemon announces every change of a link's admin flag
    // with Manager.FlagChanged (FlagChanged events), so that a
    // LinkChanged's AdminFlag need not be explained.
    bool reports_flag_changes() const;
    std::vector<LinkInfo> links() const;
    std::vector<LeaseInfo> leases() const;

    struct State;

private:
    friend class Client;
    explicit Watcher(std::shared_ptr<State> state);
    std::shared_ptr<State> state_;
};

class Client {
public:
    struct Options {
        // Set ALLOW_INTERACTIVE_AUTHORIZATION on every call, so that polkit
        // may ask the person for a password through an agent. Calls then
        // wait longer for an answer (someone is typing).
        bool interactive = false;
    };

    // Connects to the system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured).
    // Throws Error(DaemonUnreachable) when there is none.
    Client();
    explicit Client(Options options);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Whether promiscd currently owns its name on the bus.
    bool daemon_running();

    std::vector<LinkInfo> list_links();
    std::vector<LeaseInfo> list_leases();
    std::unique_ptr<Lease> acquire(const std::string& interface, const LeaseOptions& options = {});
    // Lease.Release() on any lease: the owner's release; for anyone else the
    // daemon treats it as a revocation (org.promiscd.manage).
    void release(const std::string& lease_path);
    void revoke(const std::string& lease_path, const std::string& reason);
    void set_policy(const std::string& interface, const std::string& policy);
    std::unique_ptr<Capture> open_capture(const std::string& interface,
                                          const CaptureOptions& options = {});
    std::unique_ptr<Watcher> watch();

    // Called with false when promiscd leaves the bus, true when it is back.
    void on_daemon_presence(std::function<void(bool running)> cb);

    // Loop integration: wait until fd has `events` (poll(2) bits) or the
    // CLOCK_MONOTONIC time timeout_usec (UINT64_MAX: none), then dispatch().
    struct PollData {
        int fd = -1;
        short events = 0;
        std::uint64_t timeout_usec = UINT64_MAX;
    };
    PollData poll_data() const;
    // Processes everything the connection has queued and runs the callbacks.
    // Throws Error(DaemonUnreachable) when the connection to the bus is lost.
    void dispatch();

    struct Impl;

private:
    friend class Lease;
    friend class Capture;
    std::unique_ptr<Impl> impl_;
};

} // namespace promiscd::client
