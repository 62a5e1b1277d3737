#include "promisc_varlink.hpp"

#include "config.h"
#include "log.hpp"
#include "varlink_description.h"

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
const std::string service_iface = "org.varlink.service";

struct InvalidParameter {
    std::string parameter;
};

// Parameters are checked strictly: unknown names and wrong types are errors
// that name the parameter.
class Params {
public:
    explicit Params(const json& p) : p_(p) {}
    void allow(std::initializer_list<const char*> names) const {
        for (const auto& [k, v] : p_.items()) {
            bool known = false;
            for (const char* n : names)
                known |= k == n;
            if (!known)
                throw InvalidParameter{k};
        }
    }
    std::optional<std::string> str(const char* key, bool required = false) const {
        auto it = p_.find(key);
        if (it == p_.end() || it->is_null()) {
            if (required)
                throw InvalidParameter{key};
            return std::nullopt;
        }
        if (!it->is_string())
            throw InvalidParameter{key};
        return it->get<std::string>();
    }
    std::optional<uint64_t> uint(const char* key, bool required = false) const {
        auto it = p_.find(key);
        if (it == p_.end() || it->is_null()) {
            if (required)
                throw InvalidParameter{key};
            return std::nullopt;
        }
        if (!it->is_number_unsigned())
            throw InvalidParameter{key};
        return it->get<uint64_t>();
    }
    std::optional<bool> boolean(const char* key) const {
        auto it = p_.find(key);
        if (it == p_.end() || it->is_null())
            return std::nullopt;
        if (!it->is_boolean())
            throw InvalidParameter{key};
        return it->get<bool>();
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
    if (close == std::string::npos)
        return 0;
    std::istringstream in(s.substr(close + 2));
    std::string field;
    for (int i = 3; i <= 22 && (in >> field); ++i)
        if (i == 22)
            return std::stoull(field);
    return 0;
}

bool process_alive(int pidfd) {
    if (pidfd < 0)
        return true; // no pidfd: the start time is all we have
    return ::syscall(SYS_pidfd_send_signal, pidfd, 0, nullptr, 0) == 0 || errno != ESRCH;
}

Usec seconds_to_usec(uint64_t s) {
    return s > UINT64_MAX / usec_per_sec ? UINT64_MAX : s * usec_per_sec;
}

void send_error(Connection& c, const Error& e) {
    c.error(iface + "." + std::string(error_name(e.code())), {{"message", e.what()}});
}

} // namespace

const char* interface_description() {
    return promisc_varlink_description;
}

PromiscVarlink::PromiscVarlink(Service& service, auth::Authorizer& authorizer,
                               capture::CaptureManager* captures)
    : service_(service), authorizer_(authorizer), captures_(captures) {
    service_.add_listener(this);
    sd_event_source* s = nullptr;
    if (sd_event_add_defer(service_.event(), &s, &PromiscVarlink::on_deferred, this) >= 0) {
        deferred_.reset(s);
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
    }
}

PromiscVarlink::~PromiscVarlink() {
    service_.remove_listener(this);
}

json PromiscVarlink::lease_json(const Lease& l) const {
    return {{"id", l.id},
            {"interface", l.interface},
            {"state", std::string(to_string(l.state))},
            {"owner", l.owner.transport == "config" ? l.owner.transport : l.owner.id},
            {"uid", l.owner.uid},
            {"pid", l.owner.pid},
            {"command", l.owner.command},
            {"reason", l.reason},
            {"acquired", service_.realtime(l.acquired)},
            {"expires", l.expires ? json(service_.realtime(*l.expires)) : json(nullptr)}};
}

json PromiscVarlink::link_json(const LinkView& v) const {
    return {{"name", v.info.name},
            {"index", v.info.ifindex},
            {"admin_flag", v.info.admin_flag},
            {"promiscuity", v.info.promiscuity},
            {"promiscuous", v.info.promiscuity > 0},
            {"origin", std::string(to_string(v.origin))},
            {"leases", v.leases},
            {"policy", std::string(to_string(v.policy))}};
}

// ---------------------------------------------------------------- dispatch

