// Assembly only: what is built in which order, signals, READY and STOPPING.
// Every rule lives in a unit of its own (ops/, service/, state/recovery,
// static_leases, idle, status).
#include "daemon.hpp"

#include "auth/authorizer.hpp"
#include "auth/polkit_authority.hpp"
#include "bus/bus_frontend.hpp"
#include "bus/bus_guard.hpp"
#include "bus/bus_loop.hpp"
#include "bus/bus_objects.hpp"
#include "bus/peer_credentials.hpp"
#include "bus/raw_bus.hpp"
#include "config.h"
#include "config/config.hpp"
#include "idle.hpp"
#include "log.hpp"
#include "net/netns.hpp"
#include "ops/audit.hpp"
#include "ops/operations.hpp"
#include "service/capture_service.hpp"
#include "service/lease_service.hpp"
#include "state/record_store.hpp"
#include "state/recovery.hpp"
#include "static_leases.hpp"
#include "status.hpp"
#include "varlink/promisc_varlink.hpp"
#include "varlink/varlink_server.hpp"

#include <csignal>
#include <cstring>
#include <grp.h>
#include <sdbus-c++/sdbus-c++.h>
#include <system_error>
#include <systemd/sd-daemon.h>
#include <unistd.h>

namespace promiscd {

namespace {

void check(int r, const char* what) {
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), what);
}

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

varlink::Limits varlink_limits(const config::Config& c) {
    varlink::Limits l;
    l.max_message_bytes = c.varlink_max_message_bytes;
    l.max_connections_per_uid = c.varlink_max_connections_per_uid;
    l.max_connections = c.varlink_max_connections;
    l.max_output_bytes = c.varlink_max_backlog_bytes;
    l.max_total_output_bytes = c.varlink_max_total_backlog_bytes;
    l.idle_timeout_usec = c.varlink_idle_timeout_seconds * 1'000'000;
    return l;
}

bus::GuardLimits guard_limits(const config::Config& c) {
    bus::GuardLimits l;
    l.items_burst = double(c.reads_items_burst);
    l.items_per_second = double(c.reads_items_per_second);
    return l;
}

} // namespace

struct Daemon::Impl {
    DaemonOptions options;
    config::Config config;
    std::string config_path;
    int activation_socket_fd = -1;
    bool activated = false;
    EventPtr event;
    std::unique_ptr<service::ChangeStream> changes;
    std::unique_ptr<state::RecordStore> store;
    std::unique_ptr<service::LeaseService> leases;
    std::unique_ptr<sdbus::IConnection> connection;
    std::unique_ptr<bus::PeerCredentials> credentials;
    std::unique_ptr<bus::BusGuard> guard;
    std::unique_ptr<auth::PolkitAuthority> polkit;
    std::unique_ptr<auth::Authorizer> authorizer;
    std::unique_ptr<service::CaptureService> captures;
    std::unique_ptr<ops::Audit> audit;
    std::unique_ptr<ops::Operations> operations;
    std::unique_ptr<bus::BusFrontend> frontend;
    std::unique_ptr<bus::BusObjects> objects;
    std::unique_ptr<bus::BusLoop> bus_loop;
    std::unique_ptr<varlink::PromiscVarlink> varlink_handler;
    std::unique_ptr<varlink::Server> varlink_server;
    std::unique_ptr<IdleExit> idle;
    std::unique_ptr<Status> status;

