#include "bus/bus_frontend.hpp"

#include "bus/raw_bus.hpp"
#include "config.h"
#include "core/names.hpp"
#include "log.hpp"
#include "promisc1_adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

namespace promiscd::bus {

using core::Error;
using core::ErrorCode;
using core::LeaseId;
namespace gen = ::org::promiscd::Promisc1;

namespace {

const std::string root_path = PROMISCD_OBJECT_PATH;
const std::string error_prefix = std::string(PROMISCD_BUS_NAME) + ".Error.";

bool allows_interactive(const sdbus::Message& m) {
    sd_bus_message* raw = raw_message(m);
    return raw && sd_bus_message_get_allow_interactive_authorization(raw) > 0;
}

std::optional<uint64_t> id_in_path(const std::string& path, const std::string& kind) {
    const std::string prefix = root_path + "/" + kind + "/";
    if (path.compare(0, prefix.size(), prefix) != 0 || path.size() == prefix.size() ||
        path.size() - prefix.size() > 19)
        return std::nullopt;
    uint64_t id = 0;
    for (size_t i = prefix.size(); i < path.size(); ++i) {
        char c = path[i];
        if (c < '0' || c > '9')
            return std::nullopt;
        id = id * 10 + static_cast<uint64_t>(c - '0');
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
    case ErrorCode::LimitsExceeded:
        return sdbus::Error("org.freedesktop.DBus.Error.LimitsExceeded", e.what());
    default:
        return sdbus::Error(error_prefix + std::string(error_name(e.code())), e.what());
    }
}

std::string lease_path(LeaseId id) {
    return root_path + "/lease/" + std::to_string(id);
}
std::string capture_path(service::CaptureId id) {
    return root_path + "/capture/" + std::to_string(id);
}
std::string link_path(int ifindex) {
    return root_path + "/link/" + std::to_string(ifindex);
}

// ---------------------------------------------------------------- the root

class BusFrontend::Root final
    : public sdbus::AdaptorInterfaces<gen::Manager_adaptor, sdbus::ObjectManager_adaptor> {
public:
    Root(sdbus::IConnection& c, BusFrontend& fe) : AdaptorInterfaces(c, root_path), fe_(fe) {
        registerAdaptor();
    }
    ~Root() { unregisterAdaptor(); }
    Root(const Root&) = delete;
    Root& operator=(const Root&) = delete;

    void conflict(const std::string& interface, unsigned clears) {
        emitConflict(interface, static_cast<uint32_t>(clears));
    }
    void flag_changed(const std::string& interface, bool on, const std::string& by) {
        emitFlagChanged(interface, on, by);
    }

private:
    const sdbus::Message& message() { return *getObject().getCurrentlyProcessedMessage(); }

    void AcquireLease(sdbus::Result<sdbus::ObjectPath>&& result, std::string interface,
                      std::map<std::string, sdbus::Variant> options) override {
        auto res = std::make_shared<sdbus::Result<sdbus::ObjectPath>>(std::move(result));
        core::LeaseRequest req;
        try {
            req = ops::decode_acquire(interface, options_from(options));
        } catch (const Error& e) {
            return res->returnError(to_bus_error(e));
        }
        fe_.with_caller(
            message(),
            [fe = &fe_, res, req](const ops::Caller& caller) {
                fe->ops_.acquire(caller, req, [res](ops::Result<LeaseId> r) {
                    if (auto* e = std::get_if<Error>(&r))
                        return res->returnError(to_bus_error(*e));
                    res->returnResults(sdbus::ObjectPath(lease_path(std::get<LeaseId>(r))));
                });
            },
            [res](const sdbus::Error& e) { res->returnError(e); });
    }

    void OpenCapture(sdbus::Result<sdbus::UnixFd, sdbus::ObjectPath>&& result,
                     std::string interface,
                     std::map<std::string, sdbus::Variant> options) override {
        auto res =
            std::make_shared<sdbus::Result<sdbus::UnixFd, sdbus::ObjectPath>>(std::move(result));
        service::CaptureRequest req;
        try {
            req = ops::decode_capture(interface, options_from(options));
        } catch (const Error& e) {
            return res->returnError(to_bus_error(e));
        }
        fe_.with_caller(
            message(),
            [fe = &fe_, res, req](const ops::Caller& caller) {
                fe->ops_.open_capture(caller, req, [res](ops::Result<service::OpenedCapture> r) {
                    if (auto* e = std::get_if<Error>(&r))
                        return res->returnError(to_bus_error(*e));
                    auto& opened = std::get<service::OpenedCapture>(r);
                    res->returnResults(sdbus::UnixFd(opened.fd.release(), sdbus::adopt_fd),
                                       sdbus::ObjectPath(capture_path(opened.id)));
                });
            },
            [res](const sdbus::Error& e) { res->returnError(e); });
    }

    std::vector<sdbus::Struct<sdbus::ObjectPath, int32_t, std::string, bool, uint32_t, bool,
                              std::string, uint32_t, std::string>>
    ListLinks() override {
        std::vector<sdbus::Struct<sdbus::ObjectPath, int32_t, std::string, bool, uint32_t, bool,
                                  std::string, uint32_t, std::string>>
            out;
        const auto links = fe_.ops_.leases().arbiter().links();
        out.reserve(links.size());
        for (const auto& v : links)
            out.emplace_back(sdbus::ObjectPath(link_path(v.info.ifindex)),
                             v.info.netns ? v.info.netns_ifindex : v.info.ifindex,
                             core::display_name(core::split_link(v.info.name).name),
                             v.info.admin_flag, v.info.promiscuity, v.info.promiscuity > 0,
                             std::string(to_string(v.origin)), v.leases,
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
        auto& leases = fe_.ops_.leases();
        out.reserve(leases.arbiter().lease_count());
        for (const auto& [id, l] : leases.arbiter().lease_table())
            out.emplace_back(sdbus::ObjectPath(lease_path(l.id)), l.id,
                             core::display_name(core::split_link(l.interface).name),
                             std::string(to_string(l.state)), core::label(l.owner), l.owner.uid,
                             l.owner.pid, core::display_name(l.owner.command), l.reason,
                             leases.realtime(l.acquired),
                             l.expires ? leases.realtime(*l.expires) : 0);
        return out;
    }

    void RevokeLease(sdbus::Result<>&& result, sdbus::ObjectPath lease,
                     std::string reason) override {
        auto res = std::make_shared<sdbus::Result<>>(std::move(result));
        auto id = id_in_path(lease, "lease");
        if (!id)
            return res->returnError(to_bus_error(
                Error(ErrorCode::NoSuchLease, "there is no lease at " + core::quote(lease))));
        fe_.with_caller(
            message(),
            [fe = &fe_, res, id = *id, reason](const ops::Caller& caller) {
                fe->ops_.revoke(caller, id, reason, [res](ops::Result<ops::Unit> r) {
                    if (auto* e = std::get_if<Error>(&r))
                        return res->returnError(to_bus_error(*e));
                    res->returnResults();
                });
            },
            [res](const sdbus::Error& e) { res->returnError(e); });
    }

    void SetLinkPolicy(sdbus::Result<>&& result, std::string interface,
                       std::string policy) override {
        auto res = std::make_shared<sdbus::Result<>>(std::move(result));
        std::string name;
        core::Policy p{};
        try {
            name = ops::decode_interface(interface);
            p = ops::decode_policy(policy);
        } catch (const Error& e) {
            return res->returnError(to_bus_error(e));
        }
        fe_.with_caller(
            message(),
            [fe = &fe_, res, name, p](const ops::Caller& caller) {
                fe->ops_.set_link_policy(caller, name, p, [res](ops::Result<ops::Unit> r) {
                    if (auto* e = std::get_if<Error>(&r))
                        return res->returnError(to_bus_error(*e));
                    res->returnResults();
                });
            },
            [res](const sdbus::Error& e) { res->returnError(e); });
    }

    BusFrontend& fe_;
};

// ---------------------------------------------------------------- front end

BusFrontend::BusFrontend(sdbus::IConnection& connection, PeerCredentials& credentials,
                         BusGuard* guard, ops::Operations& operations)
    : connection_(connection), credentials_(credentials), guard_(guard), ops_(operations) {
    // Watch owners before anything can be granted, so no disconnect is missed.
    name_owner_slot_ = connection_.addMatch(
        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
        "interface='org.freedesktop.DBus',member='NameOwnerChanged'",
        [this](sdbus::Message& msg) { on_name_owner_changed(msg); });
    root_ = std::make_unique<Root>(connection_, *this);
}

BusFrontend::~BusFrontend() {
    root_.reset();
}

void BusFrontend::emit_conflict(const std::string& interface, unsigned clears) {
    root_->conflict(interface, clears);
}

void BusFrontend::emit_flag_changed(const std::string& interface, bool on, const std::string& by) {
    root_->flag_changed(interface, on, by);
}

void BusFrontend::with_caller(const sdbus::Message& msg, Proceed proceed, Fail fail) {
    with_caller(msg.getSender(), allows_interactive(msg), std::move(proceed), std::move(fail));
}

void BusFrontend::with_caller(const std::string& sender, bool interactive, Proceed proceed,
                              Fail fail) {
    credentials_.lookup(sender,
                        [sender, interactive, proceed = std::move(proceed),
                         fail = std::move(fail)](const sdbus::Error* error, const PeerInfo& peer) {
                            if (error) {
                                if (error->getName() == "org.freedesktop.DBus.Error.LimitsExceeded")
                                    return fail(*error);
                                return fail(sdbus::Error("org.freedesktop.DBus.Error.AccessDenied",
                                                         "cannot identify the caller " + sender +
                                                             ": " + error->getMessage()));
                            }
                            ops::Caller caller;
                            caller.transport = "dbus";
                            caller.id = sender;
                            caller.uid = peer.uid;
                            caller.pid = peer.pid;
                            caller.command = peer.command;
                            caller.subject.kind = auth::Subject::Kind::BusName;
                            caller.subject.bus_name = sender;
                            caller.interactive = interactive;
                            proceed(caller);
                        });
}

void BusFrontend::on_name_owner_changed(sdbus::Message& msg) {
    std::string name, old_owner, new_owner;
    msg >> name >> old_owner >> new_owner;
    if (name.empty() || name[0] != ':' || !new_owner.empty())
        return;
    // The caller is gone: what it waited for is dropped (nothing granted),
    // its leases and captures end.
    credentials_.forget(name);
    if (guard_)
        guard_->forget(name);
    ops_.caller_gone("dbus", name);
}

namespace {

// A call on one of the fallback-vtable objects, answered once, later.
class RawCall {
public:
    explicit RawCall(sd_bus_message* m) : m_(sd_bus_message_ref(m)) {}
    ~RawCall() { sd_bus_message_unref(m_); }
    RawCall(const RawCall&) = delete;
    RawCall& operator=(const RawCall&) = delete;
    std::string sender() const {
        const char* s = sd_bus_message_get_sender(m_);
        return s ? s : "";
    }
    bool interactive() const { return sd_bus_message_get_allow_interactive_authorization(m_) > 0; }
    void ok() { sd_bus_reply_method_return(m_, ""); }
    void fail(const sdbus::Error& e) {
        sd_bus_error err = SD_BUS_ERROR_NULL;
        sd_bus_error_set(&err, e.getName().c_str(), e.getMessage().c_str());
        sd_bus_reply_method_error(m_, &err);
        sd_bus_error_free(&err);
    }
    void answer(const ops::Result<ops::Unit>& r) {
        if (auto* e = std::get_if<Error>(&r))
            return fail(to_bus_error(*e));
        ok();
    }

private:
    sd_bus_message* m_;
};

} // namespace

void BusFrontend::lease_release(sd_bus_message* m, LeaseId id) {
    auto call = std::make_shared<RawCall>(m);
    with_caller(
        call->sender(), call->interactive(),
        [this, call, id](const ops::Caller& caller) {
            ops_.release(caller, id, [call](ops::Result<ops::Unit> r) { call->answer(r); });
        },
        [call](const sdbus::Error& e) { call->fail(e); });
}

void BusFrontend::lease_renew(sd_bus_message* m, LeaseId id, uint64_t ttl) {
    auto call = std::make_shared<RawCall>(m);
    with_caller(
        call->sender(), call->interactive(),
        [this, call, id, ttl](const ops::Caller& caller) {
            ops_.renew(caller, id, ops::decode_ttl(ttl),
                       [call](ops::Result<ops::Unit> r) { call->answer(r); });
        },
        [call](const sdbus::Error& e) { call->fail(e); });
}

void BusFrontend::capture_stop(sd_bus_message* m, service::CaptureId id) {
    auto call = std::make_shared<RawCall>(m);
    with_caller(
        call->sender(), call->interactive(),
        [this, call, id](const ops::Caller& caller) {
            ops_.stop_capture(caller, id, [call](ops::Result<ops::Unit> r) { call->answer(r); });
        },
        [call](const sdbus::Error& e) { call->fail(e); });
}

} // namespace promiscd::bus