void PromiscVarlink::call(const ConnPtr& c, Call call) {
    const std::string& m = call.method;
    try {
        if (m == service_iface + ".GetInfo") {
            Params(call.parameters).allow({});
            c->reply({{"vendor", "promiscd"},
                      {"product", "promiscd"},
                      {"version", PROMISCD_VERSION},
                      {"url", "https://github.com/promiscd/promiscd"},
                      {"interfaces", {service_iface, iface}}});
        } else if (m == service_iface + ".GetInterfaceDescription") {
            Params p(call.parameters);
            p.allow({"interface"});
            auto name = *p.str("interface", true);
            if (name == iface)
                c->reply({{"description", interface_description()}});
            else if (name == service_iface)
                c->reply({{"description",
                           "interface org.varlink.service\n"
                           "method GetInfo() -> (vendor: string, product: string, version: "
                           "string, url: string, interfaces: []string)\n"
                           "method GetInterfaceDescription(interface: string) -> (description: "
                           "string)\n"
                           "error InterfaceNotFound (interface: string)\n"
                           "error MethodNotFound (method: string)\n"
                           "error MethodNotImplemented (method: string)\n"
                           "error InvalidParameter (parameter: string)\n"}});
            else
                c->error(service_iface + ".InterfaceNotFound", {{"interface", name}});
        } else if (m == iface + ".ListLinks") {
            Params(call.parameters).allow({});
            json links = json::array();
            for (const auto& v : service_.arbiter().links())
                links.push_back(link_json(v));
            c->reply({{"links", links}});
        } else if (m == iface + ".ListLeases") {
            Params(call.parameters).allow({});
            json leases = json::array();
            for (const auto& l : service_.arbiter().leases())
                leases.push_back(lease_json(l));
            c->reply({{"leases", leases}});
        } else if (m == iface + ".Acquire") {
            method_acquire(c, call);
        } else if (m == iface + ".Release") {
            method_release_or_renew(c, call, false);
        } else if (m == iface + ".Renew") {
            method_release_or_renew(c, call, true);
        } else if (m == iface + ".Revoke") {
            method_revoke(c, call);
        } else if (m == iface + ".SetLinkPolicy") {
            method_set_policy(c, call);
        } else if (m == iface + ".Monitor") {
            method_monitor(c, call);
        } else if (m == iface + ".OpenCapture") {
            if (captures_)
                method_open_capture(c, call);
            else
                c->error(service_iface + ".MethodNotImplemented", {{"method", m}});
        } else {
            auto dot = m.rfind('.');
            std::string interface = dot == std::string::npos ? m : m.substr(0, dot);
            if (interface != iface && interface != service_iface)
                c->error(service_iface + ".InterfaceNotFound", {{"interface", interface}});
            else
                c->error(service_iface + ".MethodNotFound", {{"method", m}});
        }
    } catch (const InvalidParameter& e) {
        c->error(service_iface + ".InvalidParameter", {{"parameter", e.parameter}});
    } catch (const Error& e) {
        send_error(*c, e);
    }
}

auth::Caller PromiscVarlink::caller_of(const Connection& c) {
    const auto& peer = c.peer();
    auth::Caller caller;
    caller.subject.kind = auth::Subject::Kind::UnixProcess;
    caller.subject.pid = static_cast<uint32_t>(peer.pid);
    caller.subject.uid = peer.uid;
    caller.subject.start_time = proc_start_time(peer.pid);
    caller.uid = peer.uid;
    caller.pid = static_cast<uint32_t>(peer.pid);
    caller.command = proc_comm(peer.pid);
    caller.groups = peer.groups;
    caller.groups.push_back(peer.gid);
    return caller;
}

void PromiscVarlink::authorize(const ConnPtr& c, auth::Action action, Proceed proceed,
                               Refuse refuse) {
    auth::Caller caller = caller_of(*c);
    // The start time was read by pid: make sure that pid is still our peer.
    if (caller.uid != 0 && !process_alive(c->peer().pidfd)) {
        send_error(*c, Error(ErrorCode::AccessDenied, "the calling process has exited"));
        return;
    }
    std::weak_ptr<Connection> weak = c;
    uint64_t conn_id = c->id();
    auto ticket = std::make_shared<uint64_t>(0);
    *ticket = authorizer_.authorize(
        caller, action, {},
        [this, weak, conn_id, ticket, caller, proceed, refuse](const std::optional<Error>& denied) {
            auto range = tickets_.equal_range(conn_id);
            for (auto it = range.first; it != range.second; ++it)
                if (it->second == *ticket) {
                    tickets_.erase(it);
                    break;
                }
            auto conn = weak.lock();
            if (!conn || !conn->open())
                return; // gone while polkit thought about it: nothing granted
            if (!denied)
                proceed(caller);
            else
                send_error(*conn, refuse ? refuse(*denied) : *denied);
        });
    if (*ticket)
        tickets_.emplace(conn_id, *ticket);
}

