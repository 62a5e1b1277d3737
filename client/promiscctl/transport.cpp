#include "transport.hpp"

#include "client/varlink_client.hpp"
#include "client/varlink_records.hpp"
#include "config.h"
#include "event_loop.hpp"

#include <map>
#include <sys/epoll.h>
#include <systemd/sd-bus.h>

namespace promiscd::ctl {

namespace {

using client::Error;
using client::ErrorKind;
using client::LeaseInfo;
using client::LinkInfo;
using nlohmann::json;

const std::string kIface = PROMISCD_VARLINK_INTERFACE;

// ---------------------------------------------------------------- D-Bus

class DbusLease : public HeldLease {
public:
    explicit DbusLease(std::unique_ptr<client::Lease> l) : l_(std::move(l)) {}
    const LeaseInfo& info() const override { return l_->info(); }
    bool ended() const override { return l_->ended(); }
    void on_state_changed(std::function<void(const std::string&, const std::string&)> cb) override {
        l_->on_state_changed(std::move(cb));
    }
    void on_ended(std::function<void(const std::string&)> cb) override {
        l_->on_ended(std::move(cb));
    }
    const client::LeaseEnd& end() const override { return l_->end(); }
    void release() override { l_->release(); }
    bool refresh() override { return l_->refresh(); }

private:
    std::unique_ptr<client::Lease> l_;
};

class DbusStream : public EventStream {
public:
    explicit DbusStream(std::unique_ptr<client::Watcher> w) : w_(std::move(w)) {}
    void on_event(std::function<void(const client::Event&)> cb) override {
        w_->on_event(std::move(cb));
    }
    bool reports_flag_changes() const override { return w_->reports_flag_changes(); }
    std::size_t link_count() const override { return w_->links().size(); }
    std::size_t lease_count() const override { return w_->leases().size(); }

private:
    std::unique_ptr<client::Watcher> w_;
};

class DbusCapture : public OpenedCapture {
public:
    explicit DbusCapture(std::unique_ptr<client::Capture> c) : c_(std::move(c)) {}
    std::uint64_t id() const override { return c_->id(); }
    client::UniqueFd take_fd() override { return c_->take_fd(); }
    const client::CaptureInfo& info() const override { return c_->info(); }
    bool reports_finish() const override { return true; }
    void on_finished(std::function<void(const std::string&)> cb) override {
        c_->on_finished(std::move(cb));
    }
    void stop() override { c_->stop(); }

private:
    std::unique_ptr<client::Capture> c_;
};

class DbusTransport : public Transport {
public:
    explicit DbusTransport(client::Client& c) : c_(c) {}
    TransportKind kind() const override { return TransportKind::DBus; }
    std::vector<LinkInfo> list_links() override { return c_.list_links(); }
    std::vector<LeaseInfo> list_leases() override { return c_.list_leases(); }
    void release(const std::string& path) override { c_.release(path); }
    void revoke(const std::string& path, const std::string& reason) override {
        c_.revoke(path, reason);
    }
    void set_policy(const std::string& interface, const std::string& policy) override {
        c_.set_policy(interface, policy);
    }
    std::unique_ptr<HeldLease> acquire(const std::string& interface,
                                       const client::LeaseOptions& o) override {
        return std::make_unique<DbusLease>(c_.acquire(interface, o));
    }
    std::unique_ptr<EventStream> watch() override {
        return std::make_unique<DbusStream>(c_.watch());
    }
    std::unique_ptr<OpenedCapture> open_capture(const std::string& interface,
                                                const client::CaptureOptions& o) override {
        return std::make_unique<DbusCapture>(c_.open_capture(interface, o));
    }
    void attach(EventLoop& loop, std::function<void(const Error&)> on_lost) override {
        loop.attach(c_, std::move(on_lost));
    }
    void on_daemon_presence(std::function<void(bool)> cb) override {
        c_.on_daemon_presence(std::move(cb));
    }

private:
    client::Client& c_;
};

// ---------------------------------------------------------------- varlink

using client::varlink::end_of;
using client::varlink::link_of;
using client::varlink::num;
using client::varlink::str;

// With the D-Bus object path, which promiscctl shows and takes for a lease
// whatever the transport.
LeaseInfo lease_of(const json& j) {
    LeaseInfo l = client::varlink::lease_of(j);
    l.path = client::lease_path(l.id);
    return l;
}

std::uint64_t id_of(const std::string& lease_path) {
    auto id = client::id_of_path(lease_path);
    if (!id)
        throw Error(ErrorKind::InvalidArgument, {}, "not a lease: " + lease_path);
    return *id;
}

// A connection whose replies the loop reads as they come.
class Stream {
public:
    explicit Stream(const std::string& path) : conn_(path) {}
    virtual ~Stream() = default;

