#include "promisc_varlink.hpp"

#include "config.h"
#include "core/names.hpp"
#include "log.hpp"
#include "ops/requests.hpp"
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

// systemd's name for it: the caller is ready to wait while polkit asks its
// agent (a password prompt) instead of being refused at once.
constexpr const char* kInteractive = "allowInteractiveAuthentication";

// Parameters of a method: the fixed ones are taken out by name; what is left
// are the operation's options (checked, with their messages, by ops).
class Params {
public:
    explicit Params(const json& p) : p_(p) {}
    // Every parameter must be one of these (for methods without options).
    void allow(std::initializer_list<const char*> names) const {
        for (const auto& [k, v] : p_.items()) {
            bool known = k == kInteractive;
            for (const char* n : names)
                known |= k == n;
            if (!known) {
                std::string list;
                for (const char* n : names)
                    list += std::string(list.empty() ? "" : ", ") + n;
                throw Error(ErrorCode::InvalidArgument,
                            "unknown parameter " + quote(k) +
                                (list.empty() ? " (this method takes none)"
                                              : " (known parameters: " + list + ")"));
            }
        }
    }
    std::string str(const char* key) const {
        auto it = p_.find(key);
        if (it == p_.end() || it->is_null())
            throw Error(ErrorCode::InvalidArgument, std::string("missing parameter '") + key + "'");
        if (!it->is_string())
            throw Error(ErrorCode::InvalidArgument,
                        std::string("parameter '") + key + "' must be a string");
        return it->get<std::string>();
    }
    std::optional<std::string> opt_str(const char* key) const {
        auto it = p_.find(key);
        if (it == p_.end() || it->is_null())
            return std::nullopt;
        return str(key);
    }
    uint64_t uint(const char* key) const {
        auto it = p_.find(key);
        if (it == p_.end() || it->is_null())
            throw Error(ErrorCode::InvalidArgument, std::string("missing parameter '") + key + "'");
        if (!it->is_number_unsigned())
            throw Error(ErrorCode::InvalidArgument,
                        std::string("parameter '") + key + "' must be an unsigned integer");
        return it->get<uint64_t>();
    }
    // allowInteractiveAuthentication, which every method that may ask polkit
    // takes (absent or null: false).
    bool interactive() const {
        auto it = p_.find(kInteractive);
        if (it == p_.end() || it->is_null())
            return false;
        if (!it->is_boolean())
            throw Error(ErrorCode::InvalidArgument,
                        std::string("parameter '") + kInteractive + "' must be a boolean");
        return it->get<bool>();
    }
    // Everything but `except`, as options.
    ops::Options options(std::initializer_list<const char*> except) const {
        ops::Options out;
        for (const auto& [k, v] : p_.items()) {
            bool skip = k == kInteractive;
            for (const char* e : except)
                skip |= k == e;
            if (skip)
                continue;
            ops::Value value;
            if (v.is_string())
                value = ops::Value::string(v.get<std::string>());
            else if (v.is_boolean())
                value = ops::Value::boolean(v.get<bool>());
            else if (v.is_number_unsigned())
                value = ops::Value::unsigned_(v.get<uint64_t>());
            else if (v.is_number_integer())
                value = ops::Value::signed_(v.get<int64_t>());
            else if (v.is_null())
                value = ops::Value::null();
            else if (v.is_number_float())
                value = ops::Value::other("a number with a fraction");
            else if (v.is_array())
                value = ops::Value::other("an array");
            else
                value = ops::Value::other("an object");
            out.emplace(k, std::move(value));
        }
        return out;
    }

private:
    const json& p_;
};

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

json PromiscVarlink::lease_json(const Lease& l) const {
    return {{"id", l.id},
            {"interface", display_name(l.interface)},
            {"state", std::string(to_string(l.state))},
            {"owner", label(l.owner)},
            {"uid", l.owner.uid},
            {"pid", l.owner.pid},
            {"command", display_name(l.owner.command)},
            {"reason", l.reason},
            {"acquired", leases_.realtime(l.acquired)},
            {"expires", l.expires ? json(leases_.realtime(*l.expires)) : json(nullptr)}};
}

