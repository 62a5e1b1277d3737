#include "daemon.hpp"

#include "auth/authorizer.hpp"
#include "auth/polkit_authority.hpp"
#include "bus/bus_frontend.hpp"
#include "bus/bus_guard.hpp"
#include "bus/raw_bus.hpp"
#include "bus/bus_loop.hpp"
#include "bus/peer_credentials.hpp"
#include "capture/capture_manager.hpp"
#include "config.h"
#include "config/config.hpp"
#include "log.hpp"
#include "state/state_store.hpp"
#include "varlink/promisc_varlink.hpp"
#include "varlink/varlink_server.hpp"

#include <algorithm>
#include <csignal>
#include <cstring>
#include <grp.h>
#include <sdbus-c++/sdbus-c++.h>
#include <set>
#include <system_error>
#include <systemd/sd-daemon.h>
#include <unistd.h>

namespace promiscd {

namespace {

void check(int r, const char* what) {
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), what);
}

constexpr const char* static_owner = "static"; // leases from the configuration file
constexpr const char* hold_owner = "--hold";   // leases from the command line

// A capture that ends may leave the daemon idle (captures without promisc
// hold no lease, so the service does not see them go).
class CaptureEnd : public capture::CaptureListener {
public:
    explicit CaptureEnd(std::function<void()> f) : f_(std::move(f)) {}
    void on_capture_finished(const capture::CaptureInfo&, capture::FinishReason) override { f_(); }

private:
    std::function<void()> f_;
};

// Keeps the state file and systemd's STATUS= line in step with every change.
class StateKeeper : public Listener {
public:
    StateKeeper(const Service& service, state::StateStore& store, std::function<void()> changed)
        : service_(service), store_(store), changed_(std::move(changed)) {}
    void on_command(const core::Command&) override {}
    void on_changed() override {
        try {
            store_.save(state::snapshot(service_.arbiter()));
        } catch (const state::StateError& e) {
            log::error(e.what());
        }
        size_t active = 0;
        for (const auto& l : service_.arbiter().leases())
            if (l.state == core::LeaseState::Active)
                ++active;
        auto status = "STATUS=" + std::to_string(service_.arbiter().lease_count()) + " leases (" +
                      std::to_string(active) + " active), promiscuous mode set on " +
                      std::to_string(service_.arbiter().daemon_set_links().size()) + " links";
        if (status != last_status_) {
            sd_notify(0, status.c_str());
            last_status_ = status;
        }
        if (changed_)
            changed_();
    }

private:
    const Service& service_;
    state::StateStore& store_;
    std::function<void()> changed_;
    std::string last_status_;
};

std::vector<gid_t> resolve_groups(const std::vector<std::string>& names) {
    std::vector<gid_t> out;
    for (const auto& n : names) {
        if (const group* g = ::getgrnam(n.c_str()))
            out.push_back(g->gr_gid);
        else
            log::warning("allowed_groups: no group named " + core::quote(n));
    }
    return out;
}

// The varlink socket systemd passed (FileDescriptorName=varlink), or -1.
int activation_socket() {
    char** names = nullptr;
    int n = sd_listen_fds_with_names(1, &names);
    int found = -1;
    for (int i = 0; i < n; ++i) {
        if (found < 0 && names && names[i] && std::strcmp(names[i], "varlink") == 0)
            found = SD_LISTEN_FDS_START + i;
        else
            ::close(SD_LISTEN_FDS_START + i); // not ours to keep
    }
    if (names) {
        for (int i = 0; i < n; ++i)
            free(names[i]);
        free(names);
    }
    return found;
}

} // namespace

struct Daemon::Impl {
    DaemonOptions options;
    config::Config config;
    std::string config_path;
    int activation_socket_fd = -1; // the varlink socket systemd passed
    bool activated = false;
    EventPtr event;
    std::unique_ptr<Service> service;
    std::unique_ptr<capture::CaptureManager> captures;
    std::unique_ptr<CaptureEnd> capture_end;
    std::unique_ptr<state::StateStore> store;
    std::unique_ptr<StateKeeper> keeper;
    std::unique_ptr<sdbus::IConnection> connection;
    std::unique_ptr<bus::BusLoop> bus_loop;
    std::unique_ptr<bus::PeerCredentials> credentials;
    std::unique_ptr<bus::BusGuard> guard;
    std::unique_ptr<auth::PolkitAuthority> polkit;
    std::unique_ptr<auth::Authorizer> authorizer;
    std::unique_ptr<bus::BusFrontend> frontend;
    std::unique_ptr<varlink::PromiscVarlink> varlink_handler;
    std::unique_ptr<varlink::Server> varlink_server;
    EventSourcePtr idle_timer;

