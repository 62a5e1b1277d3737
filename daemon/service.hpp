// The daemon's service layer: wires LinkWatcher -> Arbiter -> LinkControl on
// one sd-event loop, runs the TTL timer, executes the arbiter's commands and
// tells the front ends (listeners) what happened. Front ends call only this.
#pragma once

#include "core/arbiter.hpp"
#include "net/link_control.hpp"
#include "net/link_watcher.hpp"

#include <functional>
#include <memory>
#include <systemd/sd-event.h>
#include <vector>

namespace promiscd {

// A front end's view of what the service did, command by command, after the
// kernel was told. Links: every link event, so Link objects can follow.
class Listener {
public:
    virtual ~Listener() = default;
    virtual void on_command(const core::Command& command) = 0;
    virtual void on_link_changed(const core::LinkView& /*link*/) {}
    virtual void on_link_removed(int /*ifindex*/, const std::string& /*name*/) {}
    // After every change (also those that produce no command, like a renew).
    virtual void on_changed() {}
    // A lease was granted (the first state is in the lease).
    virtual void on_lease_granted(const core::Lease& /*lease*/) {}
};

struct EventDeleter {
    void operator()(sd_event* e) const noexcept { sd_event_unref(e); }
};
struct EventSourceDeleter {
    void operator()(sd_event_source* s) const noexcept { sd_event_source_disable_unref(s); }
};
using EventPtr = std::unique_ptr<sd_event, EventDeleter>;
using EventSourcePtr = std::unique_ptr<sd_event_source, EventSourceDeleter>;

class Service {
public:
    struct Options {
        core::Limits limits;
        int netlink_rcvbuf = 0; // 0: the watcher's default
    };
    Service(sd_event* event, Options options);
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    // Dump the links, feed the arbiter, start watching.
    void start();

    // Each throws core::Error and changes nothing when refused. A lease whose
    // flag the kernel refuses to set is rolled back and reported as Failed.
    core::LeaseId acquire(const core::LeaseRequest& request);
    void release(core::LeaseId id, core::EndReason reason = core::EndReason::Released);
    void renew(core::LeaseId id, core::Usec ttl);
    void owner_gone(const std::string& transport, const std::string& owner_id);
    void set_policy(const std::string& interface, core::Policy policy);
    // Clear every flag the daemon set and end every lease (daemon-shutdown).
    void shutdown();

    const core::Arbiter& arbiter() const { return arbiter_; }
    core::Arbiter& arbiter() { return arbiter_; }
    core::Usec now() const;
    // A monotonic time as CLOCK_REALTIME microseconds, for clients.
    uint64_t realtime(core::Usec monotonic) const;
    sd_event* event() const { return event_; }
    void add_listener(Listener* l) { listeners_.push_back(l); }
    void remove_listener(Listener* l) { std::erase(listeners_, l); }
    uint64_t resync_count() const { return watcher_.resync_count(); }

    // Execute commands produced by the arbiter outside of the calls above
    // (crash recovery); returns the links whose SetFlag failed.
    std::vector<int> execute(const core::Commands& commands);

private:
    void on_changed(const core::LinkInfo& info);
    void on_removed(int ifindex, const std::string& name);
    void on_resynced(const std::vector<core::LinkInfo>& links);
    void arm_timer();
    static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);
    void notify_link(int ifindex);

    sd_event* event_;
    core::Arbiter arbiter_;
    uint64_t realtime_offset_; // CLOCK_REALTIME - CLOCK_MONOTONIC at start
    net::LinkControl control_;
    net::LinkWatcher watcher_;
    EventSourcePtr timer_;
    std::vector<Listener*> listeners_;
};

} // namespace promiscd