    client::VarlinkClient& conn() { return conn_; }
    void attach(EventLoop& loop, std::function<void(const Error&)> on_lost) {
        on_lost_ = std::move(on_lost);
        if (!conn_.open())
            return;
        source_ = loop.on_io(conn_.fd(), EPOLLIN, [this](uint32_t) { readable(); });
        // Replies that came with the first one.
        deliver();
    }
    void close() {
        if (source_)
            sd_event_source_set_enabled(source_, SD_EVENT_OFF);
        source_ = nullptr;
        conn_.close();
    }

protected:
    virtual void handle(const client::VarlinkClient::Reply& r) = 0;
    // The daemon closed the connection; true when that is expected.
    virtual bool closed() = 0;

private:
    void deliver() {
        while (auto r = conn_.next())
            handle(*r);
    }
    void readable() {
        bool alive = conn_.read_some();
        deliver();
        if (alive)
            return;
        close();
        if (closed())
            return;
        Error e(ErrorKind::DaemonUnreachable, {},
                "the connection to promiscd at " + conn_.path() + " was closed");
        if (!on_lost_)
            throw e;
        on_lost_(e);
    }

    client::VarlinkClient conn_;
    sd_event_source* source_ = nullptr;
    std::function<void(const Error&)> on_lost_;
};

// systemd's parameter for it: polkit may ask the caller's agent (the
// password prompt of the agent promiscctl starts) and the call waits.
json ask_polkit(json p, bool interactive) {
    if (interactive)
        p["allowInteractiveAuthentication"] = true;
    return p;
}

class VarlinkLease : public HeldLease, public Stream {
public:
    VarlinkLease(const std::string& path, const std::string& interface,
                 const client::LeaseOptions& o, bool interactive)
        : Stream(path) {
        json p = {{"interface", interface}};
        if (o.ttl_sec)
            p["ttl"] = o.ttl_sec;
        if (!o.reason.empty())
            p["reason"] = o.reason;
        if (o.wait)
            p["wait"] = true;
        conn().call_more(kIface + ".Acquire", ask_polkit(std::move(p), interactive));
        auto first = conn().wait(std::chrono::minutes(2));
        if (!first.error.empty())
            client::VarlinkClient::raise(first);
        info_ = lease_of(first.parameters.value("lease", json::object()));
        if (!first.continues)
            finish(first);
    }
    const LeaseInfo& info() const override { return info_; }
    bool ended() const override { return ended_; }
    void on_state_changed(std::function<void(const std::string&, const std::string&)> cb) override {
        on_state_ = std::move(cb);
    }
    void on_ended(std::function<void(const std::string&)> cb) override {
        on_ended_ = std::move(cb);
    }
    const client::LeaseEnd& end() const override { return end_; }
    void release() override {
        // The lease lives as long as its connection.
        close();
        ended_ = true;
        end_ = client::LeaseEnd{"released", {}, {}, {}};
    }
    bool refresh() override { return !ended_; }

private:
    void finish(const client::VarlinkClient::Reply& r) {
        ended_ = true;
        end_ = end_of(r.parameters, r.error.empty() ? str(r.parameters, "ended") : r.error);
        if (on_ended_)
            on_ended_(end_.reason);
    }
    void handle(const client::VarlinkClient::Reply& r) override {
        if (ended_)
            return;
        if (auto l = r.parameters.find("lease"); l != r.parameters.end() && l->is_object()) {
            auto now = lease_of(*l);
            std::string from = info_.state;
            info_ = now;
            if (from != now.state && on_state_)
                on_state_(from, now.state);
        }
        if (!r.continues || !r.error.empty())
            finish(r);
    }
    bool closed() override { return ended_; }

