#include "varlink_server.hpp"

#include "log.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <malloc.h>
#include <stdexcept>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <system_error>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace promiscd::varlink {

namespace {

constexpr size_t read_chunk = 64 * 1024;
constexpr uint64_t idle_check_usec = 10'000'000;
// Closed connections that held this much are worth giving back to the system.
constexpr size_t trim_after = 1024 * 1024;

void close_all(std::vector<int>& fds) {
    for (int fd : fds)
        if (fd >= 0)
            ::close(fd);
    fds.clear();
}

std::string serialize(const json& msg) {
    // Strings from the kernel or /proc may not be UTF-8: replaced, never a throw.
    return msg.dump(-1, ' ', false, json::error_handler_t::replace) + std::string(1, '\0');
}

PeerCredentials read_peer(int fd) {
    PeerCredentials p;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        throw std::system_error(errno, std::generic_category(), "SO_PEERCRED");
    p.uid = cred.uid;
    p.pid = cred.pid;
    p.gid = cred.gid;
    std::vector<gid_t> groups(64);
    for (;;) {
        socklen_t glen = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &glen) == 0) {
            groups.resize(glen / sizeof(gid_t));
            break;
        }
        if (errno != ERANGE || groups.size() > 65536) {
            groups.clear();
            break;
        }
        groups.resize(glen / sizeof(gid_t) + 1);
    }
    p.groups = std::move(groups);
    return p;
}

unsigned nofile_cap(unsigned wanted) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
        return wanted;
    // Keep a quarter (at least 64) for the bus, rtnetlink, captures and the
    // filter compiler: a full varlink socket must not starve them.
    const rlim_t reserve = std::max<rlim_t>(64, rl.rlim_cur / 4);
    const rlim_t room = rl.rlim_cur > reserve ? rl.rlim_cur - reserve : 1;
    return static_cast<unsigned>(std::min<rlim_t>(wanted, room));
}

} // namespace

