// libpromisc over D-Bus: the internal Client, whose Lease and Capture follow
// the daemon's signals; this connection's dispatch runs their callbacks.
#include "client/lib/backend.hpp"

#include <algorithm>

namespace promisc {

namespace ic = promiscd::client;
using namespace detail;
using std::chrono::milliseconds;

namespace {

class DbusLease;

class DbusBackend final : public Client::Impl {
public:
    explicit DbusBackend(const ClientOptions& o) : client_(ic::Client::Options{o.interactive}) {}

    ic::Client& client() { return client_; }

    Transport transport() const override { return Transport::DBus; }

    std::vector<Link> links() override {
        std::vector<Link> out;
        for (const auto& l : client_.list_links())
            out.push_back(public_link(l));
        return out;
    }

    std::vector<LeaseInfo> leases() override {
        std::vector<LeaseInfo> out;
        for (const auto& l : client_.list_leases())
            out.push_back(public_lease(l));
        return out;
    }

    std::unique_ptr<Lease::Impl> acquire(const std::shared_ptr<Client::Impl>& self,
                                         const std::string& interface,
                                         const LeaseOptions& options) override;
    std::unique_ptr<Capture::Impl> capture(const std::shared_ptr<Client::Impl>& self,
                                           const std::string& interface,
                                           const CaptureOptions& options) override;

    void revoke(std::uint64_t lease_id, const std::string& reason) override {
        client_.revoke(ic::lease_path(lease_id), reason);
    }
    void set_policy(const std::string& interface, const std::string& policy) override {
        client_.set_policy(interface, policy);
    }
    std::unique_ptr<Monitor::Impl> monitor(const std::shared_ptr<Client::Impl>& self) override;
    void release(std::uint64_t lease_id) override { client_.release(ic::lease_path(lease_id)); }
    void on_daemon(std::function<void(bool)> callback) override {
        client_.on_daemon_presence([this, callback = std::move(callback)](bool running) {
            if (running)
                readopt();
            if (callback)
                callback(running);
        });
    }

    void add(DbusLease* l) { leases_.push_back(l); }
    void remove(DbusLease* l) {
        leases_.erase(std::remove(leases_.begin(), leases_.end(), l), leases_.end());
    }

    void process(milliseconds timeout) override {
        client_.dispatch();
        if (timeout.count() == 0)
            return;
        const Deadline deadline(timeout);
        const PollInfo p = poll_info();
        std::vector<pollfd> fds{{p.fd, p.events, 0}};
        wait_for(fds, min_timeout(deadline.left_ms(), p.timeout_ms));
        client_.dispatch();
    }

    PollInfo poll_info() const override {
        const auto p = client_.poll_data();
        PollInfo out{p.fd, p.events, -1};
        if (p.timeout_usec != UINT64_MAX) {
            const std::uint64_t now = monotonic_usec();
            out.timeout_ms = p.timeout_usec <= now
                                 ? 0
                                 : static_cast<int>(std::min<std::uint64_t>(
                                       (p.timeout_usec - now + 999) / 1000, 1 << 30));
        }
        return out;
    }

private:
    // promiscd is back: it has adopted the leases it kept; the others end.
    void readopt();

    ic::Client client_;
    std::vector<DbusLease*> leases_;
};

class DbusLease final : public Lease::Impl {
public:
    DbusLease(std::shared_ptr<Client::Impl> keep, DbusBackend& backend,
              std::unique_ptr<ic::Lease> lease)
        : keep_(std::move(keep)), backend_(backend), lease_(std::move(lease)) {
        id = lease_->id();
        interface = lease_->info().interface;
        state = parse_state(lease_->info().state);
        info = public_lease(lease_->info());
        backend_.add(this);
        lease_->on_state_changed(
            [this](const std::string&, const std::string& to) { change(parse_state(to)); });
        lease_->on_ended(
            [this](const std::string& reason) { ended(reason, detail_of(lease_->end())); });
    }

    ~DbusLease() override { backend_.remove(this); }

    void renew(std::uint64_t ttl_sec) override { lease_->renew(ttl_sec); }
    void release() override { lease_->release(); }
    const LeaseInfo& current() override {
        // The internal lease follows its object's properties (expiry too).
        info = public_lease(lease_->info());
        return Lease::Impl::current();
    }
    // After promiscd came back: false when it did not keep the lease.
    void readopt() {
        if (state == LeaseState::Ended)
            return;
        bool kept = true;
        try {
            kept = lease_->refresh();
        } catch (const ic::Error&) {
            return; // gone again: its next return tells
        }
        if (!kept)
            ended("lost-in-restart");
    }

private:
    // Declared first, destroyed last: ~ic::Lease releases over its connection.
    std::shared_ptr<Client::Impl> keep_;
    DbusBackend& backend_;
    std::unique_ptr<ic::Lease> lease_;
};

void DbusBackend::readopt() {
    // A copy: a callback run by ended() may destroy any lease.
    const auto leases = leases_;
    for (auto* l : leases)
        if (std::find(leases_.begin(), leases_.end(), l) != leases_.end())
            l->readopt();
}

class DbusCapture final : public Capture::Impl {
public:
    DbusCapture(std::shared_ptr<Client::Impl> keep, DbusBackend& backend,
                std::unique_ptr<ic::Capture> capture, const std::string& interface,
                const CaptureOptions& options)
        : Capture::Impl(capture->id(), interface, options, capture->take_fd()),
          keep_(std::move(keep)), backend_(backend), capture_(std::move(capture)) {}

