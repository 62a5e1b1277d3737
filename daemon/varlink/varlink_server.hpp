// The varlink transport: a UNIX stream socket carrying NUL-terminated JSON
// messages. This file knows the protocol and its limits (message size,
// connections per uid, output backlog), nothing of promiscd's methods.
#pragma once

#include "service.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
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
    int pidfd = -1;            // SO_PEERPIDFD where the kernel has it, else -1
};

struct Limits {
    size_t max_message_bytes = 64 * 1024;
    unsigned max_connections_per_uid = 16;
    // Replies a client has not read yet; past this it is disconnected.
    size_t max_output_bytes = 4 * 1024 * 1024;
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

    // Answer the call in progress. continues=true keeps it open (a "more"
    // call); fds are sent with SCM_RIGHTS alongside this reply and closed
    // here afterwards.
    void reply(const json& parameters, bool continues = false, std::vector<int> fds = {});
    void error(const std::string& name, const json& parameters = json::object());
    // Close after what is queued has been written (or at once when `now`).
    void close(bool now = false);

private:
    friend class Server;
    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    void on_readable();
    void on_writable();
    void dispatch();
    void queue(std::string message, std::vector<int> fds);
    void update_events();

    Server& server_;
    int fd_;
    PeerCredentials peer_;
    uint64_t id_;
    EventSourcePtr source_;
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
    bool closing_ = false;
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
    // Must eventually reply (unless oneway) or close the connection.
    virtual void call(const std::shared_ptr<Connection>& connection, Call call) = 0;
    virtual void closed(Connection& connection) = 0;
};

class Server {
public:
    // Takes ownership of listen_fd (a listening, non-blocking socket).
    Server(sd_event* event, int listen_fd, Handler& handler, Limits limits);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Create, bind (mode 0666: authorization happens per call) and listen.
    static int listen_on(const std::string& path);

    size_t connections() const { return connections_.size(); }
    void set_limits(const Limits& limits) { limits_ = limits; }
    const Limits& limits() const { return limits_; }
    // Runs whenever the number of connections changes.
    std::function<void()> on_connections_changed;

private:
    friend class Connection;
    static int on_accept(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    void accept_one();
    void drop(uint64_t id);

    sd_event* event_;
    int listen_fd_;
    Handler& handler_;
    Limits limits_;
    EventSourcePtr source_;
    EventSourcePtr reaper_;
    std::map<uint64_t, std::shared_ptr<Connection>> connections_;
    std::vector<std::shared_ptr<Connection>> closed_;
    uint64_t next_id_ = 1;
};

} // namespace promiscd::varlink
