#include "service/lease_service.hpp"

#include "log.hpp"

#include <cerrno>
#include <climits>
#include <ctime>
#include <fcntl.h>
#include <sys/epoll.h>
#include <system_error>

namespace promiscd::service {

using namespace core;

namespace {

std::string link_summary(const LinkInfo& l) {
    return "link " + display_name(l.name) + " (index " + std::to_string(l.ifindex) +
           "): admin flag " + (l.admin_flag ? "on" : "off") + ", promiscuity " +
           std::to_string(l.promiscuity);
}

uint64_t clock_usec(clockid_t id) {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * usec_per_sec +
           static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

// How often open namespaces are checked without a sign that one went.
constexpr Usec kNamespaceCheckUsec = 10 * usec_per_sec;
// The most links promiscd follows in another namespace.
constexpr size_t kMaxNamespaceLinks = 4096;
// The least time between two checks set off by mount table changes.
constexpr Usec kNamespaceRecheckUsec = usec_per_sec;

} // namespace

struct LeaseService::Namespace {
    net::Netns netns;
    std::unique_ptr<net::LinkControl> control;
    std::unique_ptr<net::LinkWatcher> watcher;
    std::unordered_map<int, int> index; // kernel index -> promiscd's
    std::set<LeaseId> leases;
    unsigned holds = 0;
    bool gone = false;
    EventSourcePtr pid_source; // the pidfd of a "pid:N" namespace
};

LeaseService::LeaseService(sd_event* event, Options options, ChangeStream& changes,
                           Recorder* recorder)
    : event_(event), changes_(changes), recorder_(recorder), arbiter_(options.limits),
      realtime_offset_(clock_usec(CLOCK_REALTIME) - clock_usec(CLOCK_MONOTONIC)),
      watcher_({[this](const LinkInfo& l, bool superseded) { on_changed(l, superseded); },
                [this](int idx, const std::string& n) { on_removed(idx, n); },
                [this](const std::vector<LinkInfo>& ls) { on_resynced(ls); }},
               options.netlink_rcvbuf),
      netlink_rcvbuf_(options.netlink_rcvbuf) {
    try {
        own_netns_ = net::own_netns_inode();
    } catch (const std::system_error& e) {
        log::warning(std::string(e.what()) + "; other network namespaces cannot be told apart "
                                             "from promiscd's own");
    }
}

LeaseService::~LeaseService() {
    // Watchers go before the loop's sources they would otherwise outlive.
    namespaces_.clear();
}

Usec LeaseService::now() const {
    return loop_now(event_);
}

uint64_t LeaseService::realtime(Usec monotonic) const {
    // One offset for the daemon's life: the same lease shows the same times in
    // every reply, whichever clock moved in between.
    if (monotonic > UINT64_MAX - realtime_offset_)
        return UINT64_MAX;
    return monotonic + realtime_offset_;
}

void LeaseService::set_policy_patterns(std::vector<std::pair<std::string, Policy>> patterns) {
    arbiter_.set_policy_patterns(std::move(patterns));
    // Views of links without an explicit policy may change.
    Outcome out;
    for (const auto& [idx, v] : published_)
        out.touched.insert(idx);
    finish(std::move(out));
}

void LeaseService::start() {
    auto links = watcher_.start();
    const bool debug = log::level() >= log::Level::Debug;
    for (const auto& l : links) {
        if (debug) // 2,000 links: not 2,000 strings built to be dropped
            log::debug(link_summary(l));
        arbiter_.link_changed(l, now()); // no lease yet: no command
    }
    watcher_.attach(event_);
    sd_event_source* s = nullptr;
    int r = sd_event_add_time(event_, &s, CLOCK_MONOTONIC, UINT64_MAX, 0, &LeaseService::on_timer,
                              this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "cannot add the lease timer");
    timer_.reset(s);
    sd_event_source_set_description(s, "lease-ttl");
}

void LeaseService::adopt(const Adoption& a) {
    arbiter_.set_next_id(a.next_id);
    for (const auto& l : a.leases) {
        arbiter_.adopt(l);
        if (const uint64_t inode = split_link(l.interface).netns; inode != 0)
            if (auto it = namespaces_.find(inode); it != namespaces_.end())
                it->second->leases.insert(l.id);
    }
    for (const auto& [idx, name] : a.flags)
        arbiter_.adopt_daemon_flag(idx, name);
    for (int idx : a.unknown)
        arbiter_.adopt_unknown_flag(idx);
    // Clears of flags nobody holds any more: executed, recorded, not yet
    // published (publish() announces the result).
    Outcome out = execute(arbiter_.finish_adoption());
    (void)out;
}

void LeaseService::publish() {
    publishing_ = true;
    for (const auto& v : arbiter_.links()) {
        published_[v.info.ifindex] = v;
        changes_.publish(LinkAdded{v});
    }
    for (const auto& [id, l] : arbiter_.lease_table())
        changes_.publish(LeaseAdded{l});
    arm_timer();
}

Error LeaseService::record_failed(const RecordError& e) const {
    return Error(ErrorCode::Failed, std::string(e.what()) + "; new leases are refused");
}

void LeaseService::touch(Outcome& out, const std::string& name) {
    if (auto v = arbiter_.link_by_name(name))
        out.touched.insert(v->info.ifindex);
}

LeaseService::Outcome LeaseService::execute(const Commands& commands) {
    Outcome out;
    for (const auto& c : commands) {
        if (const auto* s = std::get_if<SetFlag>(&c)) {
            out.touched.insert(s->ifindex);
            // A namespace's link: its own sockets, the kernel's index there
            // (recorded under promiscd's index and its qualified name, which
            // crash recovery maps to the next run's index).
            net::LinkControl* control = &control_;
            net::LinkWatcher* watcher = &watcher_;
            int index = s->ifindex;
            Recorder* recorder = recorder_;
            if (auto it = ns_index_.find(s->ifindex); it != ns_index_.end()) {
                Namespace& ns = *namespaces_.at(it->second.first);
                control = ns.control.get();
                watcher = ns.watcher.get();
                index = it->second.second;
            }
            const std::string name(split_link(s->name).name);
            try {
                if (s->on && recorder)
                    recorder->save_flag(s->ifindex, s->name);
                control->set_promisc(index, name, s->on);
                watcher->settled(index, s->on);
                if (!s->on && recorder)
                    recorder->remove_flag(s->ifindex);
                out.changes.push_back(FlagChanged{s->ifindex, s->name, s->on, true});
            } catch (const RecordError& e) {
                log::error(std::string(e.what()) + "; promiscuous mode not set on " +
                           display_name(s->name));
                arbiter_.set_flag_failed(s->ifindex, s->on);
                out.failed.push_back(s->ifindex);
            } catch (const net::NetlinkError& e) {
                log::error(e.what());
                if (s->on && recorder)
                    recorder->remove_flag(s->ifindex);
                arbiter_.set_flag_failed(s->ifindex, s->on);
                out.failed.push_back(s->ifindex);
            }
        } else if (const auto* e = std::get_if<core::LeaseEnded>(&c)) {
            if (recorder_)
                recorder_->remove_lease(e->lease.id);
            touch(out, e->lease.interface);
            lease_left_namespace(e->lease);
            out.changes.push_back(service::LeaseEnded{e->lease, e->reason, e->revocation});
        } else if (const auto* sc = std::get_if<LeaseStateChanged>(&c)) {
            if (const Lease* l = arbiter_.find(sc->id)) {
                touch(out, l->interface);
                out.changes.push_back(LeaseChanged{*l, sc->from});
            }
        } else if (const auto* x = std::get_if<ExternalFlagChange>(&c)) {
            out.touched.insert(x->ifindex);
            out.changes.push_back(FlagChanged{x->ifindex, x->name, x->on, false});
        } else if (const auto* k = std::get_if<ConflictDetected>(&c)) {
            out.touched.insert(k->ifindex);
            out.changes.push_back(Conflict{k->ifindex, k->name, k->clears});
        }
    }
    return out;
}

void LeaseService::finish(Outcome out) {
    arm_timer();
    if (!publishing_)
        return;
    for (auto& c : out.changes)
        changes_.publish(std::move(c));
    for (int idx : out.touched) {
        auto v = arbiter_.link(idx);
        if (!v)
            continue;
        auto it = published_.find(idx);
        if (it == published_.end()) {
            published_.emplace(idx, *v);
            changes_.publish(LinkAdded{*v});
        } else if (!(it->second == *v)) {
            LinkView before = it->second;
            it->second = *v;
            changes_.publish(LinkChanged{*v, std::move(before)});
        }
    }
}

LeaseId LeaseService::acquire(const LeaseRequest& request) {
    arbiter_.check_acquire(request);
    const Lease preview = arbiter_.preview(request, now());
    if (recorder_) {
        try {
            recorder_->save_lease(preview);
        } catch (const RecordError& e) {
            throw record_failed(e);
        }
    }
    auto result = arbiter_.acquire(request, now());
    Outcome out = execute(result.commands);
    if (auto v = arbiter_.link_by_name(request.interface);
        v && std::find(out.failed.begin(), out.failed.end(), v->info.ifindex) != out.failed.end()) {
        // The kernel (or the record) refused: the lease would promise what it
        // cannot give. It was never announced; take it back quietly.
        arbiter_.release(result.id, EndReason::Released);
        if (recorder_)
            recorder_->remove_lease(result.id);
        throw Error(ErrorCode::Failed, "cannot set promiscuous mode on " +
                                           describe_link(request.interface) +
                                           " (see the daemon's log)");
    }
    if (const uint64_t inode = split_link(request.interface).netns; inode != 0)
        if (auto it = namespaces_.find(inode); it != namespaces_.end())
            it->second->leases.insert(result.id);
    out.changes.insert(out.changes.begin(), LeaseAdded{arbiter_.get(result.id)});
    touch(out, request.interface);
    finish(std::move(out));
    return result.id;
}

void LeaseService::release(LeaseId id, EndReason reason, std::optional<Revocation> revocation) {
    finish(execute(arbiter_.release(id, reason, std::move(revocation))));
}

void LeaseService::renew(LeaseId id, Usec ttl) {
    Lease renewed = arbiter_.preview_renew(id, ttl, now());
    if (recorder_) {
        try {
            recorder_->save_lease(renewed);
        } catch (const RecordError& e) {
            throw Error(ErrorCode::Failed, std::string(e.what()) + "; the lease was not renewed");
        }
    }
    arbiter_.renew(id, ttl, now());
    Outcome out;
    out.changes.push_back(LeaseChanged{arbiter_.get(id), std::nullopt});
    finish(std::move(out));
}

void LeaseService::owner_gone(const std::string& transport, const std::string& owner_id) {
    finish(execute(arbiter_.owner_gone(transport, owner_id)));
}

void LeaseService::set_policy(const std::string& interface, Policy policy) {
    Outcome out = execute(arbiter_.set_policy(interface, policy, now()));
    touch(out, interface);
    finish(std::move(out));
}

void LeaseService::shutdown() {
    finish(execute(arbiter_.shutdown()));
}

void LeaseService::on_changed(const LinkInfo& info, bool superseded) {
    auto before = arbiter_.link(info.ifindex);
    if (log::level() >= log::Level::Debug &&
        (!before || before->info.admin_flag != info.admin_flag ||
         before->info.promiscuity != info.promiscuity || before->info.name != info.name))
        log::debug(link_summary(info));
    Outcome out = execute(arbiter_.link_changed(info, now(),
                                                superseded ? core::Arbiter::FlagNews::Superseded
                                                           : core::Arbiter::FlagNews::Current));
    out.touched.insert(info.ifindex);
    finish(std::move(out));
}

void LeaseService::on_removed(int ifindex, const std::string& name) {
    log::info("link " + display_name(name) + " (index " + std::to_string(ifindex) + ") removed");
    Outcome out = execute(arbiter_.link_removed(ifindex));
    if (publishing_ && published_.erase(ifindex))
        out.changes.push_back(LinkRemoved{ifindex, name});
    finish(std::move(out));
}

void LeaseService::on_resynced(const std::vector<LinkInfo>& links) {
    log::warning("missed link notifications (receive buffer overrun); re-read all " +
                 std::to_string(links.size()) + " links");
    // The other namespaces' links are as they were: the dump is the host's.
    std::vector<LinkInfo> all = links;
    for (const auto& [idx, where] : ns_index_)
        if (auto v = arbiter_.link(idx))
            all.push_back(v->info);
    Outcome out = execute(arbiter_.links_resynced(all, now()));
    if (publishing_) {
        for (auto it = published_.begin(); it != published_.end();) {
            if (!arbiter_.link(it->first)) {
                out.changes.push_back(LinkRemoved{it->first, it->second.info.name});
                it = published_.erase(it);
            } else {
                ++it;
            }
        }
    }
    for (const auto& l : links)
        out.touched.insert(l.ifindex);
    finish(std::move(out));
}

void LeaseService::arm_timer() {
    if (!timer_)
        return;
    auto next = arbiter_.next_expiry();
    if (!next) {
        sd_event_source_set_enabled(timer_.get(), SD_EVENT_OFF);
        return;
    }
    sd_event_source_set_time(timer_.get(), *next);
    sd_event_source_set_enabled(timer_.get(), SD_EVENT_ONESHOT);
}

int LeaseService::on_timer(sd_event_source*, uint64_t, void* userdata) {
    auto* self = static_cast<LeaseService*>(userdata);
    self->finish(self->execute(self->arbiter_.expire(self->now())));
    self->arm_timer();
    return 0;
}

// ---------------------------------------------------------------- namespaces

uint64_t LeaseService::open_namespace(net::Netns netns) {
    const uint64_t inode = netns.inode;
    if (inode == own_netns_)
        return 0;
    if (auto it = namespaces_.find(inode); it != namespaces_.end()) {
        if (it->second->gone)
            throw Error(ErrorCode::Failed,
                        "network namespace " + quote(netns.spec) + " is going away");
        schedule_namespace_reap();
        return inode;
    }
    if (namespaces_.size() >= arbiter_.limits().namespaces_total)
        throw Error(ErrorCode::QuotaExceeded,
                    "promiscd already watches " + std::to_string(namespaces_.size()) +
                        " network namespaces (limit " +
                        std::to_string(arbiter_.limits().namespaces_total) +
                        ", quotas.namespaces_total)");
    auto ns = std::make_unique<Namespace>();
    Namespace& n = *ns;
    n.netns = std::move(netns);
    try {
        net::LinkWatcher::Callbacks cb{
            [this, inode](const LinkInfo& l, bool superseded) {
                auto it = namespaces_.find(inode);
                if (it != namespaces_.end())
                    on_changed(from_namespace(inode, *it->second, l), superseded);
            },
            [this, inode](int idx, const std::string&) { on_ns_removed(inode, idx); },
            [this, inode](const std::vector<LinkInfo>& ls) { on_ns_resynced(inode, ls); },
            [this, inode](const std::string& why) {
                // Its links changed faster than promiscd could read them
                // back (or its sockets failed): what promiscd would enforce
                // there is no longer known. Its leases end; the host and
                // every other namespace go on.
                log::error("cannot follow network namespace " + std::to_string(inode) +
                           " any more: " + why);
                namespace_gone(inode);
            }};
        net::run_in_netns(n.netns.fd.get(), [&] {
            n.control = std::make_unique<net::LinkControl>();
            n.watcher = std::make_unique<net::LinkWatcher>(std::move(cb), netlink_rcvbuf_);
        });
    } catch (const std::system_error& e) {
        throw Error(
            ErrorCode::Failed,
            "cannot watch network namespace " + quote(n.netns.spec) + ": " + e.what() +
                (e.code().value() == EPERM ? " (promiscd needs CAP_SYS_ADMIN for this)" : ""));
    } catch (const net::NetlinkError& e) {
        throw Error(ErrorCode::Failed,
                    "cannot watch network namespace " + quote(n.netns.spec) + ": " + e.what());
    }
    std::vector<LinkInfo> links;
    try {
        links = n.watcher->start();
    } catch (const net::NetlinkError& e) {
        throw Error(ErrorCode::Failed, "cannot list the links of network namespace " +
                                           quote(n.netns.spec) + ": " + e.what());
    }
    // Whoever is root in it makes its links: what one namespace costs the
    // loop (a dump, the arbiter, D-Bus objects) is bounded before any of it.
    if (links.size() > kMaxNamespaceLinks)
        throw Error(ErrorCode::QuotaExceeded,
                    "network namespace " + quote(n.netns.spec) + " has " +
                        std::to_string(links.size()) + " links; promiscd follows namespaces of " +
                        std::to_string(kMaxNamespaceLinks) + " links at most");
    n.watcher->attach(event_);
    if (n.netns.pidfd) {
        sd_event_source* src = nullptr;
        if (sd_event_add_io(event_, &src, n.netns.pidfd.get(), EPOLLIN, &LeaseService::on_ns_event,
                            this) >= 0) {
            n.pid_source.reset(src);
            sd_event_source_set_description(src, "netns-pidfd");
        }
    }
    namespaces_.emplace(inode, std::move(ns));
    log::info("watching network namespace " + quote(n.netns.spec) + " (inode " +
              std::to_string(inode) + ", " + std::to_string(links.size()) + " links)");
    watch_namespace_life();
    Outcome out;
    for (const auto& l : links) {
        LinkInfo info = from_namespace(inode, n, l);
        auto c = arbiter_.link_changed(info, now());
        Outcome o = execute(c);
        out.changes.insert(out.changes.end(), o.changes.begin(), o.changes.end());
        out.touched.insert(info.ifindex);
    }
    finish(std::move(out));
    schedule_namespace_reap(); // closed again if the request that opened it fails
    return inode;
}

void LeaseService::hold_namespace(uint64_t inode) {
    if (auto it = namespaces_.find(inode); it != namespaces_.end())
        ++it->second->holds;
}

void LeaseService::drop_namespace(uint64_t inode) {
    if (auto it = namespaces_.find(inode); it != namespaces_.end() && it->second->holds > 0) {
        --it->second->holds;
        schedule_namespace_reap();
    }
}

void LeaseService::run_in_namespace(uint64_t inode, const std::function<void()>& fn) {
    if (inode == 0)
        return fn();
    auto it = namespaces_.find(inode);
    if (it == namespaces_.end() || it->second->gone)
        throw Error(ErrorCode::Failed,
                    "network namespace " + std::to_string(inode) + " is no longer there");
    net::run_in_netns(it->second->netns.fd.get(), fn);
}

const net::Netns* LeaseService::namespace_of(uint64_t inode) const {
    auto it = namespaces_.find(inode);
    return it == namespaces_.end() ? nullptr : &it->second->netns;
}

LinkInfo LeaseService::from_namespace(uint64_t inode, Namespace& ns, LinkInfo info) {
    auto [it, fresh] = ns.index.try_emplace(info.ifindex, 0);
    if (fresh) {
        // Counted up to INT_MAX, then the oldest freed ones again (links
        // come and go in a namespace as its owner likes).
        if (next_ns_index_ < INT_MAX) {
            it->second = next_ns_index_++;
        } else if (!free_ns_indexes_.empty()) {
            it->second = free_ns_indexes_.front();
            free_ns_indexes_.pop_front();
        } else {
            ns.index.erase(it); // cannot happen: fewer links than indexes
            throw Error(ErrorCode::Failed, "no index left for a namespace's link");
        }
        ns_index_[it->second] = {inode, info.ifindex};
    }
    info.netns = inode;
    info.netns_ifindex = info.ifindex;
    info.ifindex = it->second;
    info.name = qualify(inode, info.name);
    return info;
}

void LeaseService::on_ns_removed(uint64_t inode, int kernel_index) {
    auto it = namespaces_.find(inode);
    if (it == namespaces_.end())
        return;
    auto idx = it->second->index.find(kernel_index);
    if (idx == it->second->index.end())
        return;
    const int ours = idx->second;
    std::string name;
    if (auto v = arbiter_.link(ours))
        name = v->info.name;
    on_removed(ours, name);
    it->second->index.erase(idx);
    ns_index_.erase(ours);
    if (next_ns_index_ == INT_MAX)
        free_ns_indexes_.push_back(ours);
}

void LeaseService::on_ns_resynced(uint64_t inode, const std::vector<LinkInfo>& links) {
    auto it = namespaces_.find(inode);
    if (it == namespaces_.end())
        return;
    log::warning("missed link notifications of network namespace " + std::to_string(inode) +
                 "; re-read its " + std::to_string(links.size()) + " links");
    std::set<int> present;
    for (const auto& l : links)
        present.insert(l.ifindex);
    std::vector<int> gone;
    for (const auto& [kernel, ours] : it->second->index)
        if (!present.count(kernel))
            gone.push_back(kernel);
    for (int kernel : gone)
        on_ns_removed(inode, kernel);
    for (const auto& l : links)
        on_changed(from_namespace(inode, *it->second, l), false);
}

void LeaseService::lease_left_namespace(const Lease& lease) {
    const uint64_t inode = split_link(lease.interface).netns;
    if (inode == 0)
        return;
    if (auto it = namespaces_.find(inode); it != namespaces_.end()) {
        it->second->leases.erase(lease.id);
        schedule_namespace_reap();
    }
}

void LeaseService::schedule_namespace_reap() {
    if (!ns_reaper_) {
        sd_event_source* src = nullptr;
        if (sd_event_add_defer(event_, &src, &LeaseService::on_ns_reap, this) < 0)
            return; // the slow timer reaps instead
        ns_reaper_.reset(src);
        sd_event_source_set_description(src, "netns-reap");
    }
    sd_event_source_set_enabled(ns_reaper_.get(), SD_EVENT_ONESHOT);
}

int LeaseService::on_ns_reap(sd_event_source*, void* userdata) {
    static_cast<LeaseService*>(userdata)->reap_namespaces();
    return 0;
}

void LeaseService::reap_namespaces() {
    std::vector<uint64_t> unused;
    for (const auto& [inode, ns] : namespaces_)
        if (ns->leases.empty() && ns->holds == 0)
            unused.push_back(inode);
    for (uint64_t inode : unused)
        close_namespace(inode);
}

void LeaseService::close_namespace(uint64_t inode) {
    auto it = namespaces_.find(inode);
    if (it == namespaces_.end())
        return;
    Namespace& ns = *it->second;
    // Its links leave the arbiter (and the projections) with it.
    std::vector<int> kernel;
    for (const auto& [k, ours] : ns.index)
        kernel.push_back(k);
    for (int k : kernel)
        on_ns_removed(inode, k);
    log::info("stopped watching network namespace " + quote(ns.netns.spec) + " (inode " +
              std::to_string(inode) + ")");
    namespaces_.erase(it);
    if (namespaces_.empty()) {
        ns_timer_.reset();
        mountinfo_.reset();
        mountinfo_fd_.reset();
    }
}

void LeaseService::namespace_gone(uint64_t inode) {
    auto it = namespaces_.find(inode);
    if (it == namespaces_.end() || it->second->gone)
        return;
    it->second->gone = true;
    log::notice("network namespace " + quote(it->second->netns.spec) + " (inode " +
                std::to_string(inode) + ") is gone; its leases end (netns-gone)");
    if (on_namespace_gone)
        on_namespace_gone(inode);
    it = namespaces_.find(inode);
    if (it == namespaces_.end())
        return;
    const std::set<LeaseId> ids = it->second->leases;
    for (LeaseId id : ids)
        if (arbiter_.find(id))
            finish(execute(arbiter_.release(id, EndReason::NetnsGone)));
    schedule_namespace_reap();
}

void LeaseService::check_namespaces() {
    last_ns_check_ = now();
    std::set<uint64_t> open;
    for (const auto& [inode, ns] : namespaces_)
        if (!ns->gone)
            open.insert(inode);
    if (open.empty())
        return;
    const auto used = net::netns_in_use(open);
    std::vector<uint64_t> gone;
    for (uint64_t inode : open)
        if (!used.count(inode))
            gone.push_back(inode);
    for (uint64_t inode : gone)
        namespace_gone(inode);
}

void LeaseService::watch_namespace_life() {
    if (!ns_timer_) {
        sd_event_source* src = nullptr;
        if (sd_event_add_time_relative(event_, &src, CLOCK_MONOTONIC, kNamespaceCheckUsec, 0,
                                       &LeaseService::on_ns_check, this) >= 0) {
            ns_timer_.reset(src);
            sd_event_source_set_enabled(src, SD_EVENT_ON);
            sd_event_source_set_description(src, "netns-check");
        }
    }
    if (!mountinfo_) {
        // A bind mount (ip netns add) going away wakes this up at once.
        mountinfo_fd_.reset(::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC));
        sd_event_source* src = nullptr;
        if (mountinfo_fd_ && sd_event_add_io(event_, &src, mountinfo_fd_.get(), EPOLLPRI,
                                             &LeaseService::on_ns_event, this) >= 0) {
            mountinfo_.reset(src);
            sd_event_source_set_description(src, "netns-mounts");
        }
    }
}

int LeaseService::on_ns_check(sd_event_source* s, uint64_t usec, void* userdata) {
    sd_event_source_set_time(s, std::max(usec, loop_now(sd_event_source_get_event(s))) +
                                    kNamespaceCheckUsec);
    static_cast<LeaseService*>(userdata)->check_namespaces();
    return 0;
}

int LeaseService::on_ns_event(sd_event_source* s, int fd, uint32_t, void* userdata) {
    auto* self = static_cast<LeaseService*>(userdata);
    // A pidfd stays readable once its process exited: once is enough.
    // (mountinfo reports each change of the mount table once by itself.)
    if (fd != self->mountinfo_fd_.get()) {
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
    } else if (self->ns_timer_ && self->now() < self->last_ns_check_ + kNamespaceRecheckUsec) {
        // Anyone may churn the mount table (FUSE): a /proc scan at most
        // once a second for it; the timer does the next one.
        uint64_t next = 0;
        sd_event_source_get_time(self->ns_timer_.get(), &next);
        const uint64_t soon = self->last_ns_check_ + kNamespaceRecheckUsec;
        if (soon < next)
            sd_event_source_set_time(self->ns_timer_.get(), soon);
        return 0;
    }
    self->check_namespaces();
    return 0;
}

} // namespace promiscd::service
