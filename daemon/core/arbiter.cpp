#include "arbiter.hpp"

#include <algorithm>
#include <fnmatch.h>

namespace promiscd::core {

namespace {

std::string seconds_text(Usec usec) {
    return std::to_string(usec / usec_per_sec) + " s";
}

// 0: no expiry. Otherwise at least a second and at most the limit.
void validate_ttl(Usec ttl, const Limits& limits) {
    if (ttl == 0)
        return;
    if (ttl < usec_per_sec)
        throw Error(ErrorCode::InvalidArgument, "ttl must be at least 1 second (or 0: no expiry)");
    if (ttl > limits.max_ttl)
        throw Error(ErrorCode::InvalidArgument, "ttl " + seconds_text(ttl) +
                                                    " is longer than the limit of " +
                                                    seconds_text(limits.max_ttl));
}

std::optional<Usec> expiry(std::optional<Usec> ttl, Usec now) {
    if (!ttl || *ttl == 0)
        return std::nullopt;
    return now + *ttl;
}

} // namespace

std::string label(const Owner& o) {
    if (o.transport == "dbus")
        return o.id;
    return o.transport + ":" + o.id;
}

std::string describe(const Owner& o) {
    std::string s = label(o) + " (uid " + std::to_string(o.uid);
    if (o.pid)
        s += ", pid " + std::to_string(o.pid);
    if (!o.command.empty())
        s += ", " + o.command;
    return s + ")";
}

Arbiter::Arbiter(Limits limits) : limits_(limits) {}

// ---------------------------------------------------------------- indexes

Arbiter::LeaseIt Arbiter::insert_lease(Lease lease) {
    const LeaseId id = lease.id;
    by_name_[lease.interface].insert(id);
    by_owner_[{lease.owner.transport, lease.owner.id}].insert(id);
    ++per_uid_[lease.owner.uid];
    if (lease.expires)
        expiries_.emplace(*lease.expires, id);
    if (lease.state == LeaseState::Active)
        ++active_;
    return leases_.insert_or_assign(id, std::move(lease)).first;
}

void Arbiter::erase_lease(LeaseIt it) {
    const Lease& l = it->second;
    if (auto n = by_name_.find(l.interface); n != by_name_.end()) {
        n->second.erase(l.id);
        if (n->second.empty())
            by_name_.erase(n);
    }
    if (auto o = by_owner_.find({l.owner.transport, l.owner.id}); o != by_owner_.end()) {
        o->second.erase(l.id);
        if (o->second.empty())
            by_owner_.erase(o);
    }
    if (auto u = per_uid_.find(l.owner.uid); u != per_uid_.end() && --u->second == 0)
        per_uid_.erase(u);
    if (l.expires)
        expiries_.erase({*l.expires, l.id});
    if (l.state == LeaseState::Active)
        --active_;
    leases_.erase(it);
}

void Arbiter::set_expiry(Lease& lease, std::optional<Usec> expires) {
    if (lease.expires)
        expiries_.erase({*lease.expires, lease.id});
    lease.expires = expires;
    if (expires)
        expiries_.emplace(*expires, lease.id);
}

void Arbiter::set_state(Lease& lease, LeaseState state) {
    if (lease.state == LeaseState::Active)
        --active_;
    lease.state = state;
    if (state == LeaseState::Active)
        ++active_;
}

void Arbiter::set_daemon(LinkRec& rec, bool daemon_set) {
    rec.daemon_set = daemon_set;
    if (daemon_set)
        daemon_set_.insert(rec.info.ifindex);
    else
        daemon_set_.erase(rec.info.ifindex);
}

Arbiter::LinkRec& Arbiter::insert_link(const LinkInfo& info) {
    LinkRec rec;
    rec.info = info;
    link_by_name_[info.name] = info.ifindex;
    return links_.insert_or_assign(info.ifindex, std::move(rec)).first->second;
}

void Arbiter::erase_link(std::map<int, LinkRec>::iterator it) {
    if (auto n = link_by_name_.find(it->second.info.name);
        n != link_by_name_.end() && n->second == it->first)
        link_by_name_.erase(n);
    daemon_set_.erase(it->first);
    links_.erase(it);
}

void Arbiter::rename_link(LinkRec& rec, const std::string& name) {
    if (auto n = link_by_name_.find(rec.info.name);
        n != link_by_name_.end() && n->second == rec.info.ifindex)
        link_by_name_.erase(n);
    rec.info.name = name;
    link_by_name_[name] = rec.info.ifindex;
}

// ---------------------------------------------------------------- lookups

Arbiter::LinkRec* Arbiter::rec_by_name(const std::string& name) {
    auto n = link_by_name_.find(name);
    if (n == link_by_name_.end())
        return nullptr;
    auto it = links_.find(n->second);
    return it == links_.end() ? nullptr : &it->second;
}

const Arbiter::LinkRec* Arbiter::rec_by_name(const std::string& name) const {
    return const_cast<Arbiter*>(this)->rec_by_name(name);
}

unsigned Arbiter::count_on(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? 0 : static_cast<unsigned>(it->second.size());
}

unsigned Arbiter::leases_of_uid(uint32_t uid) const {
    auto it = per_uid_.find(uid);
    return it == per_uid_.end() ? 0 : it->second;
}

size_t Arbiter::leases_of_owner(const std::string& transport, const std::string& id) const {
    auto it = by_owner_.find({transport, id});
    return it == by_owner_.end() ? 0 : it->second.size();
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
    // A namespace's links match by their own name.
    const std::string bare(split_link(name).name);
    for (const auto& [pattern, policy] : patterns_)
        if (::fnmatch(pattern.c_str(), bare.c_str(), 0) == 0)
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
               : rec.unknown        ? Origin::Unknown
                                    : Origin::Admin;
    v.policy = policy_for(rec.info.name);
    v.leases = count_on(rec.info.name);
    v.overridden = rec.overridden;
    v.external_changes = rec.external_changes;
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

std::optional<Usec> Arbiter::next_expiry() const {
    if (expiries_.empty())
        return std::nullopt;
    return expiries_.begin()->first;
}

// ---------------------------------------------------------------- the rule

// Brings one interface name to the state its leases call for. Every event
// ends here, so the rules of "Lease semantics" are in one place.
void Arbiter::reconcile(const std::string& name, Commands& out) {
    LinkRec* rec = rec_by_name(name);
    const bool held = count_on(name) > 0;
    LeaseState target = LeaseState::Pending;
    if (rec) {
        if (!held) {
            // Clear only what the daemon set; an administrator's flag survives.
            if (rec->daemon_set && rec->info.admin_flag) {
                out.push_back(SetFlag{rec->info.ifindex, name, false});
                rec->info.admin_flag = false;
            }
            set_daemon(*rec, false);
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
                set_daemon(*rec, true);
                rec->unknown = false;
            }
            target = LeaseState::Active;
        }
    }
    if (!held)
        return;
    for (LeaseId id : by_name_.at(name)) {
        Lease& l = leases_.at(id);
        if (l.state != target) {
            out.emplace_back(LeaseStateChanged{l.id, l.state, target});
            set_state(l, target);
        }
    }
}

void Arbiter::end_lease(LeaseIt it, EndReason reason, Commands& out,
                        std::optional<Revocation> revocation) {
    Lease ended = it->second;
    erase_lease(it);
    out.push_back(LeaseEnded{std::move(ended), reason, std::move(revocation)});
}

// ---------------------------------------------------------------- requests

void Arbiter::check_acquire(const LeaseRequest& req) const {
    validate_interface_name(split_link(req.interface).name);
    if (req.ttl)
        validate_ttl(*req.ttl, limits_);
    if (req.reason.size() > limits_.max_reason_length)
        throw Error(ErrorCode::InvalidArgument, "reason is longer than " +
                                                    std::to_string(limits_.max_reason_length) +
                                                    " bytes");
    const unsigned held_by_uid = leases_of_uid(req.owner.uid);
    if (req.owner.uid != 0 && held_by_uid >= limits_.leases_per_uid)
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
                    "interface " + describe_link(req.interface) + " does not exist");
}