    static int on_signal(sd_event_source* s, const signalfd_siginfo* si, void* userdata);
    static int on_idle(sd_event_source* s, uint64_t usec, void* userdata);
    void connect_bus();
    void start_varlink();
    void recover();
    void apply_config();
    void apply_static_leases();
    void reload();
    bool idle() const;
    void update_idle();
    void stop();
};

Daemon::Daemon(DaemonOptions options) : impl_(std::make_unique<Impl>()) {
    Impl& d = *impl_;
    d.options = std::move(options);
    d.config_path = d.options.config_path.empty() ? config::default_path : d.options.config_path;
    // A broken file stops the start: better no daemon than one with a policy
    // nobody wrote.
    d.config = config::load(d.config_path, !d.options.config_path.empty());

    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGTERM, SIGINT, SIGHUP})
        sigaddset(&mask, sig);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    sd_event* raw = nullptr;
    check(sd_event_new(&raw), "cannot create the event loop");
    d.event.reset(raw);
    sd_event_set_watchdog(d.event.get(), true); // WATCHDOG=1 when WatchdogSec= is set

    d.activation_socket_fd = activation_socket();
    d.activated = d.activation_socket_fd >= 0;

    d.store = std::make_unique<state::StateStore>(
        d.options.state_dir.empty() ? state::default_state_dir() : d.options.state_dir);
    Service::Options so;
    so.limits = d.config.limits;
    so.netlink_rcvbuf = d.options.netlink_rcvbuf;
    d.service = std::make_unique<Service>(d.event.get(), so);
    d.service->arbiter().set_policy_patterns(d.config.policies);
    d.service->start();
    d.captures = std::make_unique<capture::CaptureManager>(*d.service);
    d.capture_end = std::make_unique<CaptureEnd>([&d] { d.update_idle(); });
    d.captures->add_listener(d.capture_end.get());

    if (d.options.use_bus)
        d.connect_bus();
    if (!d.authorizer)
        d.authorizer = std::make_unique<auth::Authorizer>(nullptr, [&d] { return d.service->now(); });
    d.authorizer->set_allowed_groups(resolve_groups(d.config.allowed_groups));
    d.start_varlink();
    if (!d.connection && !d.varlink_server)
        throw std::runtime_error("neither D-Bus nor varlink is available: nobody could reach "
                                 "promiscd");
    if (d.frontend) {
        // Without the bus, owners can no longer be tracked: stop cleanly.
        d.bus_loop = std::make_unique<bus::BusLoop>(
            d.event.get(), *d.connection, [&d](const std::string& why) {
                log::error("lost the system bus (" + why + "); stopping");
                d.stop();
                sd_event_exit(d.event.get(), 1);
            });
    }

    d.recover();
    d.keeper = std::make_unique<StateKeeper>(*d.service, *d.store, [&d] { d.update_idle(); });
    d.service->add_listener(d.keeper.get());
    if (d.frontend)
        d.frontend->publish();
    d.apply_static_leases();
    d.keeper->on_changed();

    for (int sig : {SIGTERM, SIGINT, SIGHUP})
        check(sd_event_add_signal(d.event.get(), nullptr, sig, &Impl::on_signal, &d),
              "cannot watch signals");

    if (d.connection) {
        try {
            d.connection->requestName(PROMISCD_BUS_NAME);
        } catch (const sdbus::Error& e) {
            throw std::runtime_error(std::string("cannot own the bus name ") + PROMISCD_BUS_NAME +
                                     ": " + e.getMessage());
        }
    }
    if (d.activated || d.options.exit_on_idle) {
        sd_event_source* s = nullptr;
        check(sd_event_add_time(d.event.get(), &s, CLOCK_MONOTONIC, UINT64_MAX, 0, &Impl::on_idle,
                                &d),
              "cannot add the idle timer");
        d.idle_timer.reset(s);
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
        d.update_idle();
    }
}

Daemon::~Daemon() {
    Impl& d = *impl_;
    if (d.keeper)
        d.service->remove_listener(d.keeper.get());
    d.idle_timer.reset();
    d.varlink_server.reset();
    d.varlink_handler.reset();
    d.frontend.reset();
    if (d.captures && d.capture_end)
        d.captures->remove_listener(d.capture_end.get());
    d.captures.reset(); // releases its leases: before the service
    if (d.bus_loop)
        d.bus_loop->drain();
    d.authorizer.reset();
    d.polkit.reset();
    d.guard.reset();
    d.credentials.reset();
    d.bus_loop.reset();
    d.connection.reset(); // flushes what is still queued
    d.service.reset();
}