    LeaseInfo info_;
    bool ended_ = false;
    client::LeaseEnd end_;
    std::function<void(const std::string&, const std::string&)> on_state_;
    std::function<void(const std::string&)> on_ended_;
};

class VarlinkStream : public EventStream, public Stream {
public:
    explicit VarlinkStream(const std::string& path) : Stream(path) {
        decoder_.seed(conn().call(kIface + ".ListLinks").value("links", json::array()),
                      conn().call(kIface + ".ListLeases").value("leases", json::array()));
        conn().call_more(kIface + ".Monitor");
        auto first = conn().wait(std::chrono::minutes(2));
        if (!first.error.empty())
            client::VarlinkClient::raise(first);
    }
    void on_event(std::function<void(const client::Event&)> cb) override { cb_ = std::move(cb); }
    bool reports_flag_changes() const override { return true; } // its "flag" events
    std::size_t link_count() const override { return decoder_.link_count(); }
    std::size_t lease_count() const override { return decoder_.lease_count(); }

private:
    void handle(const client::VarlinkClient::Reply& r) override {
        if (!r.error.empty())
            client::VarlinkClient::raise(r);
        auto it = r.parameters.find("event");
        if (it == r.parameters.end())
            return;
        if (auto e = decoder_.decode(*it); e && cb_)
            cb_(*e);
    }
    bool closed() override {
        if (cb_)
            cb_(client::varlink::EventDecoder::stopped());
        return false;
    }

    client::varlink::EventDecoder decoder_;
    std::function<void(const client::Event&)> cb_;
};

// Over varlink a capture lives as long as the connection that opened it:
// closing it is the way to stop the capture.
class VarlinkCapture : public OpenedCapture, public Stream {
public:
    VarlinkCapture(const std::string& path, const std::string& interface,
                   const client::CaptureOptions& o, bool interactive)
        : Stream(path) {
        json p = {{"interface", interface}, {"promisc", o.promisc}};
        if (!o.filter.empty())
            p["filter"] = o.filter;
        if (o.snaplen)
            p["snaplen"] = o.snaplen;
        if (!o.format.empty())
            p["format"] = o.format;
        if (o.buffer_size)
            p["buffer_size"] = o.buffer_size;
        if (o.count)
            p["count"] = o.count;
        auto reply = conn().request(kIface + ".OpenCapture", ask_polkit(std::move(p), interactive));
        if (reply.fds.size() != 1)
            throw Error(ErrorKind::Failed, {},
                        "promiscd answered OpenCapture with " + std::to_string(reply.fds.size()) +
                            " file descriptors instead of the capture stream");
        fd_ = std::move(reply.fds.front());
        info_.id = num<std::uint64_t>(reply.parameters, "capture");
        info_.interface = interface;
        info_.filter = o.filter;
        info_.format = o.format;
    }
    std::uint64_t id() const override { return info_.id; }
    client::UniqueFd take_fd() override { return std::move(fd_); }
    const client::CaptureInfo& info() const override { return info_; }
    bool reports_finish() const override { return false; }
    void on_finished(std::function<void(const std::string&)> cb) override {
        on_finished_ = std::move(cb);
    }
    void stop() override {
        if (stopped_)
            return;
        stopped_ = true;
        close();
        if (on_finished_)
            on_finished_("stopped");
    }

private:
    void handle(const client::VarlinkClient::Reply&) override {}
    bool closed() override { return stopped_; }

    client::UniqueFd fd_;
    client::CaptureInfo info_;
    bool stopped_ = false;
    std::function<void(const std::string&)> on_finished_;
};

class VarlinkTransport : public Transport {
public:
    VarlinkTransport(std::string path, std::unique_ptr<client::VarlinkClient> connected,
                     bool interactive)
        : path_(std::move(path)), ctl_(std::move(connected)), interactive_(interactive) {}
    TransportKind kind() const override { return TransportKind::Varlink; }