unsigned json_depth(std::string_view t, unsigned limit) {
    unsigned depth = 0, deepest = 0;
    bool in_string = false;
    for (size_t i = 0; i < t.size(); ++i) {
        const char c = t[i];
        if (in_string) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
            if (deepest > limit)
                return deepest;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

// ---------------------------------------------------------------- connection

Connection::Connection(Server& server, int fd, PeerCredentials peer, uint64_t id)
    : server_(server), fd_(fd), peer_(std::move(peer)), id_(id), last_active_(server.now()) {
    sd_event_source* s = nullptr;
    int r =
        sd_event_add_io(server_.event_, &s, fd_, EPOLLIN | EPOLLRDHUP, &Connection::on_io, this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "varlink connection source");
    source_.reset(s);
    sd_event_source_set_description(s, "varlink-connection");
    r = sd_event_add_defer(server_.event_, &s, &Connection::on_pump, this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "varlink connection pump");
    pump_.reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

Connection::~Connection() {
    pump_.reset();
    source_.reset();
    if (fd_ >= 0)
        ::close(fd_);
    for (auto& o : out_)
        close_all(o.fds);
}

bool Connection::peer_alive() const {
    if (fd_ < 0)
        return false;
    int pidfd = -1;
    socklen_t len = sizeof pidfd;
    if (::getsockopt(fd_, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0 || pidfd < 0)
        return errno != ESRCH; // an old kernel cannot tell; a gone process can
    const bool alive =
        ::syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0 || errno != ESRCH;
    ::close(pidfd);
    return alive;
}

int Connection::on_io(sd_event_source*, int, uint32_t revents, void* userdata) {
    auto self = static_cast<Connection*>(userdata)->shared_from_this();
    if (revents & EPOLLOUT)
        self->on_writable();
    if (self->open() && (revents & EPOLLIN))
        self->on_readable();
    if (self->open() && (revents & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) && !(revents & EPOLLIN))
        self->close(true);
    return 0;
}

int Connection::on_pump(sd_event_source*, void* userdata) {
    auto self = static_cast<Connection*>(userdata)->shared_from_this();
    self->dispatch();
    self->update_events();
    return 0;
}

char* Server::scratch() {
    if (!scratch_)
        scratch_ = std::make_unique<char[]>(read_chunk);
    return scratch_.get();
}

void Connection::on_readable() {
    const size_t limit = server_.limits_.max_message_bytes;
    for (unsigned reads = 0; reads < Server::kReadsPerTurn && open() && !closing_; ++reads) {
        // Pipelined calls wait here; the buffer never holds more than one
        // message at its largest plus one read.
        if (in_.size() > limit + read_chunk)
            break;
        char* chunk = server_.scratch();
        ssize_t n = ::read(fd_, chunk, read_chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                close(true);
            break;
        }
        in_.append(chunk, static_cast<size_t>(n));
        if (n == 0) {
            close(true);
            return;
        }
        last_active_ = server_.now();
        dispatch();
        if (static_cast<size_t>(n) < read_chunk)
            break;
    }
    update_events();
}

void Connection::dispatch() {
    const size_t limit = server_.limits_.max_message_bytes;
    // Not a call anyone could answer: answered here, as if it were one; but
    // never when it asked for no answer (varlink: the next reply a client
    // reads must be its next call's).
    auto refuse = [&](const std::string& name, json params, bool oneway = false) {
        call_in_progress_ = true;
        oneway_ = oneway;
        more_ = false;
        error(name, params);
    };
    for (unsigned calls = 0; calls < Server::kCallsPerTurn; ++calls) {
        if (!open() || closing_ || call_in_progress_)
            return;
        auto nul = in_.find('\0');
        if (nul == std::string::npos) {
            if (in_.size() > limit) {
                server_.warn("varlink: connection " + std::to_string(id_) + " (uid " +
                             std::to_string(peer_.uid) + ") sent a message larger than " +
                             std::to_string(limit) + " bytes; disconnecting");
                refuse("org.varlink.service.InvalidParameter",
                       {{"parameter", "message larger than " + std::to_string(limit) + " bytes"}});
                close();
            }
            return;
        }
        if (nul > limit) {
            refuse("org.varlink.service.InvalidParameter",
                   {{"parameter", "message larger than " + std::to_string(limit) + " bytes"}});
            close();
            return;
        }
        std::string_view text(in_.data(), nul);
        const unsigned max_depth = server_.limits_.max_depth;
        if (json_depth(text, max_depth) > max_depth) {
            in_.erase(0, nul + 1);
            refuse("org.varlink.service.InvalidParameter",
                   {{"parameter",
                     "message nested deeper than " + std::to_string(max_depth) + " levels"}});
            continue;
        }
        json msg = json::parse(text, nullptr, false);
        in_.erase(0, nul + 1);
        if (msg.is_discarded()) {
            // Not JSON: the stream cannot be trusted any more.
            log::debug("varlink: connection " + std::to_string(id_) + " sent invalid JSON");
            close(true);
            return;
        }
        if (!msg.is_object()) {
            refuse("org.varlink.service.InvalidParameter",
                   {{"parameter", "message is not a JSON object"}});
            continue;
        }
        const auto ow = msg.find("oneway");
        const bool oneway = ow != msg.end() && ow->is_boolean() && ow->get<bool>();
        auto bad = [&](const char* parameter) {
            if (oneway)
                log::debug("varlink: connection " + std::to_string(id_) +
                           " sent a oneway call with an invalid '" + parameter +
                           "'; dropped unanswered");
            refuse("org.varlink.service.InvalidParameter", {{"parameter", parameter}}, oneway);
        };
        auto method = msg.find("method");
        if (method == msg.end() || !method->is_string()) {
            bad("method");
            continue;
        }
        Call call;
        call.method = method->get<std::string>();
        if (auto p = msg.find("parameters"); p != msg.end()) {
            // Absent and null are the same: no parameters (what some clients,
            // such as Go's varlink, send for a method without any).
            if (p->is_object())
                call.parameters = std::move(*p);
            else if (!p->is_null()) {
                bad("parameters");
                continue;
            }
        }
        bool flags_ok = true;
        for (const char* f : {"more", "oneway"}) {
            auto v = msg.find(f);
            if (v != msg.end() && !v->is_boolean() && !v->is_null()) {
                bad(f);
                flags_ok = false;
                break;
            }
        }
        if (!flags_ok)
            continue;
        auto set = [&](const char* f) {
            auto v = msg.find(f);
            return v != msg.end() && v->is_boolean() && v->get<bool>();
        };
        call.more = set("more");
        call.oneway = set("oneway");
        oneway_ = call.oneway;
        more_ = call.more;
        call_in_progress_ = true;
        auto self = shared_from_this();
        try {
            server_.handler_.call(self, std::move(call));
        } catch (const std::exception& e) {
            log::error(std::string("varlink: a call failed: ") + e.what());
            if (open() && call_in_progress_)
                error(server_.handler_.internal_error(), {{"message", e.what()}});
        }
    }
    // The slice is used up: the rest waits for the next turn of the loop.
    if (open() && !call_in_progress_ && in_.find('\0') != std::string::npos)
        sd_event_source_set_enabled(pump_.get(), SD_EVENT_ONESHOT);
}

void Connection::answered() {
    call_in_progress_ = false;
    oneway_ = more_ = false;
    last_active_ = server_.now();
    // The next call waits for the loop's next turn, after everyone else.
    if (open() && !closing_ && in_.find('\0') != std::string::npos)
        sd_event_source_set_enabled(pump_.get(), SD_EVENT_ONESHOT);
    update_events();
}

void Connection::reply(const json& parameters, bool continues, std::vector<int> fds) {
    if (!open() || !call_in_progress_) {
        close_all(fds);
        return;
    }
    if (oneway_) {
        close_all(fds);
        if (!continues)
            answered();
        return;
    }
    json msg = {{"parameters", parameters}};
    if (continues)
        msg["continues"] = true;
    queue(serialize(msg), std::move(fds));
    if (!continues && open())
        answered();
}

void Connection::error(const std::string& name, const json& parameters) {
    if (!open() || !call_in_progress_)
        return;
    if (!oneway_)
        queue(serialize({{"error", name}, {"parameters", parameters}}), {});
    if (open())
        answered();
}

void Connection::queue(std::string message, std::vector<int> fds) {
    out_bytes_ += message.size();
    server_.out_total_ += message.size();
    out_.push_back(Out{std::move(message), 0, std::move(fds)});
    if (out_bytes_ > server_.limits_.max_output_bytes) {
        server_.warn("varlink: connection " + std::to_string(id_) + " (uid " +
                     std::to_string(peer_.uid) + ") does not read its replies; disconnecting");
        close(true);
        return;
    }
    if (server_.out_total_ > server_.limits_.max_total_output_bytes)
        server_.over_budget();
    if (open())
        on_writable();
}

void Connection::on_writable() {
    while (open() && !out_.empty()) {
        Out& o = out_.front();
        iovec iov{o.data.data() + o.sent, o.data.size() - o.sent};
        msghdr mh{};
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        std::vector<char> control;
        if (!o.fds.empty() && o.sent == 0) {
            control.resize(CMSG_SPACE(sizeof(int) * o.fds.size()));
            mh.msg_control = control.data();
            mh.msg_controllen = control.size();
            cmsghdr* c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * o.fds.size());
            std::memcpy(CMSG_DATA(c), o.fds.data(), sizeof(int) * o.fds.size());
        }
        ssize_t n = ::sendmsg(fd_, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                close(true);
            break;
        }
        if (!o.fds.empty())
            close_all(o.fds); // the client has its copies now
        o.sent += static_cast<size_t>(n);
        out_bytes_ -= static_cast<size_t>(n);
        server_.out_total_ -= static_cast<size_t>(n);
        if (o.sent == o.data.size())
            out_.erase(out_.begin());
    }
    if (open() && closing_ && out_.empty()) {
        close(true);
        return;
    }
    update_events();
}

void Connection::update_events() {
    if (!open() || !source_)
        return;
    uint32_t events = EPOLLRDHUP;
    if (!closing_ && in_.size() <= server_.limits_.max_message_bytes + read_chunk)
        events |= EPOLLIN;
    if (!out_.empty())
        events |= EPOLLOUT;
    sd_event_source_set_io_events(source_.get(), events);
}

void Connection::close(bool now) {
    if (!open())
        return;
    if (!now && !out_.empty()) {
        closing_ = true;
        update_events();
        return;
    }
    const size_t held = held_bytes();
    pump_.reset();
    source_.reset();
    ::close(fd_);
    fd_ = -1;
    for (auto& o : out_)
        close_all(o.fds);
    out_.clear();
    server_.out_total_ -= out_bytes_;
    out_bytes_ = 0;
    std::string().swap(in_);
    server_.freed_ += held;
    server_.drop(id_);
}

// ---------------------------------------------------------------- server

Server::Server(sd_event* event, int listen_fd, Handler& handler, Limits limits)
    : event_(event), listen_fd_(listen_fd), handler_(handler), limits_(limits),
      cap_(nofile_cap(limits.max_connections)) {
    int flags = ::fcntl(listen_fd_, F_GETFL);
    if (flags >= 0)
        ::fcntl(listen_fd_, F_SETFL, flags | O_NONBLOCK);
    sd_event_source* s = nullptr;
    int r = sd_event_add_io(event_, &s, listen_fd_, EPOLLIN, &Server::on_accept, this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "varlink listen source");
    source_.reset(s);
    sd_event_source_set_description(s, "varlink-listen");
    r = sd_event_add_defer(
        event_, &s,
        [](sd_event_source*, void* userdata) {
            auto* self = static_cast<Server*>(userdata);
            self->closed_.clear();
            // Large buffers of closed connections go back to the system, so
            // a burst of clients that never read leaves no resident memory.
            if (self->freed_ >= trim_after) {
                ::malloc_trim(0);
                self->freed_ = 0;
            }
            return 0;
        },
        this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "varlink reaper");
    reaper_.reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    r = sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, idle_interval(), 0,
                                   &Server::on_idle_check, this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "varlink idle timer");
    idle_timer_.reset(s);
    r = sd_event_add_time(event_, &s, CLOCK_MONOTONIC, UINT64_MAX, 0, &Server::on_resume, this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "varlink resume timer");
    resume_timer_.reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

Server::~Server() {
    source_.reset();
    reaper_.reset();
    idle_timer_.reset();
    resume_timer_.reset();
    auto conns = std::move(connections_);
    connections_.clear();
    conns.clear();
    closed_.clear();
    ::close(listen_fd_);
}

void Server::set_limits(const Limits& limits) {
    limits_ = limits;
    cap_ = nofile_cap(limits.max_connections);
    if (connections_.size() < cap_)
        resume_accepting();
}

int Server::listen_on(const std::string& path) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path)
        throw std::runtime_error("varlink socket path too long: " + path);
    std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        throw std::system_error(errno, std::generic_category(), "varlink socket");
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            ::close(fd);
            throw std::runtime_error(path + " exists and is not a socket; not replacing it");
        }
        // Left behind by an earlier run, unless someone still answers on it.
        int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live =
            probe >= 0 && ::connect(probe, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
        if (probe >= 0)
            ::close(probe);
        if (live) {
            ::close(fd);
            throw std::runtime_error("another process is serving varlink on " + path);
        }
        ::unlink(path.c_str());
    }
    // The socket's mode comes from its inode and the umask at bind(): set
    // both, rather than chmod() the path afterwards (someone could have put
    // something else there by then).
    if (::fchmod(fd, 0666) < 0) {
        int err = errno;
        ::close(fd);
        throw std::system_error(err, std::generic_category(), "cannot set the mode of " + path);
    }
    mode_t old = ::umask(0);
    int r = ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    int err = errno;
    ::umask(old);
    if (r < 0 || ::listen(fd, SOMAXCONN) < 0) {
        if (r == 0)
            err = errno;
        ::close(fd);
        throw std::system_error(err, std::generic_category(), "cannot listen on " + path);
    }
    return fd;
}