    ~DbusCapture() override {
        // The capture belongs to the connection, which the Client may keep
        // open: stop it now rather than when the daemon next writes into a
        // pipe nobody reads.
        if (!capture_->finished()) {
            try {
                capture_->stop();
            } catch (const ic::Error&) {
                // Finished meanwhile, or the daemon is gone: nothing runs.
            }
        }
    }

protected:
    void request_stop() override {
        try {
            capture_->stop();
        } catch (const ic::Error& e) {
            // Finished already (its object is gone): nothing to stop.
            if (capture_->finished() || e.kind() == ic::ErrorKind::NoSuchCapture)
                return;
            if (e.name() == "org.freedesktop.DBus.Error.UnknownObject" ||
                e.name() == "org.freedesktop.DBus.Error.UnknownMethod")
                return;
            throw;
        }
    }
    void pump() override {
        try {
            backend_.client().dispatch();
        } catch (const ic::Error&) {
            // A lost bus ends nothing here: the stream's end says it.
        }
    }
    PollInfo transport_poll() const override {
        try {
            return backend_.poll_info();
        } catch (const ic::Error&) {
            return {};
        }
    }
    std::string daemon_reason() const override {
        return capture_->finished() ? capture_->finish_reason() : std::string();
    }
    void daemon_counters(CaptureStats& s) const override {
        s.packets = capture_->info().packets;
        s.bytes = capture_->info().bytes;
        s.drops = capture_->info().drops;
    }

private:
    std::shared_ptr<Client::Impl> keep_;
    DbusBackend& backend_;
    std::unique_ptr<ic::Capture> capture_;
};

// The internal Watcher: the links and leases it loaded, then the signals
// of this connection, dispatched by process().
class DbusMonitor final : public Monitor::Impl {
public:
    DbusMonitor(std::shared_ptr<Client::Impl> keep, std::unique_ptr<ic::Watcher> watcher)
        : keep_(std::move(keep)), watcher_(std::move(watcher)) {
        for (const auto& l : watcher_->links())
            links.push_back(public_link(l));
        for (const auto& l : watcher_->leases())
            leases.push_back(public_lease(l));
        flag_events = watcher_->reports_flag_changes();
        watcher_->on_event([this](const ic::Event& e) {
            Event out = public_event(e);
            if (out.type != Event::Type::Unknown)
                deliver(out);
        });
    }

private:
    std::shared_ptr<Client::Impl> keep_;
    std::unique_ptr<ic::Watcher> watcher_;
};

std::unique_ptr<Monitor::Impl> DbusBackend::monitor(const std::shared_ptr<Client::Impl>& self) {
    return std::make_unique<DbusMonitor>(self, client_.watch());
}

std::unique_ptr<Lease::Impl> DbusBackend::acquire(const std::shared_ptr<Client::Impl>& self,
                                                  const std::string& interface,
                                                  const LeaseOptions& options) {
    ic::LeaseOptions o;
    o.ttl_sec = static_cast<std::uint64_t>(options.ttl.count());
    o.reason = options.reason;
    o.wait = options.wait;
    o.netns = options.netns;
    auto lease = client_.acquire(interface, o);
    auto out = std::make_unique<DbusLease>(self, *this, std::move(lease));
    if (out->interface.empty())
        out->interface = interface;
    return out;
}

std::unique_ptr<Capture::Impl> DbusBackend::capture(const std::shared_ptr<Client::Impl>& self,
                                                    const std::string& interface,
                                                    const CaptureOptions& options) {
    ic::CaptureOptions o;
    o.filter = options.filter;
    o.snaplen = options.snaplen;
    o.promisc = options.promisc;
    o.format = options.format.empty() ? "pcapng" : options.format;
    o.buffer_size = options.buffer_size;
    o.count = options.count;
    o.netns = options.netns;
    auto capture = client_.open_capture(interface, o);
    return std::make_unique<DbusCapture>(self, *this, std::move(capture), interface, options);
}

} // namespace

std::shared_ptr<Client::Impl> make_dbus_backend(const ClientOptions& options) {
    return std::make_shared<DbusBackend>(options);
}

} // namespace promisc
