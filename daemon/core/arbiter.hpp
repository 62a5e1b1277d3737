// The lease arbiter: the lease table and the per-link promiscuity state
// machine. Pure: events (with the time as an argument) in, commands out; no
// sockets, no clocks. Every rule of "Lease semantics" in docs/DESIGN.md lives
// here. Indexed by interface name, owner, uid and expiry, so every event
// costs what it touches, not what the table holds.
#pragma once

#include "errors.hpp"
#include "link_info.hpp"
#include "names.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace promiscd::core {

using Usec = uint64_t; // a monotonic time in microseconds, supplied by the caller
using LeaseId = uint64_t;

inline constexpr Usec usec_per_sec = 1'000'000;

// Who holds a lease. (transport, id) identifies the owner: a D-Bus unique name,
// a varlink connection, or "config" for static leases.
struct Owner {
    std::string transport;
    std::string id;
    uint32_t uid = 0;
    uint32_t pid = 0;
    std::string command;
    bool operator==(const Owner&) const = default;
};

// How clients see an owner, the same on every transport: a D-Bus unique name
// (":1.42"), "varlink:<connection>", "config:static" or "config:hold".
std::string label(const Owner& owner);
// ":1.42 (uid 1000, pid 4242, wireshark)", for messages.
std::string describe(const Owner& owner);

struct LeaseRequest {
    std::string interface;
    Owner owner;
    std::optional<Usec> ttl; // relative, microseconds; nullopt: no expiry
    std::string reason;
    bool wait = false;    // allow a pending lease on an absent link
    bool capture = false; // held by a capture (ends with it, and at a restart)
    // The network namespace as the client named it (option "netns"); empty:
    // promiscd's own. The operations layer opens it and qualifies interface.
    std::string netns;
};

struct Lease {
    LeaseId id = 0;
    std::string interface;
    Owner owner;
    LeaseState state = LeaseState::Pending;
    std::string reason;
    Usec acquired = 0;
    std::optional<Usec> expires;
    bool capture = false;
    // On a link of another network namespace (interface is qualified): the
    // namespace as the client named it.
    std::string netns;
    bool operator==(const Lease&) const = default;
};

struct Limits {
    // Per uid other than 0 (root is bounded only by the total): a hypervisor
    // running as root may hold a lease per tap.
    unsigned leases_per_uid = 64;
    unsigned leases_total = 16384;
    // Enforce stops fighting when another agent clears the flag more than
    // conflict_max_clears times within conflict_window.
    unsigned conflict_max_clears = 5;
    Usec conflict_window = 10 * usec_per_sec;
    Usec max_ttl = 366ULL * 24 * 3600 * usec_per_sec;
    size_t max_reason_length = 256;
    // Network namespaces watched at once (each costs up to five files:
    // the namespace, a pidfd, three netlink sockets; and its link table); a
    // namespace is watched while leases or captures use it.
    unsigned namespaces_total = 64;
    // Captures (capture::CaptureManager): each holds a packet socket, a kernel
    // ring of up to max_capture_buffer bytes and a pipe, so they are counted
    // apart from leases.
    unsigned captures_per_uid = 8;
    unsigned captures_total = 64;
    size_t max_capture_buffer = size_t{64} << 20;
    // Kernel ring memory of all captures together (each reserves its buffer).
    size_t capture_memory_total = size_t{256} << 20;
};

// Commands: what the adapters must do or tell, in order.
struct SetFlag {
    int ifindex = 0;
    std::string name;
    bool on = false;
    bool operator==(const SetFlag&) const = default;
};
struct LeaseStateChanged {
    LeaseId id = 0;
    LeaseState from = LeaseState::Pending;
    LeaseState to = LeaseState::Pending;
    bool operator==(const LeaseStateChanged&) const = default;
};
// Who revoked a lease and why, for its owner and the audit record.
struct Revocation {
    std::string by; // describe() of the revoker
    uint32_t by_uid = 0;
    std::string message; // the revoker's reason, may be empty
    bool operator==(const Revocation&) const = default;
};
struct LeaseEnded {
    Lease lease;
    EndReason reason = EndReason::Released;
    std::optional<Revocation> revocation;
    bool operator==(const LeaseEnded&) const = default;
};
// Another agent keeps clearing the flag; enforce gave up on this link.
struct ConflictDetected {
    int ifindex = 0;
    std::string name;
    unsigned clears = 0;
    bool operator==(const ConflictDetected&) const = default;
};
// The admin bit changed and promiscd did not do it (for monitors and logs).
struct ExternalFlagChange {
    int ifindex = 0;
    std::string name;
    bool on = false;
    bool operator==(const ExternalFlagChange&) const = default;
};
using Command =
    std::variant<SetFlag, LeaseStateChanged, LeaseEnded, ConflictDetected, ExternalFlagChange>;
using Commands = std::vector<Command>;

struct AcquireResult {
    LeaseId id = 0;
    Commands commands;
};

// A link as the arbiter sees it: the kernel's report plus what it decided.
struct LinkView {
    LinkInfo info;
    Origin origin = Origin::None;
    Policy policy = Policy::Enforce;
    unsigned leases = 0;
    bool overridden = false;
    uint64_t external_changes = 0; // times another agent changed the admin bit
    bool operator==(const LinkView&) const = default;
};

class Arbiter {
public:
    explicit Arbiter(Limits limits = {});

