#include "service/lease_service.hpp"

#include "log.hpp"

#include <cerrno>
#include <ctime>
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

} // namespace

LeaseService::LeaseService(sd_event* event, Options options, ChangeStream& changes,
                           Recorder* recorder)
    : event_(event), changes_(changes), recorder_(recorder), arbiter_(options.limits),
      realtime_offset_(clock_usec(CLOCK_REALTIME) - clock_usec(CLOCK_MONOTONIC)),
      watcher_({[this](const LinkInfo& l, bool superseded) { on_changed(l, superseded); },
                [this](int idx, const std::string& n) { on_removed(idx, n); },
                [this](const std::vector<LinkInfo>& ls) { on_resynced(ls); }},
               options.netlink_rcvbuf) {}

LeaseService::~LeaseService() = default;

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
    for (const auto& l : a.leases)
        arbiter_.adopt(l);
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
            try {
                if (s->on && recorder_)
                    recorder_->save_flag(s->ifindex, s->name);
                control_.set_promisc(s->ifindex, s->name, s->on);
                watcher_.settled(s->ifindex, s->on);
                if (!s->on && recorder_)
                    recorder_->remove_flag(s->ifindex);
                out.changes.push_back(FlagChanged{s->ifindex, s->name, s->on, true});
            } catch (const RecordError& e) {
                log::error(std::string(e.what()) + "; promiscuous mode not set on " +
                           display_name(s->name));
                arbiter_.set_flag_failed(s->ifindex, s->on);
                out.failed.push_back(s->ifindex);
            } catch (const net::NetlinkError& e) {
                log::error(e.what());
                if (s->on && recorder_)
                    recorder_->remove_flag(s->ifindex);
                arbiter_.set_flag_failed(s->ifindex, s->on);
                out.failed.push_back(s->ifindex);
            }
        } else if (const auto* e = std::get_if<core::LeaseEnded>(&c)) {
            if (recorder_)
                recorder_->remove_lease(e->lease.id);
            touch(out, e->lease.interface);
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
                                           quote(request.interface) + " (see the daemon's log)");
    }
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
    Outcome out = execute(arbiter_.links_resynced(links, now()));
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

} // namespace promiscd::service