void PromiscVarlink::method_acquire(const ConnPtr& c, const Call& call) {
    Params p(call.parameters);
    p.allow({"interface", "ttl", "reason", "wait"});
    LeaseRequest req;
    req.interface = *p.str("interface", true);
    validate_interface_name(req.interface);
    if (auto ttl = p.uint("ttl"))
        req.ttl = seconds_to_usec(*ttl);
    req.reason = p.str("reason").value_or("");
    req.wait = p.boolean("wait").value_or(false);
    bool more = call.more;
    std::weak_ptr<Connection> weak = c;
    authorize(c, auth::Action::Acquire,
              [this, weak, req, more](const auth::Caller& caller) mutable {
                  auto conn = weak.lock();
                  if (!conn || !conn->open())
                      return;
                  req.owner = {"varlink", owner_id(*conn), caller.uid, caller.pid, caller.command};
                  try {
                      LeaseId id = service_.acquire(req);
                      if (more)
                          watchers_[id] = conn;
                      conn->reply({{"lease", lease_json(service_.arbiter().get(id))}}, more);
                  } catch (const Error& e) {
                      send_error(*conn, e);
                  }
              });
}

void PromiscVarlink::method_release_or_renew(const ConnPtr& c, const Call& call, bool renew) {
    Params p(call.parameters);
    if (renew)
        p.allow({"id", "ttl"});
    else
        p.allow({"id"});
    LeaseId id = *p.uint("id", true);
    std::optional<Usec> ttl;
    if (renew)
        ttl = seconds_to_usec(*p.uint("ttl", true));
    const Lease& lease = service_.arbiter().get(id); // NoSuchLease
    std::weak_ptr<Connection> weak = c;
    auto act = [this, weak, id, ttl, renew](bool owner) {
        auto conn = weak.lock();
        if (!conn || !conn->open())
            return;
        try {
            if (renew)
                service_.renew(id, *ttl);
            else
                service_.release(id, owner ? EndReason::Released : EndReason::Revoked);
            conn->reply(json::object());
        } catch (const Error& e) {
            send_error(*conn, e);
        }
    };
    if (lease.owner.transport == "varlink" && lease.owner.id == owner_id(*c)) {
        act(true);
        return;
    }
    // Someone else's lease: only a manager may.
    authorize(
        c, auth::Action::Manage, [act](const auth::Caller&) { act(false); },
        [id, uid = c->peer().uid](const Error&) {
            return Error(ErrorCode::NotOwner,
                         "lease " + std::to_string(id) + " belongs to someone else, and uid " +
                             std::to_string(uid) + " may not manage others' leases");
        });
}

void PromiscVarlink::method_revoke(const ConnPtr& c, const Call& call) {
    Params p(call.parameters);
    p.allow({"id", "reason"});
    LeaseId id = *p.uint("id", true);
    std::string reason = p.str("reason").value_or("");
    service_.arbiter().get(id);
    std::weak_ptr<Connection> weak = c;
    authorize(c, auth::Action::Manage, [this, weak, id, reason](const auth::Caller& caller) {
        auto conn = weak.lock();
        if (!conn || !conn->open())
            return;
        try {
            log::notice("lease " + std::to_string(id) + " revoked by uid " +
                        std::to_string(caller.uid) + (reason.empty() ? "" : ": " + quote(reason)));
            service_.release(id, EndReason::Revoked);
            conn->reply(json::object());
        } catch (const Error& e) {
            send_error(*conn, e);
        }
    });
}

void PromiscVarlink::method_set_policy(const ConnPtr& c, const Call& call) {
    Params p(call.parameters);
    p.allow({"interface", "policy"});
    std::string name = *p.str("interface", true);
    std::string policy_text = *p.str("policy", true);
    validate_interface_name(name);
    auto policy = parse_policy(policy_text);
    if (!policy)
        throw Error(ErrorCode::InvalidArgument,
                    "unknown policy " + quote(policy_text) + " (expected 'enforce' or 'yield')");
    if (!service_.arbiter().link_by_name(name))
        throw Error(ErrorCode::NoSuchInterface, "interface " + quote(name) + " does not exist");
    std::weak_ptr<Connection> weak = c;
    authorize(c, auth::Action::Manage, [this, weak, name, policy](const auth::Caller&) {
        auto conn = weak.lock();
        if (!conn || !conn->open())
            return;
        try {
            service_.set_policy(name, *policy);
            conn->reply(json::object());
        } catch (const Error& e) {
            send_error(*conn, e);
        }
    });
}

void PromiscVarlink::method_monitor(const ConnPtr& c, const Call& call) {
    Params(call.parameters).allow({});
    if (!call.more) {
        c->error(service_iface + ".ExpectedMore");
        return;
    }
    monitors_[c->id()] = c;
    c->reply({{"event",
               {{"type", "subscribed"},
                {"time", service_.realtime(service_.now())},
                {"interface", ""}}}},
             true);
}