    // -- Lease requests. Each throws Error and changes nothing when refused.
    // Throws what acquire() would, without changing anything.
    void check_acquire(const LeaseRequest& request) const;
    // The lease acquire() would grant now (same id), for a write-ahead record.
    Lease preview(const LeaseRequest& request, Usec now) const;
    AcquireResult acquire(const LeaseRequest& request, Usec now);
    Commands release(LeaseId id, EndReason reason = EndReason::Released,
                     std::optional<Revocation> revocation = std::nullopt);
    // ttl 0: no expiry from now on.
    Commands renew(LeaseId id, Usec ttl, Usec now);
    // What renew() would make of the lease (same checks), without changing it.
    Lease preview_renew(LeaseId id, Usec ttl, Usec now) const;
    // Ends every lease of this owner with reason owner-gone.
    Commands owner_gone(const std::string& transport, const std::string& owner_id);
    // Ends the leases whose TTL has passed.
    Commands expire(Usec now);
    // When expire() next has something to do.
    std::optional<Usec> next_expiry() const;
    Commands set_policy(const std::string& interface, Policy policy, Usec now);
    // Default policy by fnmatch(3) pattern, first match wins; links without
    // a match or an explicit set_policy() use enforce.
    void set_policy_patterns(std::vector<std::pair<std::string, Policy>> patterns);
    Commands shutdown();

    // -- Link events from rtnetlink.
    // Whether a notification's admin bit is news. The kernel queues the echo
    // of every RTM_SETLINK of ours behind the notifications already waiting,
    // and the table changed when the command was issued: what was queued up to
    // that echo says nothing new about the bit (the adapter tells which).
    enum class FlagNews { Current, Superseded };
    // RTM_NEWLINK: new, changed or renamed.
    Commands link_changed(const LinkInfo& info, Usec now, FlagNews news = FlagNews::Current);
    Commands link_removed(int ifindex); // RTM_DELLINK
    // A full dump after missed notifications: reconcile the whole table.
    Commands links_resynced(const std::vector<LinkInfo>& links, Usec now);
    // The adapter could not apply a SetFlag: the bit is as it was.
    Commands set_flag_failed(int ifindex, bool on);

    // -- Crash recovery: re-install a lease saved before a crash, keeping its
    // id, and whether the daemon had set the flag on its link.
    // adopt() and adopt_daemon_flag() only record; finish_adoption() then
    // reconciles every link at once, so an adopted lease finds its flag still
    // the daemon's (no flicker) and a flag nobody holds any more is cleared.
    void adopt(const Lease& lease);
    void adopt_daemon_flag(int ifindex, const std::string& name);
    // The admin bit is on and promiscd cannot tell who set it (its records
    // were unusable): origin "unknown", never cleared by promiscd.
    void adopt_unknown_flag(int ifindex);
    Commands finish_adoption();
    void set_next_id(LeaseId next) { next_id_ = std::max(next_id_, next); }
    LeaseId next_id() const { return next_id_; }

    // -- Queries.
    const Lease* find(LeaseId id) const;
    // Throws Error(NoSuchLease) naming the id ("has ended" when it did).
    const Lease& get(LeaseId id) const;
    std::vector<Lease> leases() const;
    const std::map<LeaseId, Lease>& lease_table() const { return leases_; }
    std::vector<LinkView> links() const;
    std::optional<LinkView> link(int ifindex) const;
    std::optional<LinkView> link_by_name(const std::string& name) const;
    Policy policy_for(const std::string& name) const;
    // Links whose flag the daemon set and must clear.
    const std::set<int>& daemon_set_links() const { return daemon_set_; }
    const Limits& limits() const { return limits_; }
    void set_limits(const Limits& limits) { limits_ = limits; }
    size_t lease_count() const { return leases_.size(); }
    size_t link_count() const { return links_.size(); }
    size_t active_count() const { return active_; }
    unsigned leases_of_uid(uint32_t uid) const;
    size_t leases_of_owner(const std::string& transport, const std::string& id) const;

private:
    struct LinkRec {
        LinkInfo info;
        bool daemon_set = false; // the daemon set the flag and owes a clear
        bool unknown = false;    // on at a start without records: not ours to clear
        bool overridden = false; // leases yielded or enforcement gave up
        std::deque<Usec> clears; // external clears within the window
        uint64_t external_changes = 0;
    };
    using LeaseIt = std::map<LeaseId, Lease>::iterator;

    LinkRec* rec_by_name(const std::string& name);
    const LinkRec* rec_by_name(const std::string& name) const;
    void reconcile(const std::string& name, Commands& out);
    void end_lease(LeaseIt it, EndReason reason, Commands& out,
                   std::optional<Revocation> revocation = std::nullopt);
    void apply_info(LinkRec& rec, const LinkInfo& info, FlagNews news, Usec now, Commands& out);
    LinkView view(const LinkRec& rec) const;
    unsigned count_on(const std::string& name) const;
    // Index upkeep: every change to the tables goes through these.
    LeaseIt insert_lease(Lease lease);
    void erase_lease(LeaseIt it);
    void set_expiry(Lease& lease, std::optional<Usec> expires);
    void set_state(Lease& lease, LeaseState state);
    void set_daemon(LinkRec& rec, bool daemon_set);
    LinkRec& insert_link(const LinkInfo& info);
    void erase_link(std::map<int, LinkRec>::iterator it);
    void rename_link(LinkRec& rec, const std::string& name);

    Limits limits_;
    LeaseId next_id_ = 1;
    std::map<LeaseId, Lease> leases_;
    std::unordered_map<std::string, std::set<LeaseId>> by_name_;
    std::map<std::pair<std::string, std::string>, std::set<LeaseId>> by_owner_;
    std::unordered_map<uint32_t, unsigned> per_uid_;
    std::set<std::pair<Usec, LeaseId>> expiries_;
    size_t active_ = 0;
    std::map<int, LinkRec> links_;
    std::unordered_map<std::string, int> link_by_name_;
    std::set<int> daemon_set_;
    std::map<std::string, Policy> policies_;
    std::vector<std::pair<std::string, Policy>> patterns_;
};

} // namespace promiscd::core