json PromiscVarlink::link_json(const LinkView& v) const {
    json j = {{"name", display_name(v.info.name)},
              {"index", v.info.ifindex},
              {"admin_flag", v.info.admin_flag},
              {"promiscuity", v.info.promiscuity},
              {"promiscuous", v.info.promiscuity > 0},
              {"origin", std::string(to_string(v.origin))},
              {"leases", v.leases},
              {"policy", std::string(to_string(v.policy))},
              {"external_changes", v.external_changes}};
    if (!valid_utf8(v.info.name)) {
        json bytes = json::array();
        for (unsigned char ch : v.info.name)
            bytes.push_back(ch);
        j["name_bytes"] = std::move(bytes);
    }
    return j;
}

// ---------------------------------------------------------------- dispatch

void PromiscVarlink::call(const ConnPtr& c, Call call) {
    const std::string& m = call.method;
    if (service_.answer(*c, call))
        return;
    try {
        if (m == iface + ".ListLinks") {
            Params(call.parameters).allow({});
            json links = json::array();
            for (const auto& v : leases_.arbiter().links())
                links.push_back(link_json(v));
            c->reply({{"links", std::move(links)}});
        } else if (m == iface + ".ListLeases") {
            Params(call.parameters).allow({});
            json leases = json::array();
            for (const auto& [id, l] : leases_.arbiter().lease_table())
                leases.push_back(lease_json(l));
            c->reply({{"leases", std::move(leases)}});
        } else if (m == iface + ".Acquire") {
            method_acquire(c, call);
        } else if (m == iface + ".Release") {
            method_release(c, call);
        } else if (m == iface + ".Renew") {
            method_renew(c, call);
        } else if (m == iface + ".Revoke") {
            method_revoke(c, call);
        } else if (m == iface + ".SetLinkPolicy") {
            method_set_policy(c, call);
        } else if (m == iface + ".Monitor") {
            method_monitor(c, call);
        } else if (m == iface + ".OpenCapture") {
            method_open_capture(c, call);
        } else if (m == iface + ".StopCapture") {
            method_stop_capture(c, call);
        } else {
            Service::method_not_found(*c, m);
        }
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

void PromiscVarlink::method_acquire(const ConnPtr& c, const Call& call) {
    Params p(call.parameters);
    LeaseRequest req = ops::decode_acquire(p.str("interface"), p.options({"interface"}));
    auto caller = caller_of(c, p.interactive());
    if (!caller)
        return;
    const bool more = call.more && !call.oneway;
    std::weak_ptr<Connection> weak = c;
    ops_.acquire(*caller, req,
                 answer<LeaseId>(weak, [this, more, weak](Connection& conn, LeaseId id) {
                     if (more)
                         watchers_[id] = weak;
                     conn.reply({{"lease", lease_json(leases_.arbiter().get(id))}}, more);
                 }));
}

void PromiscVarlink::method_release(const ConnPtr& c, const Call& call) {
    Params p(call.parameters);
    p.allow({"id"});
    LeaseId id = p.uint("id");
    auto caller = caller_of(c, p.interactive());
    if (!caller)
        return;
    ops_.release(*caller, id, answer<ops::Unit>(c, [](Connection& conn, ops::Unit) {
        conn.reply(json::object());
    }));
}

void PromiscVarlink::method_renew(const ConnPtr& c, const Call& call) {
    Params p(call.parameters);
    p.allow({"id", "ttl"});
    LeaseId id = p.uint("id");
    Usec ttl = ops::decode_ttl(p.uint("ttl"));
    auto caller = caller_of(c, p.interactive());
    if (!caller)
        return;
    ops_.renew(*caller, id, ttl, answer<ops::Unit>(c, [](Connection& conn, ops::Unit) {
        conn.reply(json::object());
    }));
}

void PromiscVarlink::method_revoke(const ConnPtr& c, const Call& call) {
    Params p(call.parameters);
    p.allow({"id", "reason"});
    LeaseId id = p.uint("id");
    std::string reason = p.opt_str("reason").value_or("");
    auto caller = caller_of(c, p.interactive());
    if (!caller)
        return;
    ops_.revoke(*caller, id, reason, answer<ops::Unit>(c, [](Connection& conn, ops::Unit) {
        conn.reply(json::object());
    }));
}

void PromiscVarlink::method_set_policy(const ConnPtr& c, const Call& call) {
    Params p(call.parameters);
    p.allow({"interface", "policy"});
    std::string name = ops::decode_interface(p.str("interface"));
    Policy policy = ops::decode_policy(p.str("policy"));
    auto caller = caller_of(c, p.interactive());
    if (!caller)
        return;
    ops_.set_link_policy(
        *caller, name, policy,
        answer<ops::Unit>(c, [](Connection& conn, ops::Unit) { conn.reply(json::object()); }));
}

void PromiscVarlink::method_monitor(const ConnPtr& c, const Call& call) {
    Params(call.parameters).allow({});
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

void PromiscVarlink::method_open_capture(const ConnPtr& c, const Call& call) {
    Params p(call.parameters);
    service::CaptureRequest req = ops::decode_capture(p.str("interface"), p.options({"interface"}));
    auto caller = caller_of(c, p.interactive());
    if (!caller)
        return;
    ops_.open_capture(
        *caller, req,
        answer<service::OpenedCapture>(c, [](Connection& conn, service::OpenedCapture& opened) {
            conn.reply({{"capture", opened.id}}, false, {opened.fd.release()});
        }));
}

void PromiscVarlink::method_stop_capture(const ConnPtr& c, const Call& call) {
    Params p(call.parameters);
    p.allow({"id"});
    service::CaptureId id = p.uint("id");
    auto caller = caller_of(c, p.interactive());
    if (!caller)
        return;
    ops_.stop_capture(*caller, id, answer<ops::Unit>(c, [](Connection& conn, ops::Unit) {
        conn.reply(json::object());
    }));
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
            broadcast({{"type", "lease-granted"},
                       {"interface", display_name(a->lease.interface)},
                       {"lease", lease_json(a->lease)}});
        } else if (const auto* lc = std::get_if<LeaseChanged>(&change)) {
            if (auto it = watchers_.find(lc->lease.id); it != watchers_.end())
                if (auto conn = it->second.lock(); conn && conn->open())
                    conn->reply({{"lease", lease_json(lc->lease)}}, true);
            broadcast({{"type", lc->from ? "lease-state" : "lease-renewed"},
                       {"interface", display_name(lc->lease.interface)},
                       {"lease", lease_json(lc->lease)}});
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
            json ev = {{"type", "lease-ended"},
                       {"interface", display_name(e->lease.interface)},
                       {"lease", lease_json(e->lease)},
                       {"reason", end["ended"]}};
            for (const char* k : {"revoked_by", "revoked_by_uid", "message"})
                if (end.contains(k))
                    ev[k] = end[k];
            broadcast(std::move(ev));
        } else if (const auto* f = std::get_if<FlagChanged>(&change)) {
            broadcast({{"type", "flag"},
                       {"interface", display_name(f->name)},
                       {"flag", f->on},
                       {"by", f->by_daemon ? "promiscd" : "another agent"}});
        } else if (const auto* k = std::get_if<Conflict>(&change)) {
            broadcast({{"type", "conflict"},
                       {"interface", display_name(k->name)},
                       {"clears", k->clears}});
        } else if (const auto* cs = std::get_if<CaptureStarted>(&change)) {
            broadcast({{"type", "capture-started"},
                       {"interface", display_name(cs->capture.interface)},
                       {"capture", cs->capture.id}});
        } else if (const auto* cf = std::get_if<CaptureFinished>(&change)) {
            broadcast({{"type", "capture-finished"},
                       {"interface", display_name(cf->capture.interface)},
                       {"capture", cf->capture.id},
                       {"reason", std::string(capture::to_string(cf->reason))}});
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