    static int on_signal(sd_event_source* s, const signalfd_siginfo* si, void* userdata);
    uint64_t now() const { return loop_now(event.get()); }
    void connect_bus();
    void start_varlink();
    void recover();
    // Crash recovery's part for other network namespaces: see recover().
    std::vector<int> reopen_namespaces(state::Records& records);
    std::vector<StaticLease> wanted_static() const;
    void apply_static_leases();
    void reload();
    IdleState idle_state() const;
    void idle_exit();
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
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGCHLD})
        sigaddset(&mask, sig);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    sd_event* raw = nullptr;
    check(sd_event_new(&raw), "cannot create the event loop");
    d.event.reset(raw);
    sd_event_set_watchdog(d.event.get(), true); // WATCHDOG=1 when WatchdogSec= is set

    d.activation_socket_fd = activation_socket();
    d.activated = d.activation_socket_fd >= 0;

    d.changes = std::make_unique<service::ChangeStream>(d.event.get());
    d.store = std::make_unique<state::RecordStore>(
        d.options.state_dir.empty() ? state::default_state_dir() : d.options.state_dir);
    service::LeaseService::Options so;
    so.limits = d.config.limits;
    so.netlink_rcvbuf = d.options.netlink_rcvbuf;
    d.leases =
        std::make_unique<service::LeaseService>(d.event.get(), so, *d.changes, d.store.get());
    d.store->set_lease_source([&d] { return d.leases->arbiter().leases(); });
    d.leases->set_policy_patterns(d.config.policies);
    d.leases->start();

    if (d.options.use_bus)
        d.connect_bus();
    d.authorizer = std::make_unique<auth::Authorizer>(
        d.polkit.get(), [&d] { return d.now(); }, d.config.authorization);
    d.authorizer->set_allowed_groups(resolve_groups(d.config.allowed_groups));
    service::CaptureService::Options co;
    co.compiler = d.config.filters;
    d.captures = std::make_unique<service::CaptureService>(*d.leases, co);
    d.audit = std::make_unique<ops::Audit>([&d] { return d.now(); });
    d.changes->subscribe(d.audit.get());
    d.operations =
        std::make_unique<ops::Operations>(*d.leases, d.captures.get(), *d.authorizer, *d.audit);
    d.operations->set_namespaces_enabled(d.config.namespaces_enabled);
    if (d.connection) {
        d.frontend = std::make_unique<bus::BusFrontend>(*d.connection, *d.credentials,
                                                        d.guard.get(), *d.operations);
        d.objects = std::make_unique<bus::BusObjects>(bus::raw_bus(d.credentials->driver()),
                                                      *d.frontend, *d.leases, d.captures.get(),
                                                      d.config.dbus_max_queued_messages);
    }
    d.start_varlink();
    if (!d.connection && !d.varlink_server)
        throw std::runtime_error("neither D-Bus nor varlink is available: nobody could reach "
                                 "promiscd");

    d.recover();
    d.status = std::make_unique<Status>(*d.leases, [&d] {
        if (d.idle)
            d.idle->update();
    });
    d.leases->publish();
    d.apply_static_leases();
    // Every object exists before anyone can find the daemon.
    d.changes->flush();

    if (d.connection) {
        // Without the bus, owners can no longer be tracked: stop cleanly.
        d.bus_loop = std::make_unique<bus::BusLoop>(
            d.event.get(), *d.connection,
            [&d](const std::string& why) {
                log::error("lost the system bus (" + why + "); stopping");
                d.stop();
                sd_event_exit(d.event.get(), 1);
            },
            [&d] { d.changes->flush(); });
    }
    for (int sig : {SIGTERM, SIGINT, SIGHUP})
        check(sd_event_add_signal(d.event.get(), nullptr, sig, &Impl::on_signal, &d),
              "cannot watch signals");
    if (d.connection) {
        d.objects->announce();
        try {
            d.connection->requestName(PROMISCD_BUS_NAME);
        } catch (const sdbus::Error& e) {
            throw std::runtime_error(std::string("cannot own the bus name ") + PROMISCD_BUS_NAME +
                                     ": " + e.getMessage());
        }
    }
    if (d.activated || d.options.exit_on_idle)
        d.idle = std::make_unique<IdleExit>(
            d.event.get(), d.config.idle_exit_seconds, [&d] { return d.idle_state(); },
            [&d] { d.idle_exit(); });
    d.status->update();
}

Daemon::~Daemon() {
    Impl& d = *impl_;
    d.idle.reset();
    d.status.reset();
    d.varlink_server.reset();
    d.varlink_handler.reset();
    d.objects.reset();
    d.frontend.reset();
    d.operations.reset();
    d.captures.reset(); // releases its leases: before the lease service
    if (d.audit)
        d.changes->unsubscribe(d.audit.get());
    d.audit.reset();
    if (d.bus_loop)
        d.bus_loop->drain();
    d.authorizer.reset();
    d.polkit.reset();
    d.guard.reset();
    d.credentials.reset();
    d.bus_loop.reset();
    d.connection.reset(); // flushes what is still queued
    d.leases.reset();
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
    // What a costly read's answer holds: the global budget is in items.
    auto items = [this](const char*, const char* member) -> size_t {
        if (!objects)
            return 1;
        const std::string_view m = member ? member : "";
        if (m == "ListLinks")
            return objects->link_objects();
        if (m == "ListLeases")
            return objects->lease_objects();
        return objects->objects(); // GetManagedObjects; Introspect lists the children
    };
    guard = std::make_unique<bus::BusGuard>(
        bus::raw_bus(credentials->driver()), [this] { return now(); }, guard_limits(config), items);
}

