// libpromisc over promiscd's varlink socket. A lease lives as long as the
// connection that acquired it and a connection answers one call at a time,
// so each lease and each capture has a connection of its own, free for its
// Renew/Release/StopCapture; what happens to leases (state changes, ends)
// comes from one Monitor stream per client, started before the first lease.
#include "client/lib/backend.hpp"

#include "client/varlink_client.hpp"
#include "client/varlink_records.hpp"
#include "config.h"

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

namespace promisc {

namespace ic = promiscd::client;
using namespace detail;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

const std::string kIface = PROMISCD_VARLINK_INTERFACE;
constexpr milliseconds kAnswer{std::chrono::minutes(2)};

using ic::varlink::num;
using ic::varlink::str;

LeaseInfo lease_of(const json& j) {
    return public_lease(ic::varlink::lease_of(j));
}

class VarlinkBackend;

class VarlinkLease final : public Lease::Impl {
public:
    VarlinkLease(std::shared_ptr<Client::Impl> keep, VarlinkBackend& backend,
                 std::unique_ptr<ic::VarlinkClient> conn, const LeaseInfo& info);
    ~VarlinkLease() override;

    void renew(std::uint64_t ttl_sec) override {
        conn_->call(kIface + ".Renew", {{"id", id}, {"ttl", ttl_sec}});
    }
    void release() override {
        conn_->call(kIface + ".Release", {{"id", id}});
        conn_->close();
    }

private:
    std::shared_ptr<Client::Impl> keep_;
    VarlinkBackend& backend_;
    std::unique_ptr<ic::VarlinkClient> conn_;
};

class VarlinkCapture final : public Capture::Impl {
public:
    VarlinkCapture(std::shared_ptr<Client::Impl> keep, std::unique_ptr<ic::VarlinkClient> conn,
                   std::uint64_t id, ic::UniqueFd fd, const std::string& interface,
                   const CaptureOptions& options)
        : Capture::Impl(id, interface, options, std::move(fd)), keep_(std::move(keep)),
          conn_(std::move(conn)) {}
    // Closing the connection ends the capture (and its lease).

protected:
    void request_stop() override {
        try {
            conn_->call(kIface + ".StopCapture", {{"id", id}});
        } catch (const ic::Error& e) {
            if (e.kind() != ic::ErrorKind::NoSuchCapture)
                throw;
        }
    }
    void pump() override {}
    PollInfo transport_poll() const override { return {}; }
    std::string daemon_reason() const override { return {}; }
    void daemon_counters(CaptureStats&) const override {}

private:
    std::shared_ptr<Client::Impl> keep_;
    std::unique_ptr<ic::VarlinkClient> conn_;
};

// Its own view of the daemon's state, fed by the backend's Monitor stream.
class VarlinkMonitor final : public Monitor::Impl {
public:
    VarlinkMonitor(std::shared_ptr<Client::Impl> keep, VarlinkBackend& backend,
                   const json& links_reply, const json& leases_reply);
    ~VarlinkMonitor() override;

    void handle(const json& event) {
        if (auto e = decoder_.decode(event))
            deliver(public_event(*e));
    }
    void stopped() { deliver(public_event(ic::varlink::EventDecoder::stopped())); }

private:
    std::shared_ptr<Client::Impl> keep_;
    VarlinkBackend& backend_;
    ic::varlink::EventDecoder decoder_;
};

class VarlinkBackend final : public Client::Impl {
public:
    explicit VarlinkBackend(const ClientOptions& o)
        : path_(o.varlink_socket), interactive_(o.interactive),
          control_(std::make_unique<ic::VarlinkClient>(path_)) {}

    Transport transport() const override { return Transport::Varlink; }

    std::vector<Link> links() override {
        std::vector<Link> out;
        for (const auto& j : control(".ListLinks").value("links", json::array()))
            out.push_back(public_link(ic::varlink::link_of(j)));
        return out;
    }

    std::vector<LeaseInfo> leases() override {
        std::vector<LeaseInfo> out;
        for (const auto& j : control(".ListLeases").value("leases", json::array()))
            out.push_back(lease_of(j));
        return out;
    }