void Daemon::Impl::connect_bus() {
    try {
        connection = sdbus::createSystemBusConnection();
    } catch (const sdbus::Error& e) {
        if (options.varlink_path.empty() && activation_socket_fd < 0)
            throw std::runtime_error("cannot connect to the system bus: " + e.getMessage());
        log::warning("no system bus (" + e.getMessage() +
                     "); serving varlink only, and polkit cannot be asked");
        return;
    }
    credentials = std::make_unique<bus::PeerCredentials>(*connection);
    polkit = std::make_unique<auth::PolkitAuthority>(*connection);
    authorizer = std::make_unique<auth::Authorizer>(polkit.get(), [this] { return service->now(); });
    guard = std::make_unique<bus::BusGuard>(bus::raw_bus(credentials->driver()),
                                            [this] { return service->now(); });
    frontend = std::make_unique<bus::BusFrontend>(*service, *connection, *credentials, *authorizer,
                                                  captures.get());
}

void Daemon::Impl::start_varlink() {
    int fd = activation_socket_fd;
    if (fd < 0 && !options.varlink_path.empty())
        fd = varlink::Server::listen_on(options.varlink_path);
    if (fd < 0)
        return;
    varlink_handler =
        std::make_unique<varlink::PromiscVarlink>(*service, *authorizer, captures.get());
    varlink::Limits limits;
    limits.max_message_bytes = config.varlink_max_message_bytes;
    limits.max_connections_per_uid = config.varlink_max_connections_per_uid;
    limits.max_output_bytes = config.varlink_max_backlog_bytes;
    varlink_server = std::make_unique<varlink::Server>(event.get(), fd, *varlink_handler, limits);
    varlink_server->on_connections_changed = [this] { update_idle(); };
}

void Daemon::Impl::recover() {
    std::optional<state::SavedState> saved;
    try {
        saved = store->load();
    } catch (const state::StateError& e) {
        // Never guess: without a usable record, every flag stays as it is.
        std::string aside;
        try {
            aside = store->move_aside();
        } catch (const state::StateError& e2) {
            aside = std::string("(") + e2.what() + ")";
        }
        log::error("state file " + store->path() + " is unusable (" + e.what() + "); moved to " +
                   aside + "; promiscuous flags it would have accounted for are left alone");
        return;
    }
    if (!saved)
        return;
    // A static lease that is still configured is adopted (no flicker); a
    // D-Bus owner that is still on the bus keeps its lease.
    auto still_configured = [this](const core::Lease& l) {
        if (l.owner.id == hold_owner)
            return std::find(options.holds.begin(), options.holds.end(), l.interface) !=
                   options.holds.end();
        return l.owner.id == static_owner &&
               std::any_of(
                   config.static_leases.begin(), config.static_leases.end(),
                   [&](const config::StaticLease& s) { return s.interface == l.interface; });
    };
    auto bus_owner_alive = [this](const core::Owner& o) {
        if (o.transport != "dbus" || !credentials)
            return false;
        try {
            return credentials->name_has_owner(o.id);
        } catch (const sdbus::Error& e) {
            log::warning("cannot ask the bus about " + o.id + ": " + e.getMessage());
            return false;
        }
    };
    auto keep = [&](const core::Lease& l) {
        return l.owner.transport == "config" ? still_configured(l) : bus_owner_alive(l.owner);
    };
    state::Recovery report;
    auto commands = state::recover(service->arbiter(), *saved, keep, report);
    service->execute(commands);
    if (report.adopted || report.ended)
        log::notice("recovered from the previous run: " + std::to_string(report.adopted) +
                    " leases adopted, " + std::to_string(report.ended) + " ended");
}

// Static leases: the configuration file's and --hold's, owned by "config".
void Daemon::Impl::apply_static_leases() {
    std::map<std::string, std::set<std::string>> wanted; // owner id -> interfaces
    std::map<std::string, std::string> reasons;
    for (const auto& s : config.static_leases) {
        wanted[static_owner].insert(s.interface);
        reasons[s.interface] = s.reason.empty() ? "static lease (" + config_path + ")" : s.reason;
    }
    for (const auto& h : options.holds)
        wanted[hold_owner].insert(h);
    for (const auto& l : service->arbiter().leases()) {
        if (l.owner.transport != "config")
            continue;
        if (wanted[l.owner.id].erase(l.interface) == 0)
            service->release(l.id, core::EndReason::Released); // no longer configured
    }
    for (const auto& [owner, names] : wanted) {
        for (const auto& name : names) {
            core::LeaseRequest req;
            req.interface = name;
            req.owner = {"config", owner, 0, static_cast<uint32_t>(::getpid()), "promiscd"};
            req.reason = owner == hold_owner ? "static lease (--hold)" : reasons[name];
            req.wait = true;
            try {
                service->acquire(req);
            } catch (const core::Error& e) {
                log::error("static lease on " + name + ": " + e.what());
            }
        }
    }
}

