#include "varlink_server.hpp"

#include "log.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <stdexcept>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <system_error>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

namespace promiscd::varlink {

namespace {

constexpr size_t read_chunk = 64 * 1024;

void close_all(std::vector<int>& fds) {
    for (int fd : fds)
        if (fd >= 0)
            ::close(fd);
    fds.clear();
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
    int pidfd = -1;
    socklen_t plen = sizeof pidfd;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &plen) == 0 && pidfd >= 0)
        p.pidfd = pidfd;
    return p;
}

} // namespace

// ---------------------------------------------------------------- connection

Connection::Connection(Server& server, int fd, PeerCredentials peer, uint64_t id)
    : server_(server), fd_(fd), peer_(std::move(peer)), id_(id) {
    sd_event_source* s = nullptr;
    int r =
        sd_event_add_io(server_.event_, &s, fd_, EPOLLIN | EPOLLRDHUP, &Connection::on_io, this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "varlink connection source");
    source_.reset(s);
    sd_event_source_set_description(s, "varlink-connection");
}

Connection::~Connection() {
    source_.reset();
    if (fd_ >= 0)
        ::close(fd_);
    if (peer_.pidfd >= 0)
        ::close(peer_.pidfd);
    for (auto& o : out_)
        close_all(o.fds);
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

void Connection::on_readable() {
    const size_t limit = server_.limits_.max_message_bytes;
    while (open() && !closing_) {
        // Pipelined calls wait here; the buffer never holds more than one
        // message at its largest plus one read.
        if (in_.size() > limit + read_chunk)
            break;
        size_t old = in_.size();
        in_.resize(old + read_chunk);
        ssize_t n = ::read(fd_, in_.data() + old, read_chunk);
        if (n < 0) {
            in_.resize(old);
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                close(true);
            break;
        }
        in_.resize(old + static_cast<size_t>(n));
        if (n == 0) {
            close(true);
            return;
        }
        dispatch();
    }
    update_events();
}

void Connection::dispatch() {
    const size_t limit = server_.limits_.max_message_bytes;
    while (open() && !closing_ && !call_in_progress_) {
        auto nul = in_.find('\0');
        if (nul == std::string::npos) {
            if (in_.size() > limit) {
                log::warning("varlink: connection " + std::to_string(id_) + " (uid " +
                             std::to_string(peer_.uid) + ") sent a message larger than " +
                             std::to_string(limit) + " bytes; disconnecting");
                error("org.varlink.service.InvalidParameter",
                      {{"parameter", "message larger than " + std::to_string(limit) + " bytes"}});
                close();
            }
            return;
        }
        if (nul > limit) {
            error("org.varlink.service.InvalidParameter",
                  {{"parameter", "message larger than " + std::to_string(limit) + " bytes"}});
            close();
            return;
        }
        std::string text = in_.substr(0, nul);
        in_.erase(0, nul + 1);
        json msg = json::parse(text, nullptr, false);
        if (msg.is_discarded()) {
            // Not JSON: the stream cannot be trusted any more.
            log::debug("varlink: connection " + std::to_string(id_) + " sent invalid JSON");
            close(true);
            return;
        }
        Call call;
        auto bad = [&](const char* parameter) {
            error("org.varlink.service.InvalidParameter", {{"parameter", parameter}});
        };
        if (!msg.is_object()) {
            bad("message is not a JSON object");
            continue;
        }
        if (!msg.contains("method") || !msg["method"].is_string()) {
            bad("method");
            continue;
        }
        call.method = msg["method"].get<std::string>();
        if (msg.contains("parameters")) {
            if (!msg["parameters"].is_object()) {
                bad("parameters");
                continue;
            }
            call.parameters = msg["parameters"];
        }
        for (const char* flag : {"more", "oneway"}) {
            if (msg.contains(flag) && !msg[flag].is_boolean()) {
                bad(flag);
                call.method.clear();
            }
        }
        if (call.method.empty())
            continue;
        call.more = msg.value("more", false);
        call.oneway = msg.value("oneway", false);
        oneway_ = call.oneway;
        call_in_progress_ = !call.oneway;
        server_.handler_.call(shared_from_this(), std::move(call));
    }
}

void Connection::reply(const json& parameters, bool continues, std::vector<int> fds) {
    if (!open() || oneway_ || !call_in_progress_) {
        close_all(fds);
        return;
    }
    json msg = {{"parameters", parameters}};
    if (continues)
        msg["continues"] = true;
    else
        call_in_progress_ = false;
    queue(msg.dump() + std::string(1, '\0'), std::move(fds));
    if (!call_in_progress_)
        dispatch(); // the next pipelined call, if any
}

void Connection::error(const std::string& name, const json& parameters) {
    if (!open() || oneway_) {
        call_in_progress_ = false;
        return;
    }
    call_in_progress_ = false;
    json msg = {{"error", name}, {"parameters", parameters}};
    queue(msg.dump() + std::string(1, '\0'), {});
}

void Connection::queue(std::string message, std::vector<int> fds) {
    out_bytes_ += message.size();
    out_.push_back(Out{std::move(message), 0, std::move(fds)});
    if (out_bytes_ > server_.limits_.max_output_bytes) {
        log::warning("varlink: connection " + std::to_string(id_) + " (uid " +
                     std::to_string(peer_.uid) + ") does not read its replies; disconnecting");
        close(true);
        return;
    }
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
    source_.reset();
    ::close(fd_);
    fd_ = -1;
    for (auto& o : out_)
        close_all(o.fds);
    out_.clear();
    out_bytes_ = 0;
    in_.clear();
    server_.drop(id_);
}

// ---------------------------------------------------------------- server

Server::Server(sd_event* event, int listen_fd, Handler& handler, Limits limits)
    : event_(event), listen_fd_(listen_fd), handler_(handler), limits_(limits) {
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
            static_cast<Server*>(userdata)->closed_.clear();
            return 0;
        },
        this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "varlink reaper");
    reaper_.reset(s);
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

