#include "ops/operations.hpp"

#include "core/names.hpp"
#include "log.hpp"
#include "net/netns.hpp"

#include <pwd.h>

namespace promiscd::ops {

using core::Error;
using core::ErrorCode;
using core::LeaseId;

namespace {

std::string key_of(const std::string& transport, const std::string& id) {
    return transport + '\n' + id;
}

// Whatever a service throws becomes the caller's error, never an exit.
template <typename F>
std::optional<Error> attempt(F&& f) {
    try {
        f();
        return std::nullopt;
    } catch (const Error& e) {
        return e;
    } catch (const std::exception& e) {
        log::error(std::string("request failed: ") + e.what());
        return Error(ErrorCode::Failed, e.what());
    }
}

// What polkit is told about a request in another network namespace, so a
// rule can allow a user the namespaces of their own containers only.
std::map<std::string, std::string> netns_details(const net::Netns& ns, const std::string& interface,
                                                 const char* operation) {
    std::map<std::string, std::string> d{{"netns", ns.spec},
                                         {"netns_inode", std::to_string(ns.inode)},
                                         {"interface", core::display_name(interface)},
                                         {"operation", operation}};
    if (ns.owner_uid) {
        d["netns_owner_uid"] = std::to_string(*ns.owner_uid);
        passwd pw{};
        passwd* found = nullptr;
        std::vector<char> buf(16384);
        if (::getpwuid_r(*ns.owner_uid, &pw, buf.data(), buf.size(), &found) == 0 && found)
            d["netns_owner_user"] = found->pw_name;
    }
    return d;
}

} // namespace

struct Operations::Pending {
    std::string key;
    uint64_t auth = 0;
    uint64_t open = 0;
    bool gone = false; // the caller left: never answer
};

Operations::Operations(service::LeaseService& leases, service::CaptureService* captures,
                       auth::Authorizer& authorizer, Audit& audit)
    : leases_(leases), captures_(captures), authorizer_(authorizer), audit_(audit) {}

Operations::~Operations() {
    for (auto& [k, p] : pending_) {
        p->gone = true;
        authorizer_.cancel(p->auth);
        if (captures_)
            captures_->cancel_open(p->open);
    }
}

Operations::PendingPtr Operations::track(const Caller& caller) {
    auto p = std::make_shared<Pending>();
    p->key = key_of(caller.transport, caller.id);
    pending_.emplace(p->key, p);
    return p;
}

void Operations::untrack(const PendingPtr& p) {
    auto range = pending_.equal_range(p->key);
    for (auto it = range.first; it != range.second; ++it)
        if (it->second == p) {
            pending_.erase(it);
            return;
        }
}

core::Revocation Operations::revocation_by(const Caller& caller, std::string message) const {
    return core::Revocation{core::describe(caller.owner()), caller.uid, std::move(message)};
}

void Operations::authorized(const Caller& caller, auth::Action action,
                            std::map<std::string, std::string> details,
                            std::function<void()> proceed,
                            std::function<void(const Error&)> refused) {
    auto p = track(caller);
    auto done = [this, p, proceed = std::move(proceed),
                 refused = std::move(refused)](const std::optional<Error>& denied) {
        if (p->gone)
            return;
        untrack(p);
        p->gone = true;
        if (denied)
            refused(*denied);
        else
            proceed();
    };
    uint64_t ticket = authorizer_.authorize(caller.for_auth(), action, details, std::move(done));
    if (!p->gone)
        p->auth = ticket;
}

void Operations::as_manager(const Caller& caller, const std::string& what,
                            std::map<std::string, std::string> details,
                            std::function<void()> proceed,
                            std::function<void(const Error&)> refused) {
    authorized(caller, auth::Action::Manage, std::move(details), std::move(proceed),
               [caller, what, refused = std::move(refused)](const Error& denied) {
                   // A limit is a limit; any other refusal says whose it is.
                   if (denied.code() == ErrorCode::LimitsExceeded)
                       refused(denied);
                   else
                       refused(Error(ErrorCode::NotOwner,
                                     what + " belongs to someone else, and uid " +
                                         std::to_string(caller.uid) +
                                         " may not manage others' leases and captures"));
               });
}

// ---------------------------------------------------------------- leases

void Operations::acquire(const Caller& caller, core::LeaseRequest request, Reply<LeaseId> reply) {
    request.owner = caller.owner();
    const Target target{request.interface, {}, {}};
    auto refuse = [this, caller, target, reply](const Error& e) {
        audit_.denied("acquire", caller, target, e);
        reply(e);
    };
    std::shared_ptr<net::Netns> ns;
    if (auto e = attempt([&] { ns = open_netns(request.netns, request.interface); }))
        return refuse(*e);
    if (ns) {
        // Another namespace: its own action; its links are known only once
        // promiscd watches it, which it does only for an authorized caller.
        core::LeaseRequest cheap = request;
        cheap.wait = true;
        if (auto e = attempt([&] { leases_.arbiter().check_acquire(cheap); }))
            return refuse(*e);
        auto details = netns_details(*ns, request.interface, "acquire");
        authorized(
            caller, auth::Action::Netns, std::move(details),
            [this, request, ns, reply, refuse]() mutable {
                LeaseId id = 0;
                if (auto e = attempt([&] {
                        const uint64_t inode = leases_.open_namespace(reopen(*ns));
                        request.interface = core::qualify(inode, request.interface);
                        leases_.arbiter().check_acquire(request);
                        id = leases_.acquire(request);
                    }))
                    return refuse(*e);
                reply(id);
            },
            refuse);
        return;
    }
    // What can be known without polkit fails before polkit is bothered.
    if (auto e = attempt([&] { leases_.arbiter().check_acquire(request); }))
        return refuse(*e);
    authorized(
        caller, auth::Action::Acquire, {{"interface", core::display_name(request.interface)}},
        [this, request, reply, refuse] {
            LeaseId id = 0;
            if (auto e = attempt([&] { id = leases_.acquire(request); }))
                return refuse(*e);
            reply(id);
        },
        refuse);
}

void Operations::release(const Caller& caller, LeaseId id, Reply<Unit> reply) {
    const core::Lease* lease = leases_.arbiter().find(id);
    Target target{lease ? lease->interface : "", id, {}};
    auto refuse = [this, caller, target, reply](const Error& e) {
        audit_.denied("release", caller, target, e);
        reply(e);
    };
    if (!lease) {
        if (auto e = attempt([&] { leases_.arbiter().get(id); }))
            return refuse(*e);
    }
    auto act = [this, id, reply, refuse](core::EndReason reason,
                                         std::optional<core::Revocation> by) {
        if (auto e = attempt([&] { leases_.release(id, reason, by); }))
            return refuse(*e);
        reply(Unit{});
    };
    if (caller.owns(lease->owner))
        return act(core::EndReason::Released, std::nullopt);
    as_manager(
        caller, "lease " + std::to_string(id),
        {{"lease", std::to_string(id)}, {"interface", core::display_name(lease->interface)}},
        [this, caller, act] { act(core::EndReason::Revoked, revocation_by(caller, "")); }, refuse);
}

void Operations::renew(const Caller& caller, LeaseId id, core::Usec ttl, Reply<Unit> reply) {
    const core::Lease* lease = leases_.arbiter().find(id);
    Target target{lease ? lease->interface : "", id, {}};
    auto refuse = [this, caller, target, reply](const Error& e) {
        audit_.denied("renew", caller, target, e);
        reply(e);
    };
    // The ttl is checked before anything else (and NoSuchLease names the id).
    if (auto e = attempt([&] { leases_.arbiter().preview_renew(id, ttl, leases_.now()); }))
        return refuse(*e);
    auto act = [this, id, ttl, reply, refuse] {
        if (auto e = attempt([&] { leases_.renew(id, ttl); }))
            return refuse(*e);
        reply(Unit{});
    };
    if (caller.owns(lease->owner))
        return act();
    as_manager(caller, "lease " + std::to_string(id),
               {{"lease", std::to_string(id)}, {"interface", core::display_name(lease->interface)}},
               act, refuse);
}

void Operations::revoke(const Caller& caller, LeaseId id, std::string reason, Reply<Unit> reply) {
    const core::Lease* lease = leases_.arbiter().find(id);
    Target target{lease ? lease->interface : "", id, {}};
    auto refuse = [this, caller, target, reply](const Error& e) {
        audit_.denied("revoke", caller, target, e);
        reply(e);
    };
    const size_t max = leases_.arbiter().limits().max_reason_length;
    if (reason.size() > max)
        return refuse(Error(ErrorCode::InvalidArgument,
                            "reason is longer than " + std::to_string(max) + " bytes"));
    if (!lease) {
        if (auto e = attempt([&] { leases_.arbiter().get(id); }))
            return refuse(*e);
    }
    if (caller.owns(lease->owner)) {
        // Revoking one's own lease is releasing it.
        if (auto e = attempt([&] { leases_.release(id, core::EndReason::Released); }))
            return refuse(*e);
        return reply(Unit{});
    }
    authorized(
        caller, auth::Action::Manage,
        {{"lease", std::to_string(id)}, {"interface", core::display_name(lease->interface)}},
        [this, caller, id, reason, reply, refuse] {
            if (auto e = attempt([&] {
                    leases_.release(id, core::EndReason::Revoked, revocation_by(caller, reason));
                }))
                return refuse(*e);
            reply(Unit{});
        },
        refuse);
}

void Operations::set_link_policy(const Caller& caller, std::string interface, core::Policy policy,
                                 Reply<Unit> reply) {
    Target target{interface, {}, {}};
    auto refuse = [this, caller, target, reply](const Error& e) {
        audit_.denied("set-link-policy", caller, target, e);
        reply(e);
    };
    auto link = leases_.arbiter().link_by_name(interface);
    if (!link)
        return refuse(Error(ErrorCode::NoSuchInterface,
                            "interface " + core::quote(interface) + " does not exist"));
    // Nothing would change: done, without bothering polkit.
    if (link->policy == policy)
        return reply(Unit{});
    authorized(
        caller, auth::Action::Manage,
        {{"interface", core::display_name(interface)},
         {"policy", std::string(core::to_string(policy))}},
        [this, interface, policy, reply, refuse] {
            if (auto e = attempt([&] { leases_.set_policy(interface, policy); }))
                return refuse(*e);
            log::notice("policy of " + core::display_name(interface) + " set to " +
                        std::string(core::to_string(policy)));
            reply(Unit{});
        },
        refuse);
}

// ---------------------------------------------------------------- captures

void Operations::open_capture(const Caller& caller, service::CaptureRequest request,
                              Reply<service::OpenedCapture> reply) {
    Target target{request.interface == service::kAnyInterface ? "" : request.interface, {}, {}};
    auto refuse = [this, caller, target, reply](const Error& e) {
        audit_.denied("open-capture", caller, target, e);
        reply(e);
    };
    if (!captures_)
        return refuse(Error(ErrorCode::Failed, "capture is not available in this daemon"));
    std::shared_ptr<net::Netns> ns;
    if (auto e = attempt([&] {
            captures_->validate(request);
            captures_->check_quota(caller.uid, request);
            ns = open_netns(request.netns, request.interface);
        }))
        return refuse(*e);
    if (ns) {
        auto details = netns_details(*ns, request.interface, "capture");
        details["format"] = std::string(service::to_string(request.format));
        authorized(
            caller, auth::Action::Netns, std::move(details),
            [this, caller, request, ns, reply, refuse]() mutable {
                if (request.format != service::CaptureFormat::Socket)
                    return open_netns_capture(caller, std::move(request), *ns, reply, refuse);
                // The raw socket can send frames there too: its own action
                // as well, as on promiscd's own links.
                auto raw = netns_details(*ns, request.interface, "capture");
                raw["format"] = "socket";
                authorized(
                    caller, auth::Action::CaptureRawSocket, std::move(raw),
                    [this, caller, request, ns, reply, refuse]() mutable {
                        open_netns_capture(caller, std::move(request), *ns, reply, refuse);
                    },
                    refuse);
            },
            refuse);
        return;
    }
    if (request.interface != service::kAnyInterface &&
        !leases_.arbiter().link_by_name(request.interface))
        return refuse(Error(ErrorCode::NoSuchInterface,
                            "interface " + core::quote(request.interface) + " does not exist"));
    // The raw socket can send frames: its own, stronger action. Either
    // action implies the lease that "promisc" takes.
    const auto action = request.format == service::CaptureFormat::Socket
                            ? auth::Action::CaptureRawSocket
                            : auth::Action::Capture;
    authorized(
        caller, action,
        {{"interface", core::display_name(request.interface)},
         {"format", std::string(service::to_string(request.format))}},
        [this, caller, request, reply, refuse] { start_capture(caller, request, reply, refuse); },
        refuse);
}

void Operations::open_netns_capture(const Caller& caller, service::CaptureRequest request,
                                    const net::Netns& ns, Reply<service::OpenedCapture> reply,
                                    std::function<void(const Error&)> refuse) {
    if (auto e = attempt([&] {
            request.netns_inode = leases_.open_namespace(reopen(ns));
            if (request.interface != service::kAnyInterface) {
                request.interface = core::qualify(request.netns_inode, request.interface);
                if (!leases_.arbiter().link_by_name(request.interface))
                    throw Error(ErrorCode::NoSuchInterface,
                                "interface " + core::describe_link(request.interface) +
                                    " does not exist");
            }
        }))
        return refuse(*e);
    start_capture(caller, std::move(request), reply, refuse);
}

void Operations::start_capture(const Caller& caller, service::CaptureRequest request,
                               Reply<service::OpenedCapture> reply,
                               std::function<void(const Error&)> refuse) {
    auto p = track(caller);
    uint64_t ticket =
        captures_->open(request, caller.owner(),
                        [this, p, reply, refuse](std::variant<service::OpenedCapture, Error> r) {
                            if (p->gone)
                                return; // the caller left meanwhile; nothing was opened for it
                            untrack(p);
                            p->gone = true;
                            if (auto* e = std::get_if<Error>(&r))
                                return refuse(*e);
                            reply(std::move(std::get<service::OpenedCapture>(r)));
                        });
    if (!p->gone)
        p->open = ticket;
}

std::shared_ptr<net::Netns> Operations::open_netns(const std::string& spec,
                                                   const std::string& interface) const {
    if (spec.empty())
        return nullptr;
    if (!namespaces_enabled_)
        throw Error(ErrorCode::Failed, "links of other network namespaces are switched off in "
                                       "promiscd's configuration (namespaces.enabled)");
    if (interface != service::kAnyInterface)
        core::validate_interface_name(interface);
    auto ns = std::make_shared<net::Netns>(net::open_netns(spec));
    if (ns->inode == leases_.own_namespace())
        return nullptr; // promiscd's own: as if none had been named
    // Not held open while polkit thinks: hundreds of checks may wait, and
    // each would keep two files open. reopen() finds it again.
    ns->fd.reset();
    ns->pidfd.reset();
    return ns;
}

net::Netns Operations::reopen(const net::Netns& named) {
    net::Netns ns = net::open_netns(named.spec);
    // Inode numbers are reused at once: the owner must be the same too.
    if (ns.inode != named.inode || ns.dev != named.dev || ns.owner_uid != named.owner_uid)
        throw Error(ErrorCode::Failed, "network namespace " + core::quote(named.spec) +
                                           " is another one than when it was authorized");
    return ns;
}

void Operations::stop_capture(const Caller& caller, service::CaptureId id, Reply<Unit> reply) {
    Target target{{}, {}, id};
    auto refuse = [this, caller, target, reply](const Error& e) {
        audit_.denied("stop-capture", caller, target, e);
        reply(e);
    };
    const service::CaptureInfo* c = captures_ ? captures_->find(id) : nullptr;
    if (!c)
        return refuse(Error(ErrorCode::NoSuchCapture,
                            "capture " + std::to_string(id) + " has ended or never existed"));
    target.link = c->interface;
    auto act = [this, id, reply] {
        // A capture already ending is stopped as well.
        captures_->stop(id);
        reply(Unit{});
    };
    if (caller.owns(c->owner))
        return act();
    as_manager(caller, "capture " + std::to_string(id), {{"capture", std::to_string(id)}}, act,
               refuse);
}

// ---------------------------------------------------------------- callers

void Operations::caller_gone(const std::string& transport, const std::string& id) {
    cancel_pending(transport, id);
    if (captures_)
        captures_->owner_gone(transport, id);
    leases_.owner_gone(transport, id);
}

void Operations::cancel_pending(const std::string& transport, const std::string& id) {
    auto range = pending_.equal_range(key_of(transport, id));
    std::vector<PendingPtr> gone;
    for (auto it = range.first; it != range.second; ++it)
        gone.push_back(it->second);
    pending_.erase(range.first, range.second);
    for (auto& p : gone) {
        p->gone = true;
        authorizer_.cancel(p->auth);
        if (captures_)
            captures_->cancel_open(p->open);
    }
}

} // namespace promiscd::ops