void Daemon::Impl::reload() {
    config::Config fresh;
    try {
        fresh = config::load(config_path, !options.config_path.empty());
    } catch (const config::ConfigError& e) {
        log::error(std::string(e.what()) + "; keeping the previous configuration");
        return;
    }
    config = std::move(fresh);
    service->arbiter().set_limits(config.limits);
    service->arbiter().set_policy_patterns(config.policies);
    authorizer->set_allowed_groups(resolve_groups(config.allowed_groups));
    if (varlink_server) {
        varlink::Limits limits = varlink_server->limits();
        limits.max_message_bytes = config.varlink_max_message_bytes;
        limits.max_connections_per_uid = config.varlink_max_connections_per_uid;
        limits.max_output_bytes = config.varlink_max_backlog_bytes;
        varlink_server->set_limits(limits);
    }
    apply_static_leases();
    update_idle();
    log::notice("reloaded the configuration from " + config_path);
}

bool Daemon::Impl::idle() const {
    return service->arbiter().lease_count() == 0 && (!captures || captures->captures().empty()) &&
           (!varlink_server || varlink_server->connections() == 0);
}

void Daemon::Impl::update_idle() {
    if (!idle_timer)
        return;
    if (config.idle_exit_seconds == 0 || !idle()) {
        sd_event_source_set_enabled(idle_timer.get(), SD_EVENT_OFF);
        return;
    }
    int enabled = SD_EVENT_OFF;
    sd_event_source_get_enabled(idle_timer.get(), &enabled);
    if (enabled != SD_EVENT_OFF)
        return; // already counting down
    sd_event_source_set_time(idle_timer.get(),
                             service->now() + config.idle_exit_seconds * core::usec_per_sec);
    sd_event_source_set_enabled(idle_timer.get(), SD_EVENT_ONESHOT);
}

int Daemon::Impl::on_idle(sd_event_source*, uint64_t, void* userdata) {
    auto* d = static_cast<Impl*>(userdata);
    if (!d->idle())
        return 0;
    log::info("idle for " + std::to_string(d->config.idle_exit_seconds) + " s; exiting");
    // Give the name back first, then answer what was already queued for it:
    // later callers start a new instance through activation.
    if (d->connection) {
        try {
            d->connection->releaseName(PROMISCD_BUS_NAME);
        } catch (const sdbus::Error& e) {
            log::warning("cannot release the bus name: " + e.getMessage());
        }
        if (d->bus_loop)
            d->bus_loop->drain();
    }
    d->stop();
    sd_event_exit(d->event.get(), 0);
    return 0;
}

void Daemon::Impl::stop() {
    sd_notify(0, "STOPPING=1\nSTATUS=Clearing promiscuous flags");
    service->shutdown();
    try {
        store->save(state::snapshot(service->arbiter(), true));
    } catch (const state::StateError& e) {
        log::error(e.what());
    }
}

int Daemon::Impl::on_signal(sd_event_source* s, const signalfd_siginfo* si, void* userdata) {
    auto* d = static_cast<Impl*>(userdata);
    if (si->ssi_signo == SIGHUP) {
        d->reload();
        return 0;
    }
    log::notice(std::string("received ") + ::strsignal(static_cast<int>(si->ssi_signo)) +
                ", stopping");
    d->stop();
    sd_event_exit(sd_event_source_get_event(s), 0);
    return 0;
}

int Daemon::run() {
    Impl& d = *impl_;
    sd_notify(0, "READY=1");
    std::string serving;
    if (d.connection)
        serving += std::string(", serving ") + PROMISCD_BUS_NAME;
    if (d.varlink_server)
        serving += serving.empty() ? ", serving varlink" : " and varlink";
    log::info("watching " + std::to_string(d.service->arbiter().links().size()) + " links" +
              serving);
    int r = sd_event_loop(d.event.get());
    if (r < 0) {
        log::error(std::string("event loop failed: ") + std::strerror(-r));
        return 1;
    }
    return r; // the code given to sd_event_exit()
}

} // namespace promiscd
