// The varlink transport: a UNIX stream socket carrying NUL-terminated JSON
// messages. This file knows the protocol and its limits, nothing of
// promiscd's methods. Every local user can reach it, so everything is bounded:
// message size and nesting depth, one call at a time per connection (oneway
// included: the next is read only once the handler is done with this one),
// calls and reads per turn of the loop, connections per uid and in all (below
// RLIMIT_NOFILE), unread replies per connection and in all, and connections
// that hold nothing are closed after an idle time.
#pragma once

#include "event.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <sys/types.h>
#include <systemd/sd-event.h>
#include <vector>

namespace promiscd::varlink {

using nlohmann::json;

struct PeerCredentials {
    uid_t uid = 0;
    pid_t pid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups; // supplementary groups (SO_PEERGROUPS)
};

struct Limits {
    size_t max_message_bytes = 64 * 1024;
    unsigned max_depth = 32; // nesting of arrays and objects in one message
    unsigned max_connections_per_uid = 16;
    unsigned max_connections = 256; // further capped below RLIMIT_NOFILE
    // Replies a client has not read yet; past this it is disconnected.
    size_t max_output_bytes = 1024 * 1024;
    // Unread replies of all clients together; past this the client with the
    // largest backlog is disconnected.
    size_t max_total_output_bytes = 32 * 1024 * 1024;
    // A connection with no call in progress that holds nothing (no lease,
    // no capture, no Monitor) is closed after this long; 0: never.
    uint64_t idle_timeout_usec = 60'000'000;
};

class Server;

// One client connection. Handlers keep weak_ptrs: a connection may close
// while a polkit check for it is pending.
class Connection : public std::enable_shared_from_this<Connection> {
public:
    Connection(Server& server, int fd, PeerCredentials peer, uint64_t id);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    uint64_t id() const { return id_; }
    const PeerCredentials& peer() const { return peer_; }
    bool open() const { return fd_ >= 0; }
    // The call in progress was sent with "more" / "oneway".
    bool more() const { return more_; }
    bool oneway() const { return oneway_; }
    // Whether the process that connected is still alive: its pidfd
    // (SO_PEERPIDFD, taken when asked, so a connection holds one fd, not
    // two) cannot be recycled as a pid can. True where the kernel cannot tell.
    bool peer_alive() const;

    // What the handler read of the peer process (its command and start
    // time): read once per connection, not once per call.
    struct ProcessInfo {
        std::string command;
        uint64_t start_time = 0;
    };
    std::optional<ProcessInfo>& process_info() { return process_; }

    // Answer the call in progress (for a oneway call: nothing is sent, the
    // call is done). continues=true keeps it open (a "more" call); fds are
    // sent with SCM_RIGHTS alongside this reply and closed here afterwards.
    // Only then is the next call on this connection read.
    void reply(const json& parameters, bool continues = false, std::vector<int> fds = {});
    void error(const std::string& name, const json& parameters = json::object());
    // Close after what is queued has been written (or at once when `now`).
    void close(bool now = false);

private:
    friend class Server;
    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_pump(sd_event_source* s, void* userdata);
    void on_readable();
    void on_writable();
    void dispatch();
    void answered();
    void queue(std::string message, std::vector<int> fds);
    void update_events();
    size_t held_bytes() const { return in_.capacity() + out_bytes_; }

    Server& server_;
    int fd_;
    PeerCredentials peer_;
    std::optional<ProcessInfo> process_;
    uint64_t id_;
    EventSourcePtr source_;
    EventSourcePtr pump_; // continues dispatching buffered calls next turn
    std::string in_;
    struct Out {
        std::string data;
        size_t sent = 0;
        std::vector<int> fds; // sent with the first byte
    };
    std::vector<Out> out_;
    size_t out_bytes_ = 0;
    bool call_in_progress_ = false; // varlink: one call at a time per connection
    bool oneway_ = false;
    bool more_ = false;
    bool closing_ = false;
    uint64_t last_active_ = 0;
};

struct Call {
    std::string method;
    json parameters = json::object();
    bool more = false;
    bool oneway = false;
};

class Handler {
public:
    virtual ~Handler() = default;
    // Must eventually reply or error (also for oneway calls, whose answer is
    // not sent) or close the connection. What it throws is answered with
    // internal_error().
    virtual void call(const std::shared_ptr<Connection>& connection, Call call) = 0;
    virtual void closed(Connection& connection) = 0;
    // Whether the connection holds something that ends with it (a lease, a
    // capture, a subscription): such a connection is never idle.
    virtual bool holds(const Connection& /*connection*/) const { return false; }
    virtual std::string internal_error() const { return "org.varlink.service.InvalidParameter"; }
};

class Server {
public:
    // Takes ownership of listen_fd (a listening, non-blocking socket).
    Server(sd_event* event, int listen_fd, Handler& handler, Limits limits);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Create, bind (mode 0666, set before bind: authorization happens per
    // call) and listen.
    static int listen_on(const std::string& path);

    size_t connections() const { return connections_.size(); }
    void set_limits(const Limits& limits);
    const Limits& limits() const { return limits_; }
    size_t output_bytes() const { return out_total_; }
    // The connection cap in effect (max_connections, below RLIMIT_NOFILE).
    unsigned connection_cap() const { return cap_; }
    // Runs whenever the number of connections changes.
    std::function<void()> on_connections_changed;

    static constexpr unsigned kCallsPerTurn = 16;
    static constexpr unsigned kReadsPerTurn = 4;
    static constexpr unsigned kAcceptsPerTurn = 16;

private:
    friend class Connection;
    static int on_accept(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_idle_check(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_resume(sd_event_source* s, uint64_t usec, void* userdata);
    void accept_some();
    void drop(uint64_t id);
    void pause_accepting(bool out_of_fds);
    void resume_accepting();
    void over_budget();
    void warn(const std::string& text);
    char* scratch();
    uint64_t idle_interval() const;
    uint64_t now() const { return loop_now(event_); }

    sd_event* event_;
    int listen_fd_;
    Handler& handler_;
    Limits limits_;
    unsigned cap_ = 0;
    EventSourcePtr source_;
    EventSourcePtr reaper_;
    EventSourcePtr idle_timer_;
    EventSourcePtr resume_timer_;
    bool accepting_ = true;
    std::map<uint64_t, std::shared_ptr<Connection>> connections_;
    std::map<uid_t, unsigned> per_uid_;
    std::vector<std::shared_ptr<Connection>> closed_;
    uint64_t next_id_ = 1;
    size_t out_total_ = 0;
    size_t freed_ = 0; // bytes released by closed connections since the last trim
    double warn_tokens_ = 10;
    uint64_t warn_last_ = 0;
    uint64_t warn_suppressed_ = 0;
    // Every read lands here first (one loop, one read at a time), so a
    // connection's buffer grows by what arrived, not by a zero-filled chunk.
    std::unique_ptr<char[]> scratch_;
};

// The deepest nesting of arrays and objects in a JSON text, stopping early
// once past `limit` (strings are skipped, so brackets in them do not count).
unsigned json_depth(std::string_view text, unsigned limit);

} // namespace promiscd::varlink
