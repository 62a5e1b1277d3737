#include "arbiter.hpp"

#include <algorithm>
#include <fnmatch.h>
#include <set>

namespace promiscd::core {

namespace {

std::string seconds_text(Usec usec) {
    return std::to_string(usec / usec_per_sec) + " s";
}

void validate_ttl(Usec ttl, const Limits& limits) {
    if (ttl < usec_per_sec)
        throw Error(ErrorCode::InvalidArgument, "ttl must be at least 1 second");
    if (ttl > limits.max_ttl)
        throw Error(ErrorCode::InvalidArgument, "ttl " + seconds_text(ttl) +
                                                    " is longer than the limit of " +
                                                    seconds_text(limits.max_ttl));
}

} // namespace

std::string describe(const Owner& o) {
    std::string s = o.transport + ":" + o.id + " (uid " + std::to_string(o.uid);
    if (o.pid)
        s += ", pid " + std::to_string(o.pid);
    if (!o.command.empty())
        s += ", " + o.command;
    return s + ")";
}

Arbiter::Arbiter(Limits limits) : limits_(limits) {}

// ---------------------------------------------------------------- lookups

Arbiter::LinkRec* Arbiter::rec_by_name(const std::string& name) {
    for (auto& [idx, rec] : links_)
        if (rec.info.name == name)
            return &rec;
    return nullptr;
}

const Arbiter::LinkRec* Arbiter::rec_by_name(const std::string& name) const {
    for (const auto& [idx, rec] : links_)
        if (rec.info.name == name)
            return &rec;
    return nullptr;
}

unsigned Arbiter::count_on(const std::string& name) const {
    return static_cast<unsigned>(std::count_if(leases_.begin(), leases_.end(), [&](const auto& kv) {
        return kv.second.interface == name;
    }));
}

const Lease* Arbiter::find(LeaseId id) const {
    auto it = leases_.find(id);
    return it == leases_.end() ? nullptr : &it->second;
}

const Lease& Arbiter::get(LeaseId id) const {
    if (const Lease* l = find(id))
        return *l;
    // Ids are never reused, so an id below next_id_ belonged to a lease that ended.
    if (id > 0 && id < next_id_)
        throw Error(ErrorCode::NoSuchLease, "lease " + std::to_string(id) + " has already ended");
    throw Error(ErrorCode::NoSuchLease, "there is no lease " + std::to_string(id));
}

std::vector<Lease> Arbiter::leases() const {
    std::vector<Lease> out;
    out.reserve(leases_.size());
    for (const auto& [id, l] : leases_)
        out.push_back(l);
    return out;
}

Policy Arbiter::policy_for(const std::string& name) const {
    if (auto it = policies_.find(name); it != policies_.end())
        return it->second;
    for (const auto& [pattern, policy] : patterns_)
        if (::fnmatch(pattern.c_str(), name.c_str(), 0) == 0)
            return policy;
    return Policy::Enforce;
}

void Arbiter::set_policy_patterns(std::vector<std::pair<std::string, Policy>> patterns) {
    patterns_ = std::move(patterns);
}

LinkView Arbiter::view(const LinkRec& rec) const {
    LinkView v;
    v.info = rec.info;
    v.origin = !rec.info.admin_flag ? Origin::None
               : rec.daemon_set     ? Origin::Daemon
                                    : Origin::Admin;
    v.policy = policy_for(rec.info.name);
    v.leases = count_on(rec.info.name);
    v.overridden = rec.overridden;
    return v;
}

std::vector<LinkView> Arbiter::links() const {
    std::vector<LinkView> out;
    out.reserve(links_.size());
    for (const auto& [idx, rec] : links_)
        out.push_back(view(rec));
    return out;
}

std::optional<LinkView> Arbiter::link(int ifindex) const {
    auto it = links_.find(ifindex);
    if (it == links_.end())
        return std::nullopt;
    return view(it->second);
}

std::optional<LinkView> Arbiter::link_by_name(const std::string& name) const {
    if (const LinkRec* rec = rec_by_name(name))
        return view(*rec);
    return std::nullopt;
}

std::vector<int> Arbiter::daemon_set_links() const {
    std::vector<int> out;
    for (const auto& [idx, rec] : links_)
        if (rec.daemon_set && rec.info.admin_flag)
            out.push_back(idx);
    return out;
}

std::optional<Usec> Arbiter::next_expiry() const {
    std::optional<Usec> next;
    for (const auto& [id, l] : leases_)
        if (l.expires && (!next || *l.expires < *next))
            next = l.expires;
    return next;
}

// ---------------------------------------------------------------- the rule

// Brings one interface name to the state its leases call for. Every event
// ends here, so the rules of DESIGN.md "Lease semantics" are in one place.
void Arbiter::reconcile(const std::string& name, Commands& out) {
    std::vector<Lease*> held;
    for (auto& [id, l] : leases_)
        if (l.interface == name)
            held.push_back(&l);

    LinkRec* rec = rec_by_name(name);
    LeaseState target = LeaseState::Pending;
    if (rec) {
        if (held.empty()) {
            // Clear only what the daemon set; an administrator's flag survives.
            if (rec->daemon_set && rec->info.admin_flag) {
                out.push_back(SetFlag{rec->info.ifindex, name, false});
                rec->info.admin_flag = false;
                rec->expect = false;
            }
            rec->daemon_set = false;
            rec->overridden = false;
            rec->clears.clear();
            return;
        }
        if (rec->overridden) {
            target = LeaseState::Overridden;
        } else {
            // Set the flag only if it is clear: then, and only then, it is ours.
            if (!rec->info.admin_flag) {
                out.push_back(SetFlag{rec->info.ifindex, name, true});
                rec->info.admin_flag = true;
                rec->expect = true;
                rec->daemon_set = true;
            }
            target = LeaseState::Active;
        }
    }
    for (Lease* l : held) {
        if (l->state != target) {
            out.emplace_back(std::in_place_type<LeaseStateChanged>, l->id, l->state, target);
            l->state = target;
        }
    }
}

void Arbiter::end_lease(std::map<LeaseId, Lease>::iterator it, EndReason reason, Commands& out) {
    Lease ended = it->second;
    leases_.erase(it);
    out.push_back(LeaseEnded{std::move(ended), reason});
}

// ---------------------------------------------------------------- requests

AcquireResult Arbiter::acquire(const LeaseRequest& req, Usec now) {
    validate_interface_name(req.interface);
    if (req.ttl)
        validate_ttl(*req.ttl, limits_);
    if (req.reason.size() > limits_.max_reason_length)
        throw Error(ErrorCode::InvalidArgument, "reason is longer than " +
                                                    std::to_string(limits_.max_reason_length) +
                                                    " bytes");
    auto held_by_uid =
        static_cast<unsigned>(std::count_if(leases_.begin(), leases_.end(), [&](const auto& kv) {
            return kv.second.owner.uid == req.owner.uid;
        }));
    if (held_by_uid >= limits_.leases_per_uid)
        throw Error(ErrorCode::QuotaExceeded, "uid " + std::to_string(req.owner.uid) +
                                                  " already holds " + std::to_string(held_by_uid) +
                                                  " leases (limit " +
                                                  std::to_string(limits_.leases_per_uid) + ")");
    if (leases_.size() >= limits_.leases_total)
        throw Error(ErrorCode::QuotaExceeded,
                    "the daemon already holds " + std::to_string(leases_.size()) +
                        " leases (limit " + std::to_string(limits_.leases_total) + ")");
    if (!rec_by_name(req.interface) && !req.wait)
        throw Error(ErrorCode::NoSuchInterface,
                    "interface " + quote(req.interface) + " does not exist");

    Lease lease;
    lease.id = next_id_++;
    lease.interface = req.interface;
    lease.owner = req.owner;
    lease.reason = req.reason;
    lease.acquired = now;
    if (req.ttl)
        lease.expires = now + *req.ttl;
    LeaseId id = lease.id;
    leases_.emplace(id, std::move(lease));

    AcquireResult result;
    result.id = id;
    reconcile(req.interface, result.commands);
    // A new lease's first state is reported with the lease, not as a change.
    std::erase_if(result.commands, [id](const Command& c) {
        const auto* sc = std::get_if<LeaseStateChanged>(&c);
        return sc && sc->id == id;
    });
    return result;
}

Commands Arbiter::release(LeaseId id, EndReason reason) {
    auto it = leases_.find(id);
    if (it == leases_.end())
        get(id); // throws the precise NoSuchLease
    std::string name = it->second.interface;
    Commands out;
    end_lease(it, reason, out);
    reconcile(name, out);
    return out;
}

Commands Arbiter::renew(LeaseId id, Usec ttl, Usec now) {
    auto it = leases_.find(id);
    if (it == leases_.end())
        get(id);
    validate_ttl(ttl, limits_);
    it->second.expires = now + ttl;
    return {};
}

Commands Arbiter::owner_gone(const std::string& transport, const std::string& owner_id) {
    Commands out;
    std::set<std::string> names;
    for (auto it = leases_.begin(); it != leases_.end();) {
        auto next = std::next(it);
        if (it->second.owner.transport == transport && it->second.owner.id == owner_id) {
            names.insert(it->second.interface);
            end_lease(it, EndReason::OwnerGone, out);
        }
        it = next;
    }
    for (const auto& name : names)
        reconcile(name, out);
    return out;
}

Commands Arbiter::expire(Usec now) {
    Commands out;
    std::set<std::string> names;
    for (auto it = leases_.begin(); it != leases_.end();) {
        auto next = std::next(it);
        if (it->second.expires && *it->second.expires <= now) {
            names.insert(it->second.interface);
            end_lease(it, EndReason::Expired, out);
        }
        it = next;
    }
    for (const auto& name : names)
        reconcile(name, out);
    return out;
}

Commands Arbiter::set_policy(const std::string& interface, Policy policy, Usec /*now*/) {
    validate_interface_name(interface);
    LinkRec* rec = rec_by_name(interface);
    if (!rec)
        throw Error(ErrorCode::NoSuchInterface,
                    "interface " + quote(interface) + " does not exist");
    policies_[interface] = policy;
    Commands out;
    // Switching to enforce takes the link back from whoever overrode it.
    if (policy == Policy::Enforce && rec->overridden && !rec->info.admin_flag) {
        rec->overridden = false;
        rec->clears.clear();
        reconcile(interface, out);
    }
    return out;
}

Commands Arbiter::shutdown() {
    Commands out;
    for (auto& [idx, rec] : links_) {
        if (rec.daemon_set && rec.info.admin_flag) {
            out.push_back(SetFlag{idx, rec.info.name, false});
            rec.info.admin_flag = false;
            rec.expect = false;
        }
        rec.daemon_set = false;
        rec.overridden = false;
        rec.clears.clear();
    }
    while (!leases_.empty())
        end_lease(leases_.begin(), EndReason::DaemonShutdown, out);
    return out;
}

// ---------------------------------------------------------------- link events

void Arbiter::apply_info(LinkRec& rec, const LinkInfo& info, Usec now, Commands& out) {
    const bool old_flag = rec.info.admin_flag;
    const std::string old_name = rec.info.name;
    LinkInfo incoming = info;
    if (rec.expect) {
        if (info.admin_flag == *rec.expect)
            rec.expect.reset();
        else
            incoming.admin_flag = old_flag; // queued before our change: stale
    }
    rec.info = incoming;

    if (old_name != incoming.name)
        reconcile(old_name, out); // the leases follow the name, not the link

    if (old_flag != incoming.admin_flag)
        out.push_back(ExternalFlagChange{incoming.ifindex, incoming.name, incoming.admin_flag});
    if (old_flag && !incoming.admin_flag) {
        // Someone else cleared the flag: it is no longer ours to clear.
        rec.daemon_set = false;
        if (count_on(incoming.name) > 0 && !rec.overridden) {
            if (policy_for(incoming.name) == Policy::Yield) {
                rec.overridden = true;
            } else {
                while (!rec.clears.empty() && rec.clears.front() + limits_.conflict_window <= now)
                    rec.clears.pop_front();
                rec.clears.push_back(now);
                if (rec.clears.size() > limits_.conflict_max_clears) {
                    rec.overridden = true;
                    out.push_back(ConflictDetected{incoming.ifindex, incoming.name,
                                                   static_cast<unsigned>(rec.clears.size())});
                }
            }
        }
    } else if (!old_flag && incoming.admin_flag && rec.overridden) {
        // Set again by someone else: the leases are effective again.
        rec.overridden = false;
        rec.clears.clear();
    }
    reconcile(incoming.name, out);
}

Commands Arbiter::link_changed(const LinkInfo& info, Usec now) {
    Commands out;
    // Names are unique at any one time: a record elsewhere with this name is
    // stale (its removal or rename was missed).
    std::vector<int> stale;
    for (const auto& [idx, rec] : links_)
        if (idx != info.ifindex && rec.info.name == info.name)
            stale.push_back(idx);
    for (int idx : stale)
        links_.erase(idx);

    auto it = links_.find(info.ifindex);
    if (it == links_.end()) {
        LinkRec rec;
        rec.info = info;
        links_.emplace(info.ifindex, std::move(rec));
        reconcile(info.name, out);
    } else {
        apply_info(it->second, info, now, out);
    }
    return out;
}

Commands Arbiter::link_removed(int ifindex) {
    Commands out;
    auto it = links_.find(ifindex);
    if (it == links_.end())
        return out;
    std::string name = it->second.info.name;
    links_.erase(it);
    reconcile(name, out);
    return out;
}

Commands Arbiter::links_resynced(const std::vector<LinkInfo>& links, Usec now) {
    Commands out;
    std::set<int> present;
    for (const auto& l : links)
        present.insert(l.ifindex);
    std::vector<int> gone;
    for (const auto& [idx, rec] : links_)
        if (!present.count(idx))
            gone.push_back(idx);
    for (int idx : gone) {
        auto c = link_removed(idx);
        out.insert(out.end(), c.begin(), c.end());
    }
    for (const auto& l : links) {
        auto c = link_changed(l, now);
        out.insert(out.end(), c.begin(), c.end());
    }
    return out;
}

Commands Arbiter::set_flag_failed(int ifindex, bool on) {
    auto it = links_.find(ifindex);
    if (it == links_.end())
        return {};
    LinkRec& rec = it->second;
    rec.expect.reset();
    rec.info.admin_flag = !on;
    if (on)
        rec.daemon_set = false;
    return {};
}

// ---------------------------------------------------------------- recovery

void Arbiter::adopt(const Lease& lease) {
    Lease copy = lease;
    copy.state = LeaseState::Pending;
    leases_[copy.id] = std::move(copy);
    next_id_ = std::max(next_id_, lease.id + 1);
}

void Arbiter::adopt_daemon_flag(int ifindex, const std::string& name) {
    auto it = links_.find(ifindex);
    // Never guess: a link that changed name or lost the flag is not ours.
    if (it != links_.end() && it->second.info.name == name && it->second.info.admin_flag)
        it->second.daemon_set = true;
}

Commands Arbiter::finish_adoption() {
    std::set<std::string> names;
    for (const auto& [id, l] : leases_)
        names.insert(l.interface);
    for (const auto& [idx, rec] : links_)
        names.insert(rec.info.name);
    Commands out;
    for (const auto& name : names)
        reconcile(name, out);
    // Adopted leases report their state with themselves, not as changes.
    std::erase_if(out,
                  [](const Command& c) { return std::holds_alternative<LeaseStateChanged>(c); });
    return out;
}

} // namespace promiscd::core