void Server::warn(const std::string& text) {
    // At most ten at once, then one a second: a flood of misbehaving clients
    // must not become a flood of log lines.
    const uint64_t t = now();
    warn_tokens_ = std::min(10.0, warn_tokens_ + double(t - warn_last_) / 1e6);
    warn_last_ = t;
    if (warn_tokens_ < 1) {
        ++warn_suppressed_;
        return;
    }
    warn_tokens_ -= 1;
    if (warn_suppressed_) {
        log::warning("varlink: " + std::to_string(warn_suppressed_) +
                     " similar messages suppressed");
        warn_suppressed_ = 0;
    }
    log::warning(text);
}

int Server::on_accept(sd_event_source*, int, uint32_t, void* userdata) {
    static_cast<Server*>(userdata)->accept_some();
    return 0;
}

void Server::pause_accepting(bool out_of_fds) {
    if (!accepting_)
        return;
    accepting_ = false;
    sd_event_source_set_enabled(source_.get(), SD_EVENT_OFF);
    if (out_of_fds) {
        // Nothing of ours may close soon (fds can be freed elsewhere): try
        // again in a second rather than spin on a readable socket.
        sd_event_source_set_time_relative(resume_timer_.get(), 1'000'000);
        sd_event_source_set_enabled(resume_timer_.get(), SD_EVENT_ONESHOT);
    }
}

