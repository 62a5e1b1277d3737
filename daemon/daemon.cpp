#include "daemon.hpp"

#include "auth/authorizer.hpp"
#include "auth/polkit_authority.hpp"
#include "bus/bus_frontend.hpp"
#include "bus/bus_loop.hpp"
#include "bus/peer_credentials.hpp"
#include "config.h"
#include "log.hpp"
#include "state/state_store.hpp"

#include <csignal>
#include <cstring>
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

// Keeps the state file and systemd's STATUS= line in step with every change.
class StateKeeper : public Listener {
public:
    StateKeeper(const Service& service, state::StateStore& store)
        : service_(service), store_(store) {}
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
    }

private:
    const Service& service_;
    state::StateStore& store_;
    std::string last_status_;
};

} // namespace

struct Daemon::Impl {
    DaemonOptions options;
    EventPtr event;
    std::unique_ptr<Service> service;
    std::unique_ptr<state::StateStore> store;
    std::unique_ptr<StateKeeper> keeper;
    std::unique_ptr<sdbus::IConnection> connection;
    std::unique_ptr<bus::BusLoop> bus_loop;
    std::unique_ptr<bus::PeerCredentials> credentials;
    std::unique_ptr<auth::PolkitAuthority> polkit;
    std::unique_ptr<auth::Authorizer> authorizer;
    std::unique_ptr<bus::BusFrontend> frontend;

    static int on_signal(sd_event_source* s, const signalfd_siginfo* si, void* userdata);
    void recover();
    void stop();
};

Daemon::Daemon(DaemonOptions options) : impl_(std::make_unique<Impl>()) {
    Impl& d = *impl_;
    d.options = std::move(options);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    sd_event* raw = nullptr;
    check(sd_event_new(&raw), "cannot create the event loop");
    d.event.reset(raw);
    sd_event_set_watchdog(d.event.get(), true); // WATCHDOG=1 when WatchdogSec= is set

    d.store = std::make_unique<state::StateStore>(
        d.options.state_dir.empty() ? state::default_state_dir() : d.options.state_dir);
    d.service = std::make_unique<Service>(d.event.get(), d.options.service);
    d.service->start();

    if (d.options.use_bus) {
        try {
            d.connection = sdbus::createSystemBusConnection();
        } catch (const sdbus::Error& e) {
            throw std::runtime_error("cannot connect to the system bus: " + e.getMessage());
        }
        // Without the bus, owners can no longer be tracked: stop cleanly.
        d.bus_loop = std::make_unique<bus::BusLoop>(
            d.event.get(), *d.connection, [&d](const std::string& why) {
                log::error("lost the system bus (" + why + "); stopping");
                d.stop();
                sd_event_exit(d.event.get(), 1);
            });
        d.credentials = std::make_unique<bus::PeerCredentials>(*d.connection);
        d.polkit = std::make_unique<auth::PolkitAuthority>(*d.connection);
        d.authorizer = std::make_unique<auth::Authorizer>(d.polkit.get());
        d.frontend = std::make_unique<bus::BusFrontend>(*d.service, *d.connection, *d.credentials,
                                                        *d.authorizer);
    }
    d.recover();
    d.keeper = std::make_unique<StateKeeper>(*d.service, *d.store);
    d.service->add_listener(d.keeper.get());
    if (d.frontend)
        d.frontend->publish();

    for (const auto& name : d.options.holds) {
        core::LeaseRequest req;
        req.interface = name;
        req.owner = {"config", "--hold", 0, static_cast<uint32_t>(::getpid()), "promiscd"};
        req.reason = "static lease (--hold)";
        req.wait = true;
        d.service->acquire(req);
    }
    d.keeper->on_changed();

    for (int sig : {SIGTERM, SIGINT})
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
}

Daemon::~Daemon() {
    Impl& d = *impl_;
    if (d.keeper)
        d.service->remove_listener(d.keeper.get());
    d.frontend.reset();
    if (d.bus_loop)
        d.bus_loop->drain();
    d.authorizer.reset();
    d.polkit.reset();
    d.credentials.reset();
    d.bus_loop.reset();
    d.connection.reset(); // flushes what is still queued
    d.service.reset();
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
    auto alive = [this](const core::Owner& o) {
        if (o.transport != "dbus" || !credentials)
            return false;
        try {
            return credentials->name_has_owner(o.id);
        } catch (const sdbus::Error& e) {
            log::warning("cannot ask the bus about " + o.id + ": " + e.getMessage());
            return false;
        }
    };
    state::Recovery report;
    auto commands = state::recover(service->arbiter(), *saved, alive, report);
    service->execute(commands);
    if (report.adopted || report.ended)
        log::notice("recovered from the previous run: " + std::to_string(report.adopted) +
                    " leases adopted, " + std::to_string(report.ended) + " ended");
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
    log::notice(std::string("received ") + ::strsignal(static_cast<int>(si->ssi_signo)) +
                ", stopping");
    d->stop();
    sd_event_exit(sd_event_source_get_event(s), 0);
    return 0;
}

int Daemon::run() {
    Impl& d = *impl_;
    sd_notify(0, "READY=1");
    log::info("watching " + std::to_string(d.service->arbiter().links().size()) + " links" +
              (d.connection ? std::string(", serving ") + PROMISCD_BUS_NAME : std::string()));
    int r = sd_event_loop(d.event.get());
    if (r < 0) {
        log::error(std::string("event loop failed: ") + std::strerror(-r));
        return 1;
    }
    return r; // the code given to sd_event_exit()
}

} // namespace promiscd
