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
#include "net/netns.hpp"
#include "service/changes.hpp"
#include "service/recorder.hpp"

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <systemd/sd-event.h>
#include <unordered_map>
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

    // -- Other network namespaces (docs/DESIGN.md, "Other network
    // namespaces"). A namespace is watched from its first user to its last:
    // its leases, and the holds of captures. Its links join the arbiter
    // under promiscd's own indexes and qualified names (core::qualify).
    //
    // Watches the namespace unless it is watched already (its rtnetlink
    // sockets are made on a helper thread inside it) and returns its inode,
    // or 0 when it is promiscd's own. A namespace nobody uses by the end of
    // the current dispatch is closed again. Throws core::Error: Failed when
    // its sockets cannot be made, QuotaExceeded past limits.namespaces_total.
    uint64_t open_namespace(net::Netns netns);
    // Keeps an open namespace open (a capture in it) until drop_namespace().
    void hold_namespace(uint64_t inode);
    void drop_namespace(uint64_t inode);
    // Runs fn on a helper thread inside the namespace (0: here, at once).
    // Throws core::Error(Failed) when the namespace is not open.
    void run_in_namespace(uint64_t inode, const std::function<void()>& fn);
    // The namespace as it was named, while it is open; nullptr otherwise.
    const net::Netns* namespace_of(uint64_t inode) const;
    size_t namespace_count() const { return namespaces_.size(); }
    // The inode of promiscd's own namespace (0 when it could not be read).
    uint64_t own_namespace() const { return own_netns_; }
    // Checks now whether anything but promiscd still holds each open
    // namespace; one that nothing holds is gone (see on_namespace_gone).
    void check_namespaces();
    // Runs when a namespace is gone, before its leases end (netns-gone) and
    // its links leave: captures in it finish.
    std::function<void(uint64_t inode)> on_namespace_gone;

    const core::Arbiter& arbiter() const { return arbiter_; }
    core::Usec now() const;
    // A monotonic time as CLOCK_REALTIME microseconds, for clients.
    uint64_t realtime(core::Usec monotonic) const;
    sd_event* event() const { return event_; }
    ChangeStream& changes() { return changes_; }
    uint64_t resync_count() const { return watcher_.resync_count(); }
    Recorder* recorder() const { return recorder_; }

private:
    struct Namespace;
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
    // A namespace's link as the arbiter knows it (promiscd's index, the
    // qualified name).
    core::LinkInfo from_namespace(uint64_t inode, Namespace& ns, core::LinkInfo info);
    void on_ns_removed(uint64_t inode, int kernel_index);
    void on_ns_resynced(uint64_t inode, const std::vector<core::LinkInfo>& links);
    void lease_left_namespace(const core::Lease& lease);
    void schedule_namespace_reap();
    void reap_namespaces();
    void close_namespace(uint64_t inode);
    void namespace_gone(uint64_t inode);
    void watch_namespace_life();
    static int on_ns_reap(sd_event_source* s, void* userdata);
    static int on_ns_check(sd_event_source* s, uint64_t usec, void* userdata);
    static int on_ns_event(sd_event_source* s, int fd, uint32_t revents, void* userdata);
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
    int netlink_rcvbuf_ = 0;
    uint64_t own_netns_ = 0; // the inode of promiscd's namespace
    std::map<uint64_t, std::unique_ptr<Namespace>> namespaces_;
    // promiscd's index of a namespace's link -> (namespace inode, kernel index)
    std::unordered_map<int, std::pair<uint64_t, int>> ns_index_;
    int next_ns_index_ = core::kFirstNamespaceIndex;
    std::deque<int> free_ns_indexes_; // once next_ns_index_ reached INT_MAX
    EventSourcePtr ns_reaper_;        // closes namespaces nobody uses
    EventSourcePtr ns_timer_;         // the slow check whether a namespace is gone
    core::Usec last_ns_check_ = 0;
    EventSourcePtr mountinfo_; // POLLPRI when a mount comes or goes
    capture::UniqueFd mountinfo_fd_;
};

} // namespace promiscd::service