    std::unique_ptr<Lease::Impl> acquire(const std::shared_ptr<Client::Impl>& self,
                                         const std::string& interface,
                                         const LeaseOptions& options) override {
        // Subscribed first: no change of the new lease is missed.
        ensure_monitor();
        auto conn = std::make_unique<ic::VarlinkClient>(path_);
        json p = {{"interface", interface}};
        if (options.ttl.count() > 0)
            p["ttl"] = options.ttl.count();
        if (!options.reason.empty())
            p["reason"] = options.reason;
        if (options.wait)
            p["wait"] = true;
        if (!options.netns.empty())
            p["netns"] = options.netns;
        if (interactive_)
            p["allowInteractiveAuthentication"] = true;
        auto reply = conn->call(kIface + ".Acquire", p);
        LeaseInfo info = lease_of(reply.value("lease", json::object()));
        if (info.interface.empty())
            info.interface = interface;
        return std::make_unique<VarlinkLease>(self, *this, std::move(conn), info);
    }

    std::unique_ptr<Capture::Impl> capture(const std::shared_ptr<Client::Impl>& self,
                                           const std::string& interface,
                                           const CaptureOptions& o) override {
        auto conn = std::make_unique<ic::VarlinkClient>(path_);
        json p = {{"interface", interface},
                  {"promisc", o.promisc},
                  {"format", o.format.empty() ? "pcapng" : o.format}};
        if (!o.filter.empty())
            p["filter"] = o.filter;
        if (o.snaplen)
            p["snaplen"] = o.snaplen;
        if (o.buffer_size)
            p["buffer_size"] = o.buffer_size;
        if (o.count)
            p["count"] = o.count;
        if (!o.netns.empty())
            p["netns"] = o.netns;
        if (interactive_)
            p["allowInteractiveAuthentication"] = true;
        auto reply = conn->request(kIface + ".OpenCapture", p);
        if (reply.fds.size() != 1)
            throw ic::Error(ic::ErrorKind::Failed, {},
                            "promiscd answered OpenCapture with " +
                                std::to_string(reply.fds.size()) +
                                " file descriptors instead of the capture stream");
        const auto id = num<std::uint64_t>(reply.parameters, "capture");
        return std::make_unique<VarlinkCapture>(self, std::move(conn), id,
                                                std::move(reply.fds.front()), interface, o);
    }

    void revoke(std::uint64_t lease_id, const std::string& reason) override {
        json p = {{"id", lease_id}};
        if (!reason.empty())
            p["reason"] = reason;
        authorized(".Revoke", std::move(p));
    }

    void set_policy(const std::string& interface, const std::string& policy) override {
        authorized(".SetLinkPolicy", {{"interface", interface}, {"policy", policy}});
    }

    void release(std::uint64_t lease_id) override { authorized(".Release", {{"id", lease_id}}); }

    // Over varlink a stopped daemon ends the connections: nothing to follow.
    void on_daemon(std::function<void(bool)>) override {}

    std::unique_ptr<Monitor::Impl> monitor(const std::shared_ptr<Client::Impl>& self) override {
        // Subscribed first, then the state: nothing between the two is missed.
        ensure_monitor();
        const json links = control(".ListLinks").value("links", json::array());
        const json leases = control(".ListLeases").value("leases", json::array());
        return std::make_unique<VarlinkMonitor>(self, *this, links, leases);
    }

    void process(milliseconds timeout) override {
        handle_queued();
        if (timeout.count() == 0)
            return;
        std::vector<pollfd> fds;
        if (monitor_)
            fds.push_back({monitor_->fd(), POLLIN, 0});
        const Deadline deadline(timeout);
        wait_for(fds, deadline.left_ms());
        if (monitor_ && !fds.empty() && fds[0].revents)
            read_monitor();
        handle_queued();
    }

    PollInfo poll_info() const override {
        if (!monitor_)
            return {};
        return {monitor_->fd(), POLLIN, -1};
    }

    void add(VarlinkMonitor* m) { monitors_.push_back(m); }
    void remove(VarlinkMonitor* m) {
        monitors_.erase(std::remove(monitors_.begin(), monitors_.end(), m), monitors_.end());
    }
    void add(VarlinkLease* lease) { leases_[lease->id] = lease; }
    void remove(VarlinkLease* lease) {
        if (auto it = leases_.find(lease->id); it != leases_.end() && it->second == lease)
            leases_.erase(it);
    }

private:
    // A call on the connection for plain calls. promiscd closes connections
    // that hold nothing after an idle time: connect again once if it did.
    // A call that reads needs no authorization.
    json control(const std::string& method) { return call(method, json::object()); }
    // A call that polkit decides on: it says whether polkit may ask the person.
    json authorized(const std::string& method, json parameters) {
        if (interactive_)
            parameters["allowInteractiveAuthentication"] = true;
        return call(method, std::move(parameters));
    }
    json call(const std::string& method, const json& parameters) {
        // (A connection that never answered was not closed for idling.)
        try {
            json reply = control_->call(kIface + method, parameters);
            control_answered_ = true;
            return reply;
        } catch (const ic::Error& e) {
            if (e.kind() != ic::ErrorKind::DaemonUnreachable || !control_answered_)
                throw;
        }
        control_ = std::make_unique<ic::VarlinkClient>(path_);
        return control_->call(kIface + method, parameters);
    }

