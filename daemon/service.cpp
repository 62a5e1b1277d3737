#include "service.hpp"

#include "log.hpp"

#include <cerrno>
#include <ctime>
#include <system_error>

namespace promiscd {

using namespace core;

namespace {

std::string link_summary(const LinkInfo& l) {
    return "link " + l.name + " (index " + std::to_string(l.ifindex) + "): admin flag " +
           (l.admin_flag ? "on" : "off") + ", promiscuity " + std::to_string(l.promiscuity);
}

void audit_ended(const LeaseEnded& e) {
    const Lease& l = e.lease;
    log::audit(log::Level::Info, log::id::lease_ended,
               "lease " + std::to_string(l.id) + " on " + l.interface + " held by " +
                   describe(l.owner) + " ended: " + std::string(to_string(e.reason)),
               {{"PROMISCD_LINK", l.interface},
                {"PROMISCD_LEASE", std::to_string(l.id)},
                {"PROMISCD_OWNER", l.owner.id},
                {"PROMISCD_OWNER_UID", std::to_string(l.owner.uid)},
                {"PROMISCD_OWNER_PID", std::to_string(l.owner.pid)},
                {"PROMISCD_OWNER_COMM", l.owner.command},
                {"PROMISCD_REASON", std::string(to_string(e.reason))}});
}

} // namespace

namespace {

uint64_t clock_usec(clockid_t id) {
    timespec ts{};
    ::clock_gettime(id, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * usec_per_sec +
           static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

} // namespace

Service::Service(sd_event* event, Options options)
    : event_(event), arbiter_(options.limits),
      realtime_offset_(clock_usec(CLOCK_REALTIME) - clock_usec(CLOCK_MONOTONIC)),
      watcher_({[this](const LinkInfo& l) { on_changed(l); },
                [this](int idx, const std::string& n) { on_removed(idx, n); },
                [this](const std::vector<LinkInfo>& ls) { on_resynced(ls); }},
               options.netlink_rcvbuf) {}

Service::~Service() = default;

Usec Service::now() const {
    uint64_t t = 0;
    if (sd_event_now(event_, CLOCK_MONOTONIC, &t) < 0) {
        timespec ts{};
        ::clock_gettime(CLOCK_MONOTONIC, &ts);
        t = static_cast<uint64_t>(ts.tv_sec) * usec_per_sec +
            static_cast<uint64_t>(ts.tv_nsec) / 1000;
    }
    return t;
}

uint64_t Service::realtime(Usec monotonic) const {
    // One offset for the daemon's life: the same lease shows the same times in
    // every reply, whichever clock moved in between.
    if (monotonic > UINT64_MAX - realtime_offset_)
        return UINT64_MAX;
    return monotonic + realtime_offset_;
}

void Service::start() {
    auto links = watcher_.start();
    for (const auto& l : links) {
        log::info(link_summary(l));
        execute(arbiter_.link_changed(l, now()));
    }
    watcher_.attach(event_);
    sd_event_source* s = nullptr;
    int r = sd_event_add_time(event_, &s, CLOCK_MONOTONIC, UINT64_MAX, 0, &Service::on_timer, this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "cannot add the lease timer");
    timer_.reset(s);
    sd_event_source_set_description(s, "lease-ttl");
    arm_timer();
}

std::vector<int> Service::execute(const Commands& commands) {
    std::vector<int> failed;
    for (const auto& c : commands) {
        if (const auto* s = std::get_if<SetFlag>(&c)) {
            try {
                control_.set_promisc(s->ifindex, s->name, s->on);
                log::audit(log::Level::Notice, s->on ? log::id::flag_set : log::id::flag_cleared,
                           std::string(s->on ? "set" : "cleared") + " promiscuous mode on " +
                               s->name,
                           {{"PROMISCD_LINK", s->name},
                            {"PROMISCD_IFINDEX", std::to_string(s->ifindex)},
                            {"PROMISCD_FLAG", s->on ? "on" : "off"}});
            } catch (const net::NetlinkError& e) {
                log::error(e.what());
                arbiter_.set_flag_failed(s->ifindex, s->on);
                failed.push_back(s->ifindex);
            }
        } else if (const auto* e = std::get_if<LeaseEnded>(&c)) {
            audit_ended(*e);
        } else if (const auto* sc = std::get_if<LeaseStateChanged>(&c)) {
            const Lease* l = arbiter_.find(sc->id);
            log::audit(log::Level::Info, log::id::lease_state,
                       "lease " + std::to_string(sc->id) + (l ? " on " + l->interface : "") +
                           " is now " + std::string(to_string(sc->to)),
                       {{"PROMISCD_LEASE", std::to_string(sc->id)},
                        {"PROMISCD_LINK", l ? l->interface : ""},
                        {"PROMISCD_STATE", std::string(to_string(sc->to))}});
        } else if (const auto* x = std::get_if<ExternalFlagChange>(&c)) {
            log::info("promiscuous mode " + std::string(x->on ? "set" : "cleared") + " on " +
                      x->name + " by another agent");
        } else if (const auto* k = std::get_if<ConflictDetected>(&c)) {
            log::audit(log::Level::Warning, log::id::conflict,
                       "another agent cleared promiscuous mode on " + k->name + " " +
                           std::to_string(k->clears) +
                           " times within the conflict window; not fighting it any more",
                       {{"PROMISCD_LINK", k->name},
                        {"PROMISCD_IFINDEX", std::to_string(k->ifindex)},
                        {"PROMISCD_CLEARS", std::to_string(k->clears)}});
        }
        for (auto* l : listeners_)
            l->on_command(c);
    }
    if (timer_)
        arm_timer();
    for (auto* l : listeners_)
        l->on_changed();
    return failed;
}

LeaseId Service::acquire(const LeaseRequest& request) {
    auto result = arbiter_.acquire(request, now());
    const Lease& lease = arbiter_.get(result.id);
    log::audit(log::Level::Info, log::id::lease_granted,
               "lease " + std::to_string(result.id) + " on " + request.interface + " granted to " +
                   describe(request.owner) + " (" + std::string(to_string(lease.state)) + ")",
               {{"PROMISCD_LINK", request.interface},
                {"PROMISCD_LEASE", std::to_string(result.id)},
                {"PROMISCD_OWNER", request.owner.id},
                {"PROMISCD_OWNER_UID", std::to_string(request.owner.uid)},
                {"PROMISCD_OWNER_PID", std::to_string(request.owner.pid)},
                {"PROMISCD_OWNER_COMM", request.owner.command},
                {"PROMISCD_REASON", request.reason}});
    for (auto* l : listeners_)
        l->on_lease_granted(lease);
    auto failed = execute(result.commands);
    if (auto v = arbiter_.link_by_name(request.interface);
        v && std::find(failed.begin(), failed.end(), v->info.ifindex) != failed.end()) {
        // The kernel refused: the lease would promise what it cannot give.
        execute(arbiter_.release(result.id, EndReason::Released));
        throw Error(ErrorCode::Failed, "cannot set promiscuous mode on " +
                                           quote(request.interface) + " (see the daemon's log)");
    }
    return result.id;
}

void Service::release(LeaseId id, EndReason reason) {
    execute(arbiter_.release(id, reason));
}

void Service::renew(LeaseId id, Usec ttl) {
    execute(arbiter_.renew(id, ttl, now()));
    arm_timer();
}

void Service::owner_gone(const std::string& transport, const std::string& owner_id) {
    execute(arbiter_.owner_gone(transport, owner_id));
}

void Service::set_policy(const std::string& interface, Policy policy) {
    execute(arbiter_.set_policy(interface, policy, now()));
    if (auto v = arbiter_.link_by_name(interface))
        notify_link(v->info.ifindex);
}

void Service::shutdown() {
    execute(arbiter_.shutdown());
}

void Service::notify_link(int ifindex) {
    if (auto v = arbiter_.link(ifindex))
        for (auto* l : listeners_)
            l->on_link_changed(*v);
}

void Service::on_changed(const LinkInfo& info) {
    auto before = arbiter_.link(info.ifindex);
    if (!before || before->info.admin_flag != info.admin_flag ||
        before->info.promiscuity != info.promiscuity || before->info.name != info.name)
        log::debug(link_summary(info));
    execute(arbiter_.link_changed(info, now()));
    notify_link(info.ifindex);
}

void Service::on_removed(int ifindex, const std::string& name) {
    log::info("link " + name + " (index " + std::to_string(ifindex) + ") removed");
    execute(arbiter_.link_removed(ifindex));
    for (auto* l : listeners_)
        l->on_link_removed(ifindex, name);
}

void Service::on_resynced(const std::vector<LinkInfo>& links) {
    log::warning("missed link notifications (receive buffer overrun); re-read all " +
                 std::to_string(links.size()) + " links");
    auto before = arbiter_.links();
    execute(arbiter_.links_resynced(links, now()));
    for (const auto& b : before)
        if (!arbiter_.link(b.info.ifindex))
            for (auto* l : listeners_)
                l->on_link_removed(b.info.ifindex, b.info.name);
    for (const auto& l : links)
        notify_link(l.ifindex);
}

void Service::arm_timer() {
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

int Service::on_timer(sd_event_source* /*s*/, uint64_t usec, void* userdata) {
    auto* self = static_cast<Service*>(userdata);
    (void)usec;
    self->execute(self->arbiter_.expire(self->now()));
    self->arm_timer();
    return 0;
}

} // namespace promiscd