void Daemon::Impl::start_varlink() {
    int fd = activation_socket_fd;
    if (fd < 0 && !options.varlink_path.empty())
        fd = varlink::Server::listen_on(options.varlink_path);
    if (fd < 0)
        return;
    varlink_handler = std::make_unique<varlink::PromiscVarlink>(*operations);
    varlink_server = std::make_unique<varlink::Server>(event.get(), fd, *varlink_handler,
                                                       varlink_limits(config));
    varlink_server->on_connections_changed = [this] {
        if (idle)
            idle->update();
    };
}

void Daemon::Impl::recover() {
    if (auto why = store->unusable(); !why.empty())
        log::error("cannot record lease state: " + why +
                   "; promiscd will refuse new leases until it can");
    state::Records records = store->load();
    const std::vector<int> stale_ns_flags = reopen_namespaces(records);
    std::string bus_id;
    if (credentials) {
        try {
            bus_id = credentials->bus_id();
        } catch (const sdbus::Error& e) {
            log::warning("cannot ask the bus for its id: " + e.getMessage());
        }
    }
    state::SurvivalContext ctx;
    ctx.same_bus = !bus_id.empty() && bus_id == records.bus_id;
    for (const auto& s : config.static_leases)
        ctx.static_leases.insert(s.interface);
    ctx.holds.insert(options.holds.begin(), options.holds.end());
    ctx.name_has_owner = [this](const std::string& name) {
        try {
            return credentials && credentials->name_has_owner(name);
        } catch (const sdbus::Error& e) {
            log::warning("cannot ask the bus about " + name + ": " + e.getMessage());
            return false;
        }
    };
    std::vector<int> flagged;
    for (const auto& v : leases->arbiter().links())
        if (v.info.admin_flag)
            flagged.push_back(v.info.ifindex);
    if (!records.bus_id.empty() && !bus_id.empty() && !ctx.same_bus)
        log::notice("the system bus was restarted since the last run (bus id " + records.bus_id +
                    ", now " + bus_id + "): leases of D-Bus clients are not adopted");
    state::Plan plan = state::plan_recovery(records, ctx, flagged);
    leases->adopt(plan.adoption);
    for (const auto& l : plan.ended)
        log::audit(log::Level::Info, log::id::lease_ended,
                   "lease " + std::to_string(l.id) + " on " + core::display_name(l.interface) +
                       " held by " + core::describe(l.owner) +
                       " ended: owner-gone (while promiscd was not running)",
                   {{"PROMISCD_LINK", core::display_name(l.interface)},
                    {"PROMISCD_LEASE", std::to_string(l.id)},
                    {"PROMISCD_OWNER", core::label(l.owner)},
                    {"PROMISCD_OWNER_UID", std::to_string(l.owner.uid)},
                    {"PROMISCD_REASON", "owner-gone"}});
    for (int idx : plan.unknown)
        if (auto v = leases->arbiter().link(idx))
            log::warning("promiscuous mode is on on " + core::display_name(v->info.name) +
                         " and promiscd's records cannot say who set it (origin unknown); it "
                         "is left alone");
    if (!plan.adoption.leases.empty() || !plan.ended.empty())
        log::notice(
            "recovered from the previous run: " + std::to_string(plan.adoption.leases.size()) +
            " leases adopted, " + std::to_string(plan.ended.size()) + " ended");
    try {
        store->begin(bus_id, leases->arbiter().next_id());
        // A namespace's links have this run's indexes: their flags are
        // recorded under those.
        for (int idx : stale_ns_flags)
            store->remove_flag(idx);
        for (int idx : leases->arbiter().daemon_set_links())
            if (auto v = leases->arbiter().link(idx); v && v->info.netns != 0)
                store->save_flag(idx, v->info.name);
    } catch (const service::RecordError& e) {
        if (store->unusable().empty())
            log::error(std::string(e.what()) + "; promiscd will refuse new leases until it can");
    }
    store->prune(leases->arbiter());
}