Server::~Server() {
    source_.reset();
    reaper_.reset();
    auto conns = std::move(connections_);
    connections_.clear();
    conns.clear();
    closed_.clear();
    ::close(listen_fd_);
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
    if (::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
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
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0 ||
        ::chmod(path.c_str(), 0666) < 0 || ::listen(fd, SOMAXCONN) < 0) {
        int err = errno;
        ::close(fd);
        throw std::system_error(err, std::generic_category(), "cannot listen on " + path);
    }
    return fd;
}

int Server::on_accept(sd_event_source*, int, uint32_t, void* userdata) {
    static_cast<Server*>(userdata)->accept_one();
    return 0;
}

void Server::accept_one() {
    for (;;) {
        int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != ECONNABORTED)
                log::warning(std::string("varlink: accept failed: ") + std::strerror(errno));
            return;
        }
        PeerCredentials peer;
        try {
            peer = read_peer(fd);
        } catch (const std::exception& e) {
            log::warning(std::string("varlink: ") + e.what());
            ::close(fd);
            continue;
        }
        unsigned same_uid = 0;
        for (const auto& [id, c] : connections_)
            if (c->peer().uid == peer.uid)
                ++same_uid;
        if (same_uid >= limits_.max_connections_per_uid) {
            json msg = {{"error", "org.promiscd.Promisc.QuotaExceeded"},
                        {"parameters",
                         {{"message", "uid " + std::to_string(peer.uid) + " already has " +
                                          std::to_string(same_uid) + " connections (limit " +
                                          std::to_string(limits_.max_connections_per_uid) + ")"}}}};
            std::string text = msg.dump() + std::string(1, '\0');
            (void)!::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            ::close(fd);
            if (peer.pidfd >= 0)
                ::close(peer.pidfd);
            continue;
        }
        uint64_t id = next_id_++;
        try {
            auto c = std::make_shared<Connection>(*this, fd, std::move(peer), id);
            connections_.emplace(id, std::move(c));
        } catch (const std::exception& e) {
            log::warning(std::string("varlink: ") + e.what());
            ::close(fd);
            continue;
        }
        if (on_connections_changed)
            on_connections_changed();
    }
}

void Server::drop(uint64_t id) {
    auto it = connections_.find(id);
    if (it == connections_.end())
        return;
    auto c = it->second;
    connections_.erase(it);
    // Destroyed later: we may be inside one of its callbacks.
    closed_.push_back(c);
    sd_event_source_set_enabled(reaper_.get(), SD_EVENT_ONESHOT);
    handler_.closed(*c);
    if (on_connections_changed)
        on_connections_changed();
}

} // namespace promiscd::varlink