void PromiscVarlink::method_open_capture(const ConnPtr& c, const Call& call) {
    Params p(call.parameters);
    p.allow({"interface", "filter", "snaplen", "promisc", "format", "buffer_size", "count"});
    capture::CaptureRequest req;
    req.interface = *p.str("interface", true);
    req.filter = p.str("filter").value_or("");
    if (auto snaplen = p.uint("snaplen"))
        req.snaplen = static_cast<uint32_t>(std::min<uint64_t>(*snaplen, UINT32_MAX));
    req.promisc = p.boolean("promisc").value_or(true);
    if (auto f = p.str("format")) {
        auto format = capture::parse_format(*f);
        if (!format)
            throw Error(ErrorCode::InvalidArgument,
                        "unknown format " + quote(*f) + " (known formats: pcapng, pcap, socket)");
        req.format = *format;
    }
    req.buffer_size = p.uint("buffer_size");
    req.count = p.uint("count").value_or(0);
    captures_->validate(req); // bad values fail before polkit is asked
    // The raw socket can send frames: its own, stronger action.
    auto action = req.format == capture::Format::Socket ? auth::Action::CaptureRawSocket
                                                        : auth::Action::Capture;
    std::weak_ptr<Connection> weak = c;
    authorize(c, action, [this, weak, req](const auth::Caller& caller) {
        auto conn = weak.lock();
        if (!conn || !conn->open())
            return;
        Owner owner{"varlink", owner_id(*conn), caller.uid, caller.pid, caller.command};
        try {
            auto opened = captures_->open(req, owner);
            conn->reply({{"capture", opened.id}}, false, {opened.fd.release()});
        } catch (const Error& e) {
            send_error(*conn, e);
        }
    });
}

// ---------------------------------------------------------------- events

void PromiscVarlink::broadcast(const json& event) {
    json e = event;
    e["time"] = service_.realtime(service_.now());
    for (auto it = monitors_.begin(); it != monitors_.end();) {
        auto conn = it->second.lock();
        if (!conn || !conn->open()) {
            it = monitors_.erase(it);
            continue;
        }
        ++it;
        conn->reply({{"event", e}}, true);
    }
}

void PromiscVarlink::on_lease_granted(const Lease& l) {
    broadcast({{"type", "lease-granted"}, {"interface", l.interface}, {"lease", lease_json(l)}});
}

void PromiscVarlink::on_command(const Command& c) {
    if (const auto* s = std::get_if<LeaseStateChanged>(&c)) {
        const Lease* l = service_.arbiter().find(s->id);
        if (!l)
            return;
        if (auto it = watchers_.find(s->id); it != watchers_.end())
            if (auto conn = it->second.lock(); conn && conn->open())
                conn->reply({{"lease", lease_json(*l)}}, true);
        broadcast(
            {{"type", "lease-state"}, {"interface", l->interface}, {"lease", lease_json(*l)}});
    } else if (const auto* e = std::get_if<LeaseEnded>(&c)) {
        std::string reason(to_string(e->reason));
        if (auto it = watchers_.find(e->lease.id); it != watchers_.end()) {
            if (auto conn = it->second.lock(); conn && conn->open())
                conn->reply({{"lease", lease_json(e->lease)}, {"ended", reason}}, false);
            watchers_.erase(it);
        }
        broadcast({{"type", "lease-ended"},
                   {"interface", e->lease.interface},
                   {"lease", lease_json(e->lease)},
                   {"reason", reason}});
    } else if (const auto* f = std::get_if<SetFlag>(&c)) {
        broadcast({{"type", "flag"}, {"interface", f->name}, {"flag", f->on}, {"by", "promiscd"}});
    } else if (const auto* x = std::get_if<ExternalFlagChange>(&c)) {
        broadcast(
            {{"type", "flag"}, {"interface", x->name}, {"flag", x->on}, {"by", "another agent"}});
    } else if (const auto* k = std::get_if<ConflictDetected>(&c)) {
        broadcast({{"type", "conflict"}, {"interface", k->name}, {"clears", k->clears}});
    }
}

// ---------------------------------------------------------------- closing

void PromiscVarlink::closed(Connection& c) {
    auto range = tickets_.equal_range(c.id());
    std::vector<uint64_t> tickets;
    for (auto it = range.first; it != range.second; ++it)
        tickets.push_back(it->second);
    tickets_.erase(range.first, range.second);
    for (auto t : tickets)
        authorizer_.cancel(t);
    monitors_.erase(c.id());
    // Its leases end from the loop, never inside whatever closed it.
    gone_.push_back(owner_id(c));
    if (deferred_)
        sd_event_source_set_enabled(deferred_.get(), SD_EVENT_ONESHOT);
}

int PromiscVarlink::on_deferred(sd_event_source*, void* userdata) {
    auto* self = static_cast<PromiscVarlink*>(userdata);
    auto gone = std::move(self->gone_);
    self->gone_.clear();
    for (const auto& id : gone) {
        if (self->captures_)
            self->captures_->owner_gone("varlink", id);
        self->service_.owner_gone("varlink", id);
    }
    return 0;
}

} // namespace promiscd::varlink