void Server::resume_accepting() {
    if (accepting_ || connections_.size() >= cap_)
        return;
    accepting_ = true;
    sd_event_source_set_enabled(resume_timer_.get(), SD_EVENT_OFF);
    sd_event_source_set_enabled(source_.get(), SD_EVENT_ON);
}

int Server::on_resume(sd_event_source*, uint64_t, void* userdata) {
    static_cast<Server*>(userdata)->resume_accepting();
    return 0;
}

void Server::accept_some() {
    for (unsigned n = 0; n < kAcceptsPerTurn; ++n) {
        if (connections_.size() >= cap_) {
            // Clients wait in the listen backlog until someone leaves.
            pause_accepting(false);
            return;
        }
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                warn(std::string("varlink: cannot accept connections: ") + std::strerror(errno) +
                     "; waiting for file descriptors to be freed");
                pause_accepting(true);
            } else if (errno != EAGAIN && errno != ECONNABORTED) {
                warn(std::string("varlink: accept failed: ") + std::strerror(errno));
            }
            return;
        }
        PeerCredentials peer;
        try {
            peer = read_peer(fd);
        } catch (const std::exception& e) {
            warn(std::string("varlink: ") + e.what());
            ::close(fd);
            continue;
        }
        const unsigned same_uid = per_uid_.count(peer.uid) ? per_uid_[peer.uid] : 0;
        if (same_uid >= limits_.max_connections_per_uid) {
            json msg = {{"error", "org.promiscd.promisc.QuotaExceeded"},
                        {"parameters",
                         {{"message", "uid " + std::to_string(peer.uid) + " already has " +
                                          std::to_string(same_uid) + " connections (limit " +
                                          std::to_string(limits_.max_connections_per_uid) + ")"}}}};
            std::string text = serialize(msg);
            (void)!::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            continue;
        }
        const uint64_t id = next_id_++;
        const uid_t uid = peer.uid;
        try {
            auto c = std::make_shared<Connection>(*this, fd, std::move(peer), id);
            connections_.emplace(id, std::move(c));
            ++per_uid_[uid];
        } catch (const std::exception& e) {
            warn(std::string("varlink: ") + e.what());
            continue; // the Connection closed fd
        }
        if (on_connections_changed)
            on_connections_changed();
    }
}

