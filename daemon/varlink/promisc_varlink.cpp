#include "promisc_varlink.hpp"

#include "config.h"
#include "core/names.hpp"
#include "log.hpp"
#include "varlink/promisc_calls.hpp"
#include "varlink_description.h"
#include "varlink_service.hpp"

#include <cerrno>
#include <fstream>
#include <sstream>
#include <sys/syscall.h>
#include <unistd.h>

namespace promiscd::varlink {

using namespace core;
using nlohmann::json;

namespace {

const std::string iface = PROMISCD_VARLINK_INTERFACE;

std::string proc_comm(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(f, comm);
    return comm;
}

// Field 22 of /proc/PID/stat, as polkit's unix-process subject wants it.
uint64_t proc_start_time(pid_t pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string s((std::istreambuf_iterator<char>(f)), {});
    auto close = s.rfind(')');
    if (close == std::string::npos || close + 2 > s.size())
        return 0;
    std::istringstream in(s.substr(close + 2));
    std::string field;
    for (int i = 3; i <= 22 && (in >> field); ++i)
        if (i == 22)
            return std::strtoull(field.c_str(), nullptr, 10);
    return 0;
}

void send_error(Connection& c, const Error& e) {
    c.error(iface + "." + std::string(error_name(e.code())), {{"message", e.what()}});
}

// A reply for an operation: the error, or what encode() makes of the value.
template <typename T, typename Encode>
auto answer(std::weak_ptr<Connection> weak, Encode encode) {
    return [weak, encode](ops::Result<T> r) {
        auto c = weak.lock();
        if (!c || !c->open())
            return;
        if (auto* e = std::get_if<Error>(&r))
            return send_error(*c, *e);
        encode(*c, std::get<T>(r));
    };
}

} // namespace

const char* interface_description() {
    return promisc_varlink_description;
}

PromiscVarlink::PromiscVarlink(ops::Operations& operations)
    : ops_(operations), leases_(operations.leases()),
      service_({"promiscd", "promiscd", PROMISCD_VERSION, "https://github.com/promiscd/promiscd"}) {
    service_.add_interface(iface, interface_description());
    leases_.changes().subscribe(this);
    sd_event_source* s = nullptr;
    if (sd_event_add_defer(leases_.event(), &s, &PromiscVarlink::on_deferred, this) >= 0) {
        deferred_.reset(s);
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
    }
}

PromiscVarlink::~PromiscVarlink() {
    leases_.changes().unsubscribe(this);
}

std::string PromiscVarlink::internal_error() const {
    return iface + ".Failed";
}

namespace {

// The link's own name; the namespace apart ("netns_inode") when it is not
// promiscd's own.
std::string own_name(const std::string& qualified) {
    return display_name(split_link(qualified).name);
}

json with_netns(json j, const std::string& qualified) {
    if (const uint64_t ns = split_link(qualified).netns; ns != 0)
        j["netns_inode"] = ns;
    return j;
}

} // namespace

json PromiscVarlink::lease_json(const Lease& l) const {
    json j = {{"id", l.id},
              {"interface", own_name(l.interface)},
              {"state", std::string(to_string(l.state))},
              {"owner", label(l.owner)},
              {"uid", l.owner.uid},
              {"pid", l.owner.pid},
              {"command", display_name(l.owner.command)},
              {"reason", l.reason},
              {"acquired", leases_.realtime(l.acquired)},
              {"expires", l.expires ? json(leases_.realtime(*l.expires)) : json(nullptr)}};
    if (!l.netns.empty())
        j["netns"] = l.netns;
    return with_netns(std::move(j), l.interface);
}

json PromiscVarlink::link_json(const LinkView& v) const {
    const std::string_view name = split_link(v.info.name).name;
    json j = {{"name", display_name(name)},
              {"index", v.info.netns ? v.info.netns_ifindex : v.info.ifindex},
              {"admin_flag", v.info.admin_flag},
              {"promiscuity", v.info.promiscuity},
              {"promiscuous", v.info.promiscuity > 0},
              {"origin", std::string(to_string(v.origin))},
              {"leases", v.leases},
              {"policy", std::string(to_string(v.policy))},
              {"external_changes", v.external_changes}};
    if (!valid_utf8(name)) {
        json bytes = json::array();
        for (unsigned char ch : name)
            bytes.push_back(ch);
        j["name_bytes"] = std::move(bytes);
    }
    if (v.info.netns) {
        j["netns_inode"] = v.info.netns;
        if (const auto* ns = leases_.namespace_of(v.info.netns))
            j["netns"] = ns->spec;
    }
    return j;
}

// ---------------------------------------------------------------- dispatch

void PromiscVarlink::call(const ConnPtr& c, Call call) {
    if (service_.answer(*c, call))
        return;
    try {
        auto decoded = decode_call(call);
        if (!decoded)
            return Service::method_not_found(*c, call.method);
        const bool interactive = decoded->interactive;
        std::visit(
            [&](auto& r) {
                using T = std::decay_t<decltype(r)>;
                if constexpr (std::is_same_v<T, calls::ListLinks>) {
                    json links = json::array();
                    for (const auto& v : leases_.arbiter().links())
                        links.push_back(link_json(v));
                    c->reply({{"links", std::move(links)}});
                } else if constexpr (std::is_same_v<T, calls::ListLeases>) {
                    json leases = json::array();
                    for (const auto& [id, l] : leases_.arbiter().lease_table())
                        leases.push_back(lease_json(l));
                    c->reply({{"leases", std::move(leases)}});
                } else if constexpr (std::is_same_v<T, calls::Monitor>) {
                    monitor(c, call);
                } else if (auto caller = caller_of(c, interactive)) {
                    operate(c, call, *caller, std::move(r));
                }
            },
            decoded->request);
    } catch (const Error& e) {
        send_error(*c, e);
    }
}

std::optional<ops::Caller> PromiscVarlink::caller_of(const ConnPtr& c, bool interactive) {
    const auto& peer = c->peer();
    // The start time and command are read by pid: make sure that pid is
    // still our peer (a pidfd cannot be recycled).
    if (peer.uid != 0 && !c->peer_alive()) {
        send_error(*c, Error(ErrorCode::AccessDenied, "the calling process has exited"));
        return std::nullopt;
    }
    ops::Caller caller;
    caller.transport = "varlink";
    caller.id = owner_id(*c);
    caller.uid = peer.uid;
    caller.pid = static_cast<uint32_t>(peer.pid);
    auto& process = c->process_info();
    if (!process)
        process = Connection::ProcessInfo{proc_comm(peer.pid), proc_start_time(peer.pid)};
    caller.command = process->command;
    caller.subject.kind = auth::Subject::Kind::UnixProcess;
    caller.subject.pid = static_cast<uint32_t>(peer.pid);
    caller.subject.uid = peer.uid;
    caller.subject.start_time = process->start_time;
    caller.groups = peer.groups;
    caller.groups.push_back(peer.gid);
    caller.interactive = interactive;
    return caller;
}

void PromiscVarlink::operate(const ConnPtr& c, const Call& call, const ops::Caller& caller,
                             calls::Acquire r) {
    const bool more = call.more && !call.oneway;
    std::weak_ptr<Connection> weak = c;
    ops_.acquire(caller, std::move(r.request),
                 answer<LeaseId>(weak, [this, more, weak](Connection& conn, LeaseId id) {
                     if (more)
                         watchers_[id] = weak;
                     conn.reply({{"lease", lease_json(leases_.arbiter().get(id))}}, more);
                 }));
}

void PromiscVarlink::operate(const ConnPtr& c, const Call&, const ops::Caller& caller,
                             calls::Release r) {
    ops_.release(caller, r.id, answer<ops::Unit>(c, [](Connection& conn, ops::Unit) {
                     conn.reply(json::object());
                 }));
}

void PromiscVarlink::operate(const ConnPtr& c, const Call&, const ops::Caller& caller,
                             calls::Renew r) {
    ops_.renew(caller, r.id, r.ttl, answer<ops::Unit>(c, [](Connection& conn, ops::Unit) {
                   conn.reply(json::object());
               }));
}

void PromiscVarlink::operate(const ConnPtr& c, const Call&, const ops::Caller& caller,
                             calls::Revoke r) {
    ops_.revoke(
        caller, r.id, std::move(r.reason),
        answer<ops::Unit>(c, [](Connection& conn, ops::Unit) { conn.reply(json::object()); }));
}

void PromiscVarlink::operate(const ConnPtr& c, const Call&, const ops::Caller& caller,
                             calls::SetLinkPolicy r) {
    ops_.set_link_policy(
        caller, std::move(r.interface), r.policy,
        answer<ops::Unit>(c, [](Connection& conn, ops::Unit) { conn.reply(json::object()); }));
}

void PromiscVarlink::operate(const ConnPtr& c, const Call&, const ops::Caller& caller,
                             calls::OpenCapture r) {
    ops_.open_capture(
        caller, std::move(r.request),
        answer<service::OpenedCapture>(c, [](Connection& conn, service::OpenedCapture& opened) {
            conn.reply({{"capture", opened.id}}, false, {opened.fd.release()});
        }));
}

void PromiscVarlink::operate(const ConnPtr& c, const Call&, const ops::Caller& caller,
                             calls::StopCapture r) {
    ops_.stop_capture(caller, r.id, answer<ops::Unit>(c, [](Connection& conn, ops::Unit) {
                          conn.reply(json::object());
                      }));
}

void PromiscVarlink::monitor(const ConnPtr& c, const Call& call) {
    if (!call.more) {
        Service::expected_more(*c);
        return;
    }
    monitors_[c->id()] = c;
    c->reply(
        {{"event",
          {{"type", "subscribed"}, {"time", leases_.realtime(leases_.now())}, {"interface", ""}}}},
        true);
}

// ---------------------------------------------------------------- events

void PromiscVarlink::broadcast(json event) {
    if (monitors_.empty())
        return;
    event["time"] = leases_.realtime(leases_.now());
    const json msg = {{"event", std::move(event)}};
    for (auto it = monitors_.begin(); it != monitors_.end();) {
        auto conn = it->second.lock();
        if (!conn || !conn->open()) {
            it = monitors_.erase(it);
            continue;
        }
        ++it;
        conn->reply(msg, true);
    }
}

void PromiscVarlink::on_change(const service::Change& change) {
    using namespace service;
    // Nobody to tell: no Monitor, and no Acquire with "more" for this lease.
    if (monitors_.empty()) {
        const core::Lease* l = nullptr;
        if (const auto* c = std::get_if<LeaseChanged>(&change))
            l = &c->lease;
        else if (const auto* e = std::get_if<service::LeaseEnded>(&change))
            l = &e->lease;
        if (!l || !watchers_.count(l->id))
            return;
    }
    try {
        if (const auto* a = std::get_if<LeaseAdded>(&change)) {
            broadcast(with_netns({{"type", "lease-granted"},
                                  {"interface", own_name(a->lease.interface)},
                                  {"lease", lease_json(a->lease)}},
                                 a->lease.interface));
        } else if (const auto* lc = std::get_if<LeaseChanged>(&change)) {
            if (auto it = watchers_.find(lc->lease.id); it != watchers_.end())
                if (auto conn = it->second.lock(); conn && conn->open())
                    conn->reply({{"lease", lease_json(lc->lease)}}, true);
            broadcast(with_netns({{"type", lc->from ? "lease-state" : "lease-renewed"},
                                  {"interface", own_name(lc->lease.interface)},
                                  {"lease", lease_json(lc->lease)}},
                                 lc->lease.interface));
        } else if (const auto* e = std::get_if<service::LeaseEnded>(&change)) {
            json end = {{"ended", std::string(to_string(e->reason))}};
            if (e->revocation) {
                end["revoked_by"] = display_name(e->revocation->by);
                end["revoked_by_uid"] = e->revocation->by_uid;
                end["message"] = display_name(e->revocation->message);
            }
            if (auto it = watchers_.find(e->lease.id); it != watchers_.end()) {
                if (auto conn = it->second.lock(); conn && conn->open()) {
                    json r = end;
                    r["lease"] = lease_json(e->lease);
                    conn->reply(r, false);
                }
                watchers_.erase(it);
            }
            json ev = with_netns({{"type", "lease-ended"},
                                  {"interface", own_name(e->lease.interface)},
                                  {"lease", lease_json(e->lease)},
                                  {"reason", end["ended"]}},
                                 e->lease.interface);
            for (const char* k : {"revoked_by", "revoked_by_uid", "message"})
                if (end.contains(k))
                    ev[k] = end[k];
            broadcast(std::move(ev));
        } else if (const auto* f = std::get_if<FlagChanged>(&change)) {
            broadcast(with_netns({{"type", "flag"},
                                  {"interface", own_name(f->name)},
                                  {"flag", f->on},
                                  {"by", f->by_daemon ? "promiscd" : "another agent"}},
                                 f->name));
        } else if (const auto* k = std::get_if<Conflict>(&change)) {
            broadcast(with_netns(
                {{"type", "conflict"}, {"interface", own_name(k->name)}, {"clears", k->clears}},
                k->name));
        } else if (const auto* cs = std::get_if<CaptureStarted>(&change)) {
            broadcast(with_netns({{"type", "capture-started"},
                                  {"interface", own_name(cs->capture.interface)},
                                  {"capture", cs->capture.id}},
                                 cs->capture.interface));
        } else if (const auto* cf = std::get_if<CaptureFinished>(&change)) {
            broadcast(with_netns({{"type", "capture-finished"},
                                  {"interface", own_name(cf->capture.interface)},
                                  {"capture", cf->capture.id},
                                  {"reason", std::string(capture::to_string(cf->reason))}},
                                 cf->capture.interface));
        }
    } catch (const std::exception& e) {
        log::warning(std::string("varlink: cannot publish a change: ") + e.what());
    }
}

// ---------------------------------------------------------------- closing

bool PromiscVarlink::holds(const Connection& c) const {
    if (monitors_.count(c.id()))
        return true;
    if (leases_.arbiter().leases_of_owner("varlink", owner_id(c)) > 0)
        return true;
    if (auto* captures = ops_.captures())
        for (const auto& info : captures->captures())
            if (info.owner.transport == "varlink" && info.owner.id == owner_id(c))
                return true;
    return false;
}

void PromiscVarlink::closed(Connection& c) {
    monitors_.erase(c.id());
    // What it waited for is dropped now; its leases end from the loop, never
    // inside whatever closed it.
    ops_.cancel_pending("varlink", owner_id(c));
    gone_.push_back(owner_id(c));
    if (deferred_)
        sd_event_source_set_enabled(deferred_.get(), SD_EVENT_ONESHOT);
}

int PromiscVarlink::on_deferred(sd_event_source*, void* userdata) {
    auto* self = static_cast<PromiscVarlink*>(userdata);
    auto gone = std::move(self->gone_);
    self->gone_.clear();
    for (const auto& id : gone)
        self->ops_.caller_gone("varlink", id);
    return 0;
}

} // namespace promiscd::varlink
