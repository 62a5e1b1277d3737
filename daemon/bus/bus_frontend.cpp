#include "bus_frontend.hpp"

#include "config.h"
#include "log.hpp"
#include "promisc1_adaptor.h"
#include "raw_bus.hpp"

#include <ctime>
#include <sdbus-c++/sdbus-c++.h>
#include <systemd/sd-bus.h>

namespace promiscd::bus {

using namespace core;
namespace gen = ::org::promiscd::Promisc1;

namespace {

const std::string root_path = PROMISCD_OBJECT_PATH;
const std::string error_prefix = std::string(PROMISCD_BUS_NAME) + ".Error.";

bool allows_interactive(const sdbus::Message& m) {
    sd_bus_message* raw = raw_message(m);
    return raw && sd_bus_message_get_allow_interactive_authorization(raw) > 0;
}

struct OptionSpec {
    const char* name;
    const char* signature;
};

// Unknown keys and wrong types are errors that name the key, never ignored.
void check_options(const std::map<std::string, sdbus::Variant>& options,
                   std::initializer_list<OptionSpec> known) {
    for (const auto& [key, value] : options) {
        const OptionSpec* spec = nullptr;
        for (const auto& k : known)
            if (key == k.name)
                spec = &k;
        if (!spec) {
            std::string names;
            for (const auto& k : known)
                names += std::string(names.empty() ? "" : ", ") + k.name;
            throw Error(ErrorCode::InvalidArgument,
                        "unknown option " + quote(key) + " (known options: " + names + ")");
        }
        std::string type = value.peekValueType();
        if (type != spec->signature)
            throw Error(ErrorCode::InvalidArgument, "option " + quote(key) + " must be of type '" +
                                                        spec->signature + "', not '" + type + "'");
    }
}

template <typename T>
std::optional<T> option(const std::map<std::string, sdbus::Variant>& options, const char* key) {
    auto it = options.find(key);
    if (it == options.end())
        return std::nullopt;
    return it->second.get<T>();
}

Usec seconds_to_usec(uint64_t s) {
    return s > UINT64_MAX / usec_per_sec ? UINT64_MAX : s * usec_per_sec;
}

std::optional<LeaseId> parse_lease_path(const std::string& path) {
    const std::string prefix = root_path + "/lease/";
    if (path.compare(0, prefix.size(), prefix) != 0 || path.size() == prefix.size())
        return std::nullopt;
    LeaseId id = 0;
    for (size_t i = prefix.size(); i < path.size(); ++i) {
        char c = path[i];
        if (c < '0' || c > '9' || id > (UINT64_MAX - 9) / 10)
            return std::nullopt;
        id = id * 10 + static_cast<LeaseId>(c - '0');
    }
    return id;
}

} // namespace

sdbus::Error to_bus_error(const Error& e) {
    switch (e.code()) {
    case ErrorCode::AccessDenied:
        return sdbus::Error("org.freedesktop.DBus.Error.AccessDenied", e.what());
    case ErrorCode::InteractiveAuthorizationRequired:
        return sdbus::Error("org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
                            e.what());
    case ErrorCode::Failed:
        return sdbus::Error("org.freedesktop.DBus.Error.Failed", e.what());
    default:
        return sdbus::Error(error_prefix + std::string(error_name(e.code())), e.what());
    }
}

std::string BusFrontend::lease_path(LeaseId id) {
    return root_path + "/lease/" + std::to_string(id);
}
std::string BusFrontend::capture_path(capture::CaptureId id) {
    return root_path + "/capture/" + std::to_string(id);
}
std::string BusFrontend::link_path(int ifindex) {
    return root_path + "/link/" + std::to_string(ifindex);
}

uint64_t BusFrontend::realtime(Usec monotonic) const {
    return service_.realtime(monotonic);
}

// A request waiting for credentials or polkit; cancelled when its caller goes.
struct BusFrontend::Pending {
    std::string sender;
    bool cancelled = false;
    uint64_t ticket = 0;
};

// ---------------------------------------------------------------- objects

class BusFrontend::Root final
    : public sdbus::AdaptorInterfaces<gen::Manager_adaptor, sdbus::ObjectManager_adaptor> {
public:
    Root(sdbus::IConnection& c, BusFrontend& fe) : AdaptorInterfaces(c, root_path), fe_(fe) {
        registerAdaptor();
    }
    ~Root() { unregisterAdaptor(); }
    Root(const Root&) = delete;
    Root& operator=(const Root&) = delete;

private:
    void AcquireLease(sdbus::Result<sdbus::ObjectPath>&& result, std::string interface,
                      std::map<std::string, sdbus::Variant> options) override {
        auto res = std::make_shared<sdbus::Result<sdbus::ObjectPath>>(std::move(result));
        LeaseRequest req;
        try {
            validate_interface_name(interface);
            check_options(options, {{"ttl", "t"}, {"reason", "s"}, {"wait", "b"}});
            req.interface = interface;
            if (auto ttl = option<uint64_t>(options, "ttl"))
                req.ttl = seconds_to_usec(*ttl);
            req.reason = option<std::string>(options, "reason").value_or("");
            req.wait = option<bool>(options, "wait").value_or(false);
        } catch (const Error& e) {
            res->returnError(to_bus_error(e));
            return;
        }
        auto* fe = &fe_;
        fe_.with_caller(
            *getObject().getCurrentlyProcessedMessage(), auth::Action::Acquire,
            {{"interface", interface}},
            [fe, res, req](const auth::Caller& caller) mutable {
                req.owner = {"dbus", caller.subject.bus_name, caller.uid, caller.pid,
                             caller.command};
                try {
                    LeaseId id = fe->service().acquire(req);
                    fe->add_lease_object(id);
                    res->returnResults(sdbus::ObjectPath(lease_path(id)));
                } catch (const Error& e) {
                    fe->audit_denied(req, &caller, e.what());
                    res->returnError(to_bus_error(e));
                }
            },
            [fe, res, req, sender = getObject().getCurrentlyProcessedMessage()->getSender()](
                const sdbus::Error& e) {
                auto denied = req;
                denied.owner = {"dbus", sender, 0, 0, {}};
                fe->audit_denied(denied, nullptr, e.getMessage());
                res->returnError(e);
            });
    }

public:
    void conflict(const std::string& interface, unsigned clears) {
        emitConflict(interface, static_cast<uint32_t>(clears));
    }

private:
    void OpenCapture(sdbus::Result<sdbus::UnixFd, sdbus::ObjectPath>&& result,
                     std::string interface,
                     std::map<std::string, sdbus::Variant> options) override {
        capture::CaptureManager* captures = fe_.captures();
        if (!captures) {
            result.returnError(sdbus::Error("org.freedesktop.DBus.Error.NotSupported",
                                            "capture is not available in this daemon"));
            return;
        }
        auto res =
            std::make_shared<sdbus::Result<sdbus::UnixFd, sdbus::ObjectPath>>(std::move(result));
        capture::CaptureRequest req;
        try {
            check_options(options, {{"filter", "s"},
                                    {"snaplen", "u"},
                                    {"promisc", "b"},
                                    {"format", "s"},
                                    {"buffer_size", "u"},
                                    {"count", "t"}});
            req.interface = interface;
            req.filter = option<std::string>(options, "filter").value_or("");
            req.snaplen = option<uint32_t>(options, "snaplen").value_or(capture::kMaxSnaplen);
            req.promisc = option<bool>(options, "promisc").value_or(true);
            if (auto f = option<std::string>(options, "format")) {
                auto format = capture::parse_format(*f);
                if (!format)
                    throw Error(ErrorCode::InvalidArgument,
                                "unknown format " + quote(*f) +
                                    " (known formats: pcapng, pcap, socket)");
                req.format = *format;
            }
            if (auto size = option<uint32_t>(options, "buffer_size"))
                req.buffer_size = *size;
            req.count = option<uint64_t>(options, "count").value_or(0);
            // Bad values fail before polkit is bothered.
            captures->validate(req);
        } catch (const Error& e) {
            res->returnError(to_bus_error(e));
            return;
        }
        // The raw socket can send frames: its own, stronger action. Either
        // action implies the lease that "promisc" takes.
        auto action = req.format == capture::Format::Socket ? auth::Action::CaptureRawSocket
                                                            : auth::Action::Capture;
        auto* fe = &fe_;
        fe_.with_caller(
            *getObject().getCurrentlyProcessedMessage(), action,
            {{"interface", interface}, {"format", std::string(capture::to_string(req.format))}},
            [fe, res, req](const auth::Caller& caller) {
                Owner owner{"dbus", caller.subject.bus_name, caller.uid, caller.pid,
                            caller.command};
                try {
                    auto opened = fe->captures()->open(req, owner);
                    fe->add_capture_object(opened.id);
                    res->returnResults(sdbus::UnixFd(opened.fd.release(), sdbus::adopt_fd),
                                       sdbus::ObjectPath(capture_path(opened.id)));
                } catch (const Error& e) {
                    res->returnError(to_bus_error(e));
                }
            },
            [res](const sdbus::Error& e) { res->returnError(e); });
    }

    std::vector<sdbus::Struct<sdbus::ObjectPath, int32_t, std::string, bool, uint32_t, bool,
                              std::string, uint32_t, std::string>>
    ListLinks() override {
        std::vector<sdbus::Struct<sdbus::ObjectPath, int32_t, std::string, bool, uint32_t, bool,
                                  std::string, uint32_t, std::string>>
            out;
        for (const auto& v : fe_.service().arbiter().links())
            out.emplace_back(sdbus::ObjectPath(link_path(v.info.ifindex)), v.info.ifindex,
                             v.info.name, v.info.admin_flag, v.info.promiscuity,
                             v.info.promiscuity > 0, std::string(to_string(v.origin)), v.leases,
                             std::string(to_string(v.policy)));
        return out;
    }

    std::vector<sdbus::Struct<sdbus::ObjectPath, uint64_t, std::string, std::string, std::string,
                              uint32_t, uint32_t, std::string, std::string, uint64_t, uint64_t>>
    ListLeases() override {
        std::vector<
            sdbus::Struct<sdbus::ObjectPath, uint64_t, std::string, std::string, std::string,
                          uint32_t, uint32_t, std::string, std::string, uint64_t, uint64_t>>
            out;
        for (const auto& l : fe_.service().arbiter().leases())
            out.emplace_back(sdbus::ObjectPath(lease_path(l.id)), l.id, l.interface,
                             std::string(to_string(l.state)), l.owner.id, l.owner.uid, l.owner.pid,
                             l.owner.command, l.reason, fe_.realtime(l.acquired),
                             l.expires ? fe_.realtime(*l.expires) : 0);
        return out;
    }

    void RevokeLease(sdbus::Result<>&& result, sdbus::ObjectPath lease,
                     std::string reason) override {
        auto res = std::make_shared<sdbus::Result<>>(std::move(result));
        auto id = parse_lease_path(lease);
        try {
            if (!id)
                throw Error(ErrorCode::NoSuchLease, "no lease at object path " + quote(lease));
            fe_.service().arbiter().get(*id);
            if (reason.size() > fe_.service().arbiter().limits().max_reason_length)
                throw Error(ErrorCode::InvalidArgument, "reason is too long");
        } catch (const Error& e) {
            res->returnError(to_bus_error(e));
            return;
        }
        auto* fe = &fe_;
        fe_.with_caller(
            *getObject().getCurrentlyProcessedMessage(), auth::Action::Manage, {},
            [fe, res, id, reason](const auth::Caller& caller) {
                try {
                    log::notice("lease " + std::to_string(*id) + " revoked by uid " +
                                std::to_string(caller.uid) +
                                (reason.empty() ? "" : ": " + quote(reason)));
                    fe->service().release(*id, EndReason::Revoked);
                    res->returnResults();
                } catch (const Error& e) {
                    res->returnError(to_bus_error(e));
                }
            },
            [res](const sdbus::Error& e) { res->returnError(e); });
    }

    void SetLinkPolicy(sdbus::Result<>&& result, std::string interface,
                       std::string policy) override {
        auto res = std::make_shared<sdbus::Result<>>(std::move(result));
        std::optional<core::Policy> p;
        try {
            validate_interface_name(interface);
            p = parse_policy(policy);
            if (!p)
                throw Error(ErrorCode::InvalidArgument,
                            "unknown policy " + quote(policy) + " (expected 'enforce' or 'yield')");
            if (!fe_.service().arbiter().link_by_name(interface))
                throw Error(ErrorCode::NoSuchInterface,
                            "interface " + quote(interface) + " does not exist");
        } catch (const Error& e) {
            res->returnError(to_bus_error(e));
            return;
        }
        auto* fe = &fe_;
        fe_.with_caller(
            *getObject().getCurrentlyProcessedMessage(), auth::Action::Manage,
            {{"interface", interface}},
            [fe, res, interface, p](const auth::Caller&) {
                try {
                    fe->service().set_policy(interface, *p);
                    res->returnResults();
                } catch (const Error& e) {
                    res->returnError(to_bus_error(e));
                }
            },
            [res](const sdbus::Error& e) { res->returnError(e); });
    }

    BusFrontend& fe_;
};

class BusFrontend::LinkObject final
    : public sdbus::AdaptorInterfaces<gen::Link_adaptor, sdbus::ManagedObject_adaptor> {
public:
    LinkObject(sdbus::IConnection& c, const LinkView& v)
        : AdaptorInterfaces(c, link_path(v.info.ifindex)), v_(v) {
        registerAdaptor();
        emitInterfacesAddedSignal({gen::Link_adaptor::INTERFACE_NAME});
    }
    ~LinkObject() {
        try {
            emitInterfacesRemovedSignal({gen::Link_adaptor::INTERFACE_NAME});
        } catch (const sdbus::Error&) {
            // The bus is gone; nobody to tell.
        }
        unregisterAdaptor();
    }
    LinkObject(const LinkObject&) = delete;
    LinkObject& operator=(const LinkObject&) = delete;

    void update(const LinkView& v) {
        std::vector<std::string> changed;
        if (v.info.name != v_.info.name)
            changed.emplace_back("Name");
        if (v.info.admin_flag != v_.info.admin_flag)
            changed.emplace_back("AdminFlag");
        if (v.info.promiscuity != v_.info.promiscuity)
            changed.emplace_back("Promiscuity");
        if ((v.info.promiscuity > 0) != (v_.info.promiscuity > 0))
            changed.emplace_back("Promiscuous");
        if (v.origin != v_.origin)
            changed.emplace_back("Origin");
        if (v.leases != v_.leases)
            changed.emplace_back("Leases");
        if (v.policy != v_.policy)
            changed.emplace_back("Policy");
        v_ = v;
        if (!changed.empty())
            getObject().emitPropertiesChangedSignal(gen::Link_adaptor::INTERFACE_NAME, changed);
    }

private:
    std::string Name() override { return v_.info.name; }
    int32_t Index() override { return v_.info.ifindex; }
    bool AdminFlag() override { return v_.info.admin_flag; }
    uint32_t Promiscuity() override { return v_.info.promiscuity; }
    bool Promiscuous() override { return v_.info.promiscuity > 0; }
    std::string Origin() override { return std::string(to_string(v_.origin)); }
    uint32_t Leases() override { return v_.leases; }
    std::string Policy() override { return std::string(to_string(v_.policy)); }

    LinkView v_;
};

class BusFrontend::LeaseObject final
    : public sdbus::AdaptorInterfaces<gen::Lease_adaptor, sdbus::ManagedObject_adaptor> {
public:
    LeaseObject(sdbus::IConnection& c, BusFrontend& fe, const Lease& l)
        : AdaptorInterfaces(c, lease_path(l.id)), fe_(fe), lease_(l),
          acquired_(fe.realtime(l.acquired)) {
        registerAdaptor();
        emitInterfacesAddedSignal({gen::Lease_adaptor::INTERFACE_NAME});
    }
    ~LeaseObject() {
        try {
            emitInterfacesRemovedSignal({gen::Lease_adaptor::INTERFACE_NAME});
        } catch (const sdbus::Error&) {
            // The bus is gone; nobody to tell.
        }
        unregisterAdaptor();
    }
    LeaseObject(const LeaseObject&) = delete;
    LeaseObject& operator=(const LeaseObject&) = delete;

    void state_changed(LeaseState s) {
        lease_.state = s;
        getObject().emitPropertiesChangedSignal(gen::Lease_adaptor::INTERFACE_NAME, {"State"});
    }
    void ended(EndReason r) { emitEnded(std::string(to_string(r))); }

private:
    void Release(sdbus::Result<>&& result) override {
        auto res = std::make_shared<sdbus::Result<>>(std::move(result));
        auto* fe = &fe_;
        LeaseId id = lease_.id;
        fe_.with_lease_owner_or_manager(
            *getObject().getCurrentlyProcessedMessage(), id,
            [fe, res, id](const auth::Caller&, bool owner) {
                try {
                    // Copy first: releasing destroys this object.
                    auto r = res;
                    fe->service().release(id, owner ? EndReason::Released : EndReason::Revoked);
                    r->returnResults();
                } catch (const Error& e) {
                    res->returnError(to_bus_error(e));
                }
            },
            [res](const sdbus::Error& e) { res->returnError(e); });
    }

    void Renew(sdbus::Result<>&& result, uint64_t ttl) override {
        auto res = std::make_shared<sdbus::Result<>>(std::move(result));
        auto* fe = &fe_;
        LeaseId id = lease_.id;
        fe_.with_lease_owner_or_manager(
            *getObject().getCurrentlyProcessedMessage(), id,
            [fe, res, id, ttl](const auth::Caller&, bool) {
                try {
                    fe->service().renew(id, seconds_to_usec(ttl));
                    fe->leases_.at(id)->expires_changed();
                    res->returnResults();
                } catch (const Error& e) {
                    res->returnError(to_bus_error(e));
                }
            },
            [res](const sdbus::Error& e) { res->returnError(e); });
    }

public:
    void expires_changed() {
        if (const Lease* l = fe_.service().arbiter().find(lease_.id))
            lease_.expires = l->expires;
        getObject().emitPropertiesChangedSignal(gen::Lease_adaptor::INTERFACE_NAME, {"Expires"});
    }

private:
    std::string Interface() override { return lease_.interface; }
    std::string State() override { return std::string(to_string(lease_.state)); }
    std::string Owner() override { return lease_.owner.id; }
    uint32_t Uid() override { return lease_.owner.uid; }
    uint32_t Pid() override { return lease_.owner.pid; }
    std::string Reason() override { return lease_.reason; }
    uint64_t Acquired() override { return acquired_; }
    uint64_t Expires() override { return lease_.expires ? fe_.realtime(*lease_.expires) : 0; }

    BusFrontend& fe_;
    Lease lease_;
    uint64_t acquired_;
};

class BusFrontend::CaptureObject final
    : public sdbus::AdaptorInterfaces<gen::Capture_adaptor, sdbus::ManagedObject_adaptor> {
public:
    CaptureObject(sdbus::IConnection& c, BusFrontend& fe, const capture::CaptureInfo& info)
        : AdaptorInterfaces(c, capture_path(info.id)), fe_(fe), info_(info) {
        registerAdaptor();
        emitInterfacesAddedSignal({gen::Capture_adaptor::INTERFACE_NAME});
    }
    ~CaptureObject() {
        try {
            emitInterfacesRemovedSignal({gen::Capture_adaptor::INTERFACE_NAME});
        } catch (const sdbus::Error&) {
            // The bus is gone; nobody to tell.
        }
        unregisterAdaptor();
    }
    CaptureObject(const CaptureObject&) = delete;
    CaptureObject& operator=(const CaptureObject&) = delete;

    void counters_changed(const capture::RelayCounters& c) {
        std::vector<std::string> changed;
        if (c.packets != info_.counters.packets)
            changed.emplace_back("Packets");
        if (c.bytes != info_.counters.bytes)
            changed.emplace_back("Bytes");
        if (c.drops != info_.counters.drops)
            changed.emplace_back("Drops");
        info_.counters = c;
        if (!changed.empty())
            getObject().emitPropertiesChangedSignal(gen::Capture_adaptor::INTERFACE_NAME, changed);
    }
    void finished(capture::FinishReason r) { emitFinished(std::string(capture::to_string(r))); }

private:
    void Stop(sdbus::Result<>&& result) override {
        auto res = std::make_shared<sdbus::Result<>>(std::move(result));
        auto* fe = &fe_;
        capture::CaptureId id = info_.id;
        fe_.with_capture_owner_or_manager(
            *getObject().getCurrentlyProcessedMessage(), id,
            [fe, res, id](const auth::Caller&) {
                // Copy first: stopping may finish the capture, and with it
                // this object, at once. A capture already ending is stopped.
                auto r = res;
                fe->captures()->stop(id);
                r->returnResults();
            },
            [res](const sdbus::Error& e) { res->returnError(e); });
    }

    // Counters are read when asked, so a Get is never behind the signals.
    capture::RelayCounters live() {
        if (auto c = fe_.captures() ? fe_.captures()->counters(info_.id) : std::nullopt)
            return *c;
        return info_.counters;
    }
    std::string Interface() override { return info_.interface; }
    std::string Filter() override { return info_.filter; }
    std::string Format() override { return std::string(capture::to_string(info_.format)); }
    uint64_t Packets() override { return live().packets; }
    uint64_t Bytes() override { return live().bytes; }
    uint64_t Drops() override { return live().drops; }

    BusFrontend& fe_;
    capture::CaptureInfo info_;
};

// ---------------------------------------------------------------- front end

BusFrontend::BusFrontend(Service& service, sdbus::IConnection& connection,
                         PeerCredentials& credentials, auth::Authorizer& authorizer,
                         capture::CaptureManager* captures)
    : service_(service), connection_(connection), credentials_(credentials),
      authorizer_(authorizer), captures_(captures) {
    // Watch owners before anything can be granted, so no disconnect is missed.
    name_owner_slot_ = connection_.addMatch(
        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
        "interface='org.freedesktop.DBus',member='NameOwnerChanged'",
        [this](sdbus::Message& msg) { on_name_owner_changed(msg); });
    root_ = std::make_unique<Root>(connection_, *this);
    service_.add_listener(this);
    if (captures_)
        captures_->add_listener(this);
}

BusFrontend::~BusFrontend() {
    if (captures_)
        captures_->remove_listener(this);
    service_.remove_listener(this);
    reaper_.reset();
    doomed_captures_.clear();
    capture_objects_.clear();
    doomed_leases_.clear();
    doomed_links_.clear();
    leases_.clear();
    links_.clear();
    root_.reset();
}

void BusFrontend::publish() {
    for (const auto& v : service_.arbiter().links())
        on_link_changed(v);
    for (const auto& l : service_.arbiter().leases())
        add_lease_object(l.id);
}

void BusFrontend::add_lease_object(LeaseId id) {
    const Lease* l = service_.arbiter().find(id);
    if (!l || leases_.count(id))
        return;
    try {
        leases_.emplace(id, std::make_unique<LeaseObject>(connection_, *this, *l));
    } catch (const sdbus::Error& e) {
        log::warning("cannot publish lease " + std::to_string(id) +
                     " on the bus: " + e.getMessage());
    }
}

void BusFrontend::add_capture_object(capture::CaptureId id) {
    const capture::CaptureInfo* c = captures_ ? captures_->find(id) : nullptr;
    if (!c || capture_objects_.count(id))
        return;
    try {
        capture_objects_.emplace(id, std::make_unique<CaptureObject>(connection_, *this, *c));
    } catch (const sdbus::Error& e) {
        log::warning("cannot publish capture " + std::to_string(id) +
                     " on the bus: " + e.getMessage());
    }
}

void BusFrontend::on_capture_counters(const capture::CaptureInfo& c) {
    if (auto it = capture_objects_.find(c.id); it != capture_objects_.end()) {
        try {
            it->second->counters_changed(c.counters);
        } catch (const sdbus::Error& e) {
            log::warning("cannot publish a change on the bus: " + e.getMessage());
        }
    }
}

void BusFrontend::on_capture_finished(const capture::CaptureInfo& c, capture::FinishReason reason) {
    auto it = capture_objects_.find(c.id);
    if (it == capture_objects_.end())
        return;
    try {
        it->second->counters_changed(c.counters);
        it->second->finished(reason);
    } catch (const sdbus::Error& e) {
        log::warning("cannot publish a change on the bus: " + e.getMessage());
    }
    // Finished first, InterfacesRemoved when the object is reaped: a capture
    // may end inside its own Stop().
    doomed_captures_.push_back(std::move(it->second));
    capture_objects_.erase(it);
    schedule_reap();
}

void BusFrontend::refresh_link(const std::string& name) {
    if (auto v = service_.arbiter().link_by_name(name))
        on_link_changed(*v);
}

void BusFrontend::on_command(const Command& c) {
    // A failing emit (the bus went away) must not stop the service from
    // carrying out the rest of its commands.
    try {
        apply(c);
    } catch (const sdbus::Error& e) {
        log::warning("cannot publish a change on the bus: " + e.getMessage());
    }
}

void BusFrontend::apply(const Command& c) {
    if (const auto* e = std::get_if<LeaseEnded>(&c)) {
        if (auto it = leases_.find(e->lease.id); it != leases_.end()) {
            it->second->ended(e->reason);
            doomed_leases_.push_back(std::move(it->second));
            leases_.erase(it);
            schedule_reap();
        }
        refresh_link(e->lease.interface);
    } else if (const auto* s = std::get_if<LeaseStateChanged>(&c)) {
        if (auto it = leases_.find(s->id); it != leases_.end())
            it->second->state_changed(s->to);
        if (const Lease* l = service_.arbiter().find(s->id))
            refresh_link(l->interface);
    } else if (const auto* f = std::get_if<SetFlag>(&c)) {
        refresh_link(f->name);
    } else if (const auto* k = std::get_if<ConflictDetected>(&c)) {
        root_->conflict(k->name, k->clears);
    }
}

void BusFrontend::audit_denied(const LeaseRequest& req, const auth::Caller* caller,
                               const std::string& why) {
    Owner o = req.owner;
    if (caller) {
        o.uid = caller->uid;
        o.pid = caller->pid;
        o.command = caller->command;
    }
    log::audit(log::Level::Notice, log::id::lease_denied,
               "lease on " + req.interface + " refused to " + (caller ? describe(o) : o.id) + ": " +
                   why,
               {{"PROMISCD_LINK", req.interface},
                {"PROMISCD_OWNER", o.id},
                {"PROMISCD_OWNER_UID", caller ? std::to_string(o.uid) : std::string()},
                {"PROMISCD_OWNER_PID", caller ? std::to_string(o.pid) : std::string()},
                {"PROMISCD_OWNER_COMM", o.command},
                {"PROMISCD_REASON", why}});
}

void BusFrontend::on_link_changed(const LinkView& v) {
    try {
        auto it = links_.find(v.info.ifindex);
        if (it == links_.end())
            links_.emplace(v.info.ifindex, std::make_unique<LinkObject>(connection_, v));
        else
            it->second->update(v);
    } catch (const sdbus::Error& e) {
        log::warning("cannot publish link " + v.info.name + " on the bus: " + e.getMessage());
    }
}

void BusFrontend::on_link_removed(int ifindex, const std::string& /*name*/) {
    if (auto it = links_.find(ifindex); it != links_.end()) {
        doomed_links_.push_back(std::move(it->second));
        links_.erase(it);
        schedule_reap();
    }
}

void BusFrontend::schedule_reap() {
    if (!reaper_) {
        sd_event_source* s = nullptr;
        if (sd_event_add_defer(service_.event(), &s, &BusFrontend::on_reap, this) < 0) {
            // Cannot defer: better a late unregistration than none.
            return;
        }
        reaper_.reset(s);
        sd_event_source_set_description(s, "bus-object-reaper");
    }
    sd_event_source_set_enabled(reaper_.get(), SD_EVENT_ONESHOT);
}

int BusFrontend::on_reap(sd_event_source*, void* userdata) {
    auto* self = static_cast<BusFrontend*>(userdata);
    self->doomed_leases_.clear();
    self->doomed_links_.clear();
    self->doomed_captures_.clear();
    return 0;
}

void BusFrontend::on_name_owner_changed(sdbus::Message& msg) {
    std::string name, old_owner, new_owner;
    msg >> name >> old_owner >> new_owner;
    if (name.empty() || name[0] != ':' || !new_owner.empty())
        return;
    // The caller is gone: its pending checks are cancelled (nothing granted),
    // its leases end.
    auto range = pending_.equal_range(name);
    for (auto it = range.first; it != range.second; ++it) {
        it->second->cancelled = true;
        authorizer_.cancel(it->second->ticket);
    }
    pending_.erase(range.first, range.second);
    credentials_.forget(name);
    if (captures_)
        captures_->owner_gone("dbus", name);
    service_.owner_gone("dbus", name);
}

void BusFrontend::with_caller(const sdbus::Message& msg, std::optional<auth::Action> action,
                              const std::map<std::string, std::string>& details, Proceed proceed,
                              Fail fail) {
    auto pending = std::make_shared<Pending>();
    pending->sender = msg.getSender();
    bool interactive = allows_interactive(msg);
    pending_.emplace(pending->sender, pending);
    auto done = [this, pending]() { forget(pending); };
    credentials_.lookup(pending->sender, [this, pending, interactive, action, details, proceed,
                                          fail,
                                          done](const sdbus::Error* error, const PeerInfo& peer) {
        if (pending->cancelled)
            return;
        if (error) {
            done();
            fail(sdbus::Error("org.freedesktop.DBus.Error.AccessDenied",
                              "cannot identify the caller " + pending->sender + ": " +
                                  error->getMessage()));
            return;
        }
        auth::Caller caller;
        caller.subject.kind = auth::Subject::Kind::BusName;
        caller.subject.bus_name = pending->sender;
        caller.uid = peer.uid;
        caller.pid = peer.pid;
        caller.command = peer.command;
        caller.interactive = interactive;
        if (!action) {
            done();
            proceed(caller);
            return;
        }
        pending->ticket = authorizer_.authorize(
            caller, *action, details,
            [pending, caller, proceed, fail, done](const std::optional<Error>& denied) {
                if (pending->cancelled)
                    return;
                done();
                if (denied)
                    fail(to_bus_error(*denied));
                else
                    proceed(caller);
            });
    });
}

void BusFrontend::forget(const std::shared_ptr<Pending>& pending) {
    auto range = pending_.equal_range(pending->sender);
    for (auto it = range.first; it != range.second; ++it)
        if (it->second == pending) {
            pending_.erase(it);
            return;
        }
}

void BusFrontend::require_manager(const auth::Caller& caller, const std::string& what,
                                  std::function<void()> proceed, Fail fail) {
    // Not the owner: only a manager may, checked with the caller's own subject.
    auto pending = std::make_shared<Pending>();
    pending->sender = caller.subject.bus_name;
    pending_.emplace(pending->sender, pending);
    pending->ticket = authorizer_.authorize(
        caller, auth::Action::Manage, {},
        [this, pending, uid = caller.uid, what, proceed, fail](const std::optional<Error>& denied) {
            if (pending->cancelled)
                return;
            forget(pending);
            if (denied)
                fail(to_bus_error(
                    Error(ErrorCode::NotOwner, what + " belongs to someone else, and uid " +
                                                   std::to_string(uid) +
                                                   " may not manage others' leases and captures")));
            else
                proceed();
        });
}

void BusFrontend::with_lease_owner_or_manager(
    const sdbus::Message& msg, LeaseId id,
    std::function<void(const auth::Caller&, bool owner)> proceed, Fail fail) {
    with_caller(
        msg, std::nullopt, {},
        [this, id, proceed, fail](const auth::Caller& caller) {
            const Lease* l = service_.arbiter().find(id);
            if (!l) {
                try {
                    service_.arbiter().get(id);
                } catch (const Error& e) {
                    fail(to_bus_error(e));
                }
                return;
            }
            if (l->owner.transport == "dbus" && l->owner.id == caller.subject.bus_name) {
                proceed(caller, true);
                return;
            }
            require_manager(
                caller, "lease " + std::to_string(id),
                [caller, proceed] { proceed(caller, false); }, fail);
        },
        fail);
}

void BusFrontend::with_capture_owner_or_manager(const sdbus::Message& msg, capture::CaptureId id,
                                                Proceed proceed, Fail fail) {
    with_caller(
        msg, std::nullopt, {},
        [this, id, proceed, fail](const auth::Caller& caller) {
            const capture::CaptureInfo* c = captures_ ? captures_->find(id) : nullptr;
            if (!c) {
                fail(sdbus::Error("org.freedesktop.DBus.Error.UnknownObject",
                                  "capture " + std::to_string(id) + " has ended"));
                return;
            }
            if (c->owner.transport == "dbus" && c->owner.id == caller.subject.bus_name) {
                proceed(caller);
                return;
            }
            require_manager(
                caller, "capture " + std::to_string(id), [caller, proceed] { proceed(caller); },
                fail);
        },
        fail);
}

} // namespace promiscd::bus