void Server::over_budget() {
    std::shared_ptr<Connection> worst;
    for (const auto& [id, c] : connections_)
        if (!worst || c->out_bytes_ > worst->out_bytes_)
            worst = c;
    if (!worst)
        return;
    warn("varlink: " + std::to_string(out_total_) + " bytes of replies wait to be read, over " +
         "the limit of " + std::to_string(limits_.max_total_output_bytes) +
         "; disconnecting connection " + std::to_string(worst->id()) + " (uid " +
         std::to_string(worst->peer().uid) + "), which holds " + std::to_string(worst->out_bytes_));
    worst->close(true);
}

int Server::on_idle_check(sd_event_source* s, uint64_t, void* userdata) {
    auto* self = static_cast<Server*>(userdata);
    const uint64_t t = self->now();
    const uint64_t timeout = self->limits_.idle_timeout_usec;
    if (timeout > 0) {
        std::vector<std::shared_ptr<Connection>> idle;
        for (const auto& [id, c] : self->connections_)
            if (!c->call_in_progress_ && c->out_.empty() && c->last_active_ + timeout <= t &&
                !self->handler_.holds(*c))
                idle.push_back(c);
        for (auto& c : idle) {
            log::debug("varlink: closing connection " + std::to_string(c->id()) + " (uid " +
                       std::to_string(c->peer().uid) + "), idle and holding nothing");
            c->close(true);
        }
    }
    sd_event_source_set_time_relative(s, self->idle_interval());
    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    return 0;
}

uint64_t Server::idle_interval() const {
    // Every 10 s, or as often as the timeout when it is shorter.
    const uint64_t timeout = limits_.idle_timeout_usec;
    return timeout > 0 ? std::min(idle_check_usec, timeout) : idle_check_usec;
}

void Server::drop(uint64_t id) {
    auto it = connections_.find(id);
    if (it == connections_.end())
        return;
    auto c = it->second;
    connections_.erase(it);
    if (auto u = per_uid_.find(c->peer().uid); u != per_uid_.end() && --u->second == 0)
        per_uid_.erase(u);
    // Destroyed later: we may be inside one of its callbacks.
    closed_.push_back(c);
    sd_event_source_set_enabled(reaper_.get(), SD_EVENT_ONESHOT);
    handler_.closed(*c);
    resume_accepting();
    if (on_connections_changed)
        on_connections_changed();
}

} // namespace promiscd::varlink