std::vector<int> Daemon::Impl::reopen_namespaces(state::Records& records) {
    // The namespaces of the earlier run's leases are opened again, by the
    // name their clients gave, and only when that name still leads to the
    // same namespace (its inode): their leases can then be adopted, and
    // flags promiscd set in them cleared. A lease whose namespace is gone
    // ended with it.
    for (auto it = records.leases.begin(); it != records.leases.end();) {
        const uint64_t inode = core::split_link(it->interface).netns;
        if (inode == 0) {
            ++it;
            continue;
        }
        std::string why = "its network namespace is gone";
        if (config.namespaces_enabled && !it->netns.empty()) {
            try {
                net::Netns ns = net::open_netns(it->netns);
                // (Its owner is not recorded: a namespace by the same name
                // and inode is taken for the same one, as ip netns does.)
                if (ns.inode == inode) {
                    leases->open_namespace(std::move(ns));
                    ++it;
                    continue;
                }
                why = core::quote(it->netns) + " is another network namespace now";
            } catch (const std::exception& e) {
                why = e.what();
            }
        } else if (!config.namespaces_enabled) {
            why = "network namespaces are switched off (namespaces.enabled)";
        }
        log::audit(log::Level::Info, log::id::lease_ended,
                   "lease " + std::to_string(it->id) + " on " + core::describe_link(it->interface) +
                       " held by " + core::describe(it->owner) +
                       " ended: netns-gone (while promiscd was not running: " + why + ")",
                   {{"PROMISCD_LINK", core::display_name(it->interface)},
                    {"PROMISCD_LEASE", std::to_string(it->id)},
                    {"PROMISCD_OWNER", core::label(it->owner)},
                    {"PROMISCD_OWNER_UID", std::to_string(it->owner.uid)},
                    {"PROMISCD_REASON", "netns-gone"}});
        records.next_id = std::max(records.next_id, it->id + 1);
        it = records.leases.erase(it);
    }
    // Flags were recorded under the earlier run's indexes of those links.
    std::vector<int> stale;
    for (auto it = records.flags.begin(); it != records.flags.end();) {
        if (core::split_link(it->second).netns == 0) {
            ++it;
            continue;
        }
        stale.push_back(it->first);
        if (auto v = leases->arbiter().link_by_name(it->second)) {
            it->first = v->info.ifindex;
            ++it;
        } else {
            it = records.flags.erase(it); // gone with its namespace
        }
    }
    return stale;
}

std::vector<StaticLease> Daemon::Impl::wanted_static() const {
    std::vector<StaticLease> out;
    for (const auto& s : config.static_leases)
        out.push_back({kStaticOwner, s.interface,
                       s.reason.empty() ? "static lease (" + config_path + ")" : s.reason});
    for (const auto& h : options.holds)
        out.push_back({kHoldOwner, h, "static lease (--hold)"});
    return out;
}

void Daemon::Impl::apply_static_leases() {
    auto plan = plan_static(wanted_static(), leases->arbiter().lease_table(),
                            static_cast<uint32_t>(::getpid()));
    for (auto id : plan.release)
        leases->release(id, core::EndReason::Released);
    for (const auto& req : plan.acquire) {
        try {
            leases->acquire(req);
        } catch (const core::Error& e) {
            log::error("static lease on " + core::display_name(req.interface) + ": " + e.what());
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
    leases->set_limits(config.limits);
    leases->set_policy_patterns(config.policies);
    authorizer->set_allowed_groups(resolve_groups(config.allowed_groups));
    authorizer->set_limits(config.authorization);
    captures->set_compiler_limits(config.filters);
    operations->set_namespaces_enabled(config.namespaces_enabled);
    if (varlink_server)
        varlink_server->set_limits(varlink_limits(config));
    if (guard)
        guard->set_limits(guard_limits(config));
    apply_static_leases();
    if (idle)
        idle->set_seconds(config.idle_exit_seconds);
    log::notice("reloaded the configuration from " + config_path);
}

IdleState Daemon::Impl::idle_state() const {
    return {leases->arbiter().lease_count(), captures->count(),
            varlink_server ? varlink_server->connections() : 0, operations->pending()};
}

void Daemon::Impl::idle_exit() {
    log::info("idle for " + std::to_string(config.idle_exit_seconds) + " s; exiting");
    // Give the name back first, then answer what was already queued for it:
    // later callers start a new instance through activation.
    if (connection) {
        try {
            connection->releaseName(PROMISCD_BUS_NAME);
        } catch (const sdbus::Error& e) {
            log::warning("cannot release the bus name: " + e.getMessage());
        }
        if (bus_loop)
            bus_loop->drain();
    }
    stop();
    sd_event_exit(event.get(), 0);
}

void Daemon::Impl::stop() {
    sd_notify(0, "STOPPING=1\nSTATUS=Clearing promiscuous flags");
    captures->shutdown();
    leases->shutdown();
    store->clear();
    // Owners are told (daemon-shutdown) before the loop ends.
    changes->flush();
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
    log::info("watching " + std::to_string(d.leases->arbiter().link_count()) + " links" + serving);
    int r = sd_event_loop(d.event.get());
    if (r < 0) {
        log::error(std::string("event loop failed: ") + std::strerror(-r));
        return 1;
    }
    return r; // the code given to sd_event_exit()
}

} // namespace promiscd