    std::vector<LinkInfo> list_links() override {
        std::vector<LinkInfo> out;
        for (const auto& l : ctl().call(kIface + ".ListLinks").value("links", json::array()))
            out.push_back(link_of(l));
        return out;
    }
    std::vector<LeaseInfo> list_leases() override {
        std::vector<LeaseInfo> out;
        for (const auto& l : ctl().call(kIface + ".ListLeases").value("leases", json::array()))
            out.push_back(lease_of(l));
        return out;
    }
    void release(const std::string& path) override {
        ctl().call(kIface + ".Release", ask_polkit({{"id", id_of(path)}}, interactive_));
    }
    void revoke(const std::string& path, const std::string& reason) override {
        json p = {{"id", id_of(path)}};
        if (!reason.empty())
            p["reason"] = reason;
        ctl().call(kIface + ".Revoke", ask_polkit(std::move(p), interactive_));
    }
    void set_policy(const std::string& interface, const std::string& policy) override {
        ctl().call(kIface + ".SetLinkPolicy",
                   ask_polkit({{"interface", interface}, {"policy", policy}}, interactive_));
    }
    std::unique_ptr<HeldLease> acquire(const std::string& interface,
                                       const client::LeaseOptions& o) override {
        auto l = std::make_unique<VarlinkLease>(path_, interface, o, interactive_);
        streams_.push_back(l.get());
        return l;
    }
    std::unique_ptr<EventStream> watch() override {
        auto s = std::make_unique<VarlinkStream>(path_);
        streams_.push_back(s.get());
        return s;
    }
    std::unique_ptr<OpenedCapture> open_capture(const std::string& interface,
                                                const client::CaptureOptions& o) override {
        auto c = std::make_unique<VarlinkCapture>(path_, interface, o, interactive_);
        streams_.push_back(c.get());
        return c;
    }
    void attach(EventLoop& loop, std::function<void(const Error&)> on_lost) override {
        for (auto* s : streams_)
            s->attach(loop, on_lost);
    }
    void on_daemon_presence(std::function<void(bool)>) override {}

private:
    client::VarlinkClient& ctl() {
        if (!ctl_)
            ctl_ = std::make_unique<client::VarlinkClient>(path_);
        return *ctl_;
    }

    std::string path_;
    std::unique_ptr<client::VarlinkClient> ctl_;
    bool interactive_;
    // Owned by the commands, which keep them for as long as the loop runs.
    std::vector<Stream*> streams_;
};

} // namespace

std::unique_ptr<Transport> dbus_transport(client::Client& client) {
    return std::make_unique<DbusTransport>(client);
}

std::unique_ptr<Transport> varlink_transport(const std::string& path,
                                             std::unique_ptr<client::VarlinkClient> connected,
                                             bool interactive) {
    return std::make_unique<VarlinkTransport>(path, std::move(connected), interactive);
}

namespace {

// Whether `name` is owned on the system bus or can be activated there.
bool on_system_bus(const char* name) {
    sd_bus* bus = nullptr;
    if (sd_bus_open_system(&bus) < 0)
        return false;
    bool found = false;
    sd_bus_message* reply = nullptr;
    int has = 0;
    if (sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "NameHasOwner", nullptr, &reply, "s",
                           name) >= 0 &&
        sd_bus_message_read(reply, "b", &has) >= 0 && has)
        found = true;
    reply = sd_bus_message_unref(reply);
    char** names = nullptr;
    if (!found &&
        sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                           "org.freedesktop.DBus", "ListActivatableNames", nullptr, &reply,
                           "") >= 0 &&
        sd_bus_message_read_strv(reply, &names) >= 0 && names) {
        for (char** n = names; *n; ++n)
            found = found || std::string(*n) == name;
    }
    if (names) {
        for (char** n = names; *n; ++n)
            free(*n);
        free(names);
    }
    sd_bus_message_unref(reply);
    sd_bus_flush_close_unref(bus);
    return found;
}

} // namespace

bool dbus_available() {
    return on_system_bus(PROMISCD_BUS_NAME);
}

bool polkit_available() {
    return on_system_bus("org.freedesktop.PolicyKit1");
}

} // namespace promiscd::ctl