    void ensure_monitor() {
        if (monitor_)
            return;
        auto m = std::make_unique<ic::VarlinkClient>(path_);
        m->call_more(kIface + ".Monitor");
        auto first = m->wait(kAnswer);
        if (!first.error.empty())
            ic::VarlinkClient::raise(first);
        monitor_ = std::move(m);
    }

    void read_monitor() {
        if (!monitor_->read_some() && !monitor_lost_) {
            monitor_lost_ = true;
        }
    }

    void handle_queued() {
        if (!monitor_)
            return;
        read_monitor();
        while (auto r = monitor_->next()) {
            if (!r->error.empty() || !r->continues) {
                monitor_lost_ = true;
                break;
            }
            handle(r->parameters.value("event", json::object()));
        }
        if (monitor_lost_) {
            // promiscd went away without ending these leases (it says
            // daemon-shutdown when it stops): their connections are gone too.
            auto leases = leases_;
            for (auto& [id, l] : leases)
                l->ended("connection-lost");
            monitor_.reset();
            monitor_lost_ = false;
            for_each_monitor([](VarlinkMonitor& m) { m.stopped(); });
            throw ic::Error(ic::ErrorKind::DaemonUnreachable, {},
                            "the connection to promiscd at " + path_ + " was closed");
        }
    }

    // A callback may destroy any monitor, its own included.
    template <typename F>
    void for_each_monitor(F f) {
        const auto monitors = monitors_;
        for (auto* m : monitors)
            if (std::find(monitors_.begin(), monitors_.end(), m) != monitors_.end())
                f(*m);
    }

    void handle(const json& event) {
        for_each_monitor([&](VarlinkMonitor& m) { m.handle(event); });
        const std::string type = str(event, "type");
        auto lease = event.find("lease");
        if (lease == event.end() || !lease->is_object())
            return;
        auto it = leases_.find(num<std::uint64_t>(*lease, "id"));
        if (it == leases_.end())
            return;
        VarlinkLease* l = it->second;
        if (type == "lease-state" || type == "lease-renewed") {
            l->update(lease_of(*lease));
        } else if (type == "lease-ended") {
            std::string detail = str(event, "revoked_by");
            const std::string message = str(event, "message");
            if (!message.empty())
                detail += (detail.empty() ? "" : ": ") + message;
            l->ended(str(event, "reason"), detail);
        }
    }

    std::string path_;
    bool interactive_;
    std::unique_ptr<ic::VarlinkClient> control_;
    bool control_answered_ = false;
    std::unique_ptr<ic::VarlinkClient> monitor_;
    bool monitor_lost_ = false;
    std::map<std::uint64_t, VarlinkLease*> leases_;
    std::vector<VarlinkMonitor*> monitors_;
};

VarlinkMonitor::VarlinkMonitor(std::shared_ptr<Client::Impl> keep, VarlinkBackend& backend,
                               const json& links_reply, const json& leases_reply)
    : keep_(std::move(keep)), backend_(backend) {
    decoder_.seed(links_reply, leases_reply);
    for (const auto& l : decoder_.links())
        links.push_back(public_link(l));
    for (const auto& l : decoder_.leases())
        leases.push_back(public_lease(l));
    backend_.add(this);
}

VarlinkMonitor::~VarlinkMonitor() {
    backend_.remove(this);
}

VarlinkLease::VarlinkLease(std::shared_ptr<Client::Impl> keep, VarlinkBackend& backend,
                           std::unique_ptr<ic::VarlinkClient> conn, const LeaseInfo& info)
    : keep_(std::move(keep)), backend_(backend), conn_(std::move(conn)) {
    id = info.id;
    interface = info.interface;
    state = info.state;
    this->info = info;
    backend_.add(this);
}

VarlinkLease::~VarlinkLease() {
    backend_.remove(this);
    if (state == LeaseState::Ended || !conn_->open())
        return;
    try {
        conn_->call(kIface + ".Release", {{"id", id}});
    } catch (const ic::Error&) {
        // Ended meanwhile, or promiscd is gone; closing the connection ends
        // the lease in any case.
    }
}

} // namespace

std::shared_ptr<Client::Impl> make_varlink_backend(const ClientOptions& options) {
    return std::make_shared<VarlinkBackend>(options);
}

} // namespace promisc
