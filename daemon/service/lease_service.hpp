// The lease service: LinkWatcher -> Arbiter -> LinkControl on one sd-event
// loop, the TTL timer, the write-ahead records, and the ordered stream of
// changes, published only after the kernel acknowledged a flag change. The
// operations layer and the capture service call only this; nobody else gets
// the arbiter to change.
#pragma once

#include "core/arbiter.hpp"
#include "event.hpp"
#include "net/link_control.hpp"
#include "net/link_watcher.hpp"
#include "service/changes.hpp"
#include "service/recorder.hpp"

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <systemd/sd-event.h>
#include <vector>

namespace promiscd::service {

// What crash recovery decided (state/recovery.hpp), for the service to apply
// before anything is published.
struct Adoption {
    std::vector<core::Lease> leases;                // adopted, keeping their ids
    std::vector<std::pair<int, std::string>> flags; // the daemon had set these
    std::vector<int> unknown;                       // on, and nobody can say by whom
    core::LeaseId next_id = 1;
};

class LeaseService {
public:
    struct Options {
        core::Limits limits;
        int netlink_rcvbuf = 0; // 0: the watcher's default
    };
    LeaseService(sd_event* event, Options options, ChangeStream& changes,
                 Recorder* recorder = nullptr);
    ~LeaseService();
    LeaseService(const LeaseService&) = delete;
    LeaseService& operator=(const LeaseService&) = delete;

    // Dump the links, feed the arbiter, start watching (nothing published).
    void start();
    // Crash recovery, before publish(): adopt what survived, clear the rest.
    void adopt(const Adoption& adoption);
    // Announce every link and lease held now (LinkAdded, LeaseAdded), then
    // keep publishing changes.
    void publish();

    // Each throws core::Error and changes nothing when refused. A lease whose
    // record cannot be written, or whose flag the kernel refuses to set, is
    // not granted (Failed).
    core::LeaseId acquire(const core::LeaseRequest& request);
    void release(core::LeaseId id, core::EndReason reason = core::EndReason::Released,
                 std::optional<core::Revocation> revocation = std::nullopt);
    // ttl 0: no expiry. Refused (Failed) when the record cannot be updated.
    void renew(core::LeaseId id, core::Usec ttl);
    void owner_gone(const std::string& transport, const std::string& owner_id);
    void set_policy(const std::string& interface, core::Policy policy);
    void set_limits(const core::Limits& limits) { arbiter_.set_limits(limits); }
    void set_policy_patterns(std::vector<std::pair<std::string, core::Policy>> patterns);
    // Clear every flag the daemon set and end every lease (daemon-shutdown).
    void shutdown();

    const core::Arbiter& arbiter() const { return arbiter_; }
    core::Usec now() const;
    // A monotonic time as CLOCK_REALTIME microseconds, for clients.
    uint64_t realtime(core::Usec monotonic) const;
    sd_event* event() const { return event_; }
    ChangeStream& changes() { return changes_; }
    uint64_t resync_count() const { return watcher_.resync_count(); }
    Recorder* recorder() const { return recorder_; }

private:
    struct Outcome {
        std::vector<Change> changes;
        std::set<int> touched;   // links whose view may have changed
        std::vector<int> failed; // SetFlag that the kernel (or the record) refused
    };
    Outcome execute(const core::Commands& commands);
    void touch(Outcome& out, const std::string& name);
    // Publishes the changes, then LinkChanged for every touched link whose
    // view differs from the one last published; re-arms the timer.
    void finish(Outcome out);
    void on_changed(const core::LinkInfo& info, bool superseded);
    void on_removed(int ifindex, const std::string& name);
    void on_resynced(const std::vector<core::LinkInfo>& links);
    void arm_timer();
    static int on_timer(sd_event_source* s, uint64_t usec, void* userdata);
    core::Error record_failed(const RecordError& e) const;

    sd_event* event_;
    ChangeStream& changes_;
    Recorder* recorder_;
    core::Arbiter arbiter_;
    uint64_t realtime_offset_; // CLOCK_REALTIME - CLOCK_MONOTONIC at start
    net::LinkControl control_;
    net::LinkWatcher watcher_;
    EventSourcePtr timer_;
    bool publishing_ = false;
    std::map<int, core::LinkView> published_; // what the projections were told
};

} // namespace promiscd::service