Lease Arbiter::preview(const LeaseRequest& req, Usec now) const {
    Lease lease;
    lease.id = next_id_;
    lease.interface = req.interface;
    lease.owner = req.owner;
    lease.reason = req.reason;
    lease.acquired = now;
    lease.expires = expiry(req.ttl, now);
    lease.capture = req.capture;
    lease.netns = req.netns;
    return lease;
}

AcquireResult Arbiter::acquire(const LeaseRequest& req, Usec now) {
    check_acquire(req);
    Lease lease = preview(req, now);
    ++next_id_;
    const LeaseId id = lease.id;
    insert_lease(std::move(lease));

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

Commands Arbiter::release(LeaseId id, EndReason reason, std::optional<Revocation> revocation) {
    auto it = leases_.find(id);
    if (it == leases_.end())
        get(id); // throws the precise NoSuchLease
    std::string name = it->second.interface;
    Commands out;
    end_lease(it, reason, out, std::move(revocation));
    reconcile(name, out);
    return out;
}

Lease Arbiter::preview_renew(LeaseId id, Usec ttl, Usec now) const {
    Lease l = get(id);
    validate_ttl(ttl, limits_);
    l.expires = expiry(ttl, now);
    return l;
}

Commands Arbiter::renew(LeaseId id, Usec ttl, Usec now) {
    auto it = leases_.find(id);
    if (it == leases_.end())
        get(id);
    validate_ttl(ttl, limits_);
    set_expiry(it->second, expiry(ttl, now));
    return {};
}

Commands Arbiter::owner_gone(const std::string& transport, const std::string& owner_id) {
    Commands out;
    auto o = by_owner_.find({transport, owner_id});
    if (o == by_owner_.end())
        return out;
    const std::set<LeaseId> ids = o->second;
    std::set<std::string> names;
    for (LeaseId id : ids) {
        auto it = leases_.find(id);
        names.insert(it->second.interface);
        end_lease(it, EndReason::OwnerGone, out);
    }
    for (const auto& name : names)
        reconcile(name, out);
    return out;
}

Commands Arbiter::expire(Usec now) {
    Commands out;
    std::set<std::string> names;
    while (!expiries_.empty() && expiries_.begin()->first <= now) {
        auto it = leases_.find(expiries_.begin()->second);
        names.insert(it->second.interface);
        end_lease(it, EndReason::Expired, out);
    }
    for (const auto& name : names)
        reconcile(name, out);
    return out;
}

Commands Arbiter::set_policy(const std::string& interface, Policy policy, Usec /*now*/) {
    validate_interface_name(split_link(interface).name);
    LinkRec* rec = rec_by_name(interface);
    if (!rec)
        throw Error(ErrorCode::NoSuchInterface,
                    "interface " + describe_link(interface) + " does not exist");
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
    for (int idx : std::set<int>(daemon_set_)) {
        LinkRec& rec = links_.at(idx);
        if (rec.info.admin_flag) {
            out.push_back(SetFlag{idx, rec.info.name, false});
            rec.info.admin_flag = false;
        }
        set_daemon(rec, false);
    }
    for (auto& [idx, rec] : links_) {
        rec.overridden = false;
        rec.clears.clear();
    }
    while (!leases_.empty())
        end_lease(leases_.begin(), EndReason::DaemonShutdown, out);
    return out;
}

// ---------------------------------------------------------------- link events

void Arbiter::apply_info(LinkRec& rec, const LinkInfo& info, FlagNews news, Usec now,
                         Commands& out) {
    const bool old_flag = rec.info.admin_flag;
    const std::string old_name = rec.info.name;
    LinkInfo incoming = info;
    // Queued before a change of ours was acknowledged, or its echo: the table
    // already holds what the kernel did since.
    if (news == FlagNews::Superseded)
        incoming.admin_flag = old_flag;
    if (old_name != incoming.name)
        rename_link(rec, incoming.name);
    rec.info = incoming;

    if (old_name != incoming.name)
        reconcile(old_name, out); // the leases follow the name, not the link

    if (old_flag != incoming.admin_flag) {
        ++rec.external_changes;
        out.push_back(ExternalFlagChange{incoming.ifindex, incoming.name, incoming.admin_flag});
    }
    if (old_flag && !incoming.admin_flag) {
        // Someone else cleared the flag: it is no longer ours to clear.
        set_daemon(rec, false);
        rec.unknown = false;
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

Commands Arbiter::link_changed(const LinkInfo& info, Usec now, FlagNews news) {
    Commands out;
    // Names are unique at any one time: a record elsewhere with this name is
    // stale (its removal or rename was missed).
    if (auto n = link_by_name_.find(info.name);
        n != link_by_name_.end() && n->second != info.ifindex)
        if (auto stale = links_.find(n->second); stale != links_.end())
            erase_link(stale);

    auto it = links_.find(info.ifindex);
    if (it == links_.end()) {
        insert_link(info);
        reconcile(info.name, out);
    } else {
        apply_info(it->second, info, news, now, out);
    }
    return out;
}

Commands Arbiter::link_removed(int ifindex) {
    Commands out;
    auto it = links_.find(ifindex);
    if (it == links_.end())
        return out;
    std::string name = it->second.info.name;
    erase_link(it);
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
    rec.info.admin_flag = !on;
    if (on)
        set_daemon(rec, false);
    return {};
}

// ---------------------------------------------------------------- recovery

void Arbiter::adopt(const Lease& lease) {
    Lease copy = lease;
    copy.state = LeaseState::Pending;
    if (auto it = leases_.find(copy.id); it != leases_.end())
        erase_lease(it);
    insert_lease(std::move(copy));
    next_id_ = std::max(next_id_, lease.id + 1);
}

void Arbiter::adopt_daemon_flag(int ifindex, const std::string& name) {
    auto it = links_.find(ifindex);
    // Never guess: a link that changed name or lost the flag is not ours.
    if (it != links_.end() && it->second.info.name == name && it->second.info.admin_flag)
        set_daemon(it->second, true);
}

void Arbiter::adopt_unknown_flag(int ifindex) {
    auto it = links_.find(ifindex);
    if (it != links_.end() && it->second.info.admin_flag && !it->second.daemon_set)
        it->second.unknown = true;
}

Commands Arbiter::finish_adoption() {
    std::set<std::string> names;
    for (const auto& [name, ids] : by_name_)
        names.insert(name);
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
