#include "polkit_authority.hpp"

#include <sdbus-c++/Error.h>
#include <sdbus-c++/Types.h>
#include <unistd.h>

namespace promiscd::auth {

namespace {

constexpr const char* authority_name = "org.freedesktop.PolicyKit1";
constexpr const char* authority_path = "/org/freedesktop/PolicyKit1/Authority";
constexpr const char* authority_iface = "org.freedesktop.PolicyKit1.Authority";
constexpr uint32_t allow_user_interaction = 1;

// A password prompt may take a while; a plain check should not.
constexpr std::chrono::microseconds interactive_timeout = std::chrono::minutes(5);
constexpr std::chrono::microseconds plain_timeout = std::chrono::seconds(25);

using SubjectArg = sdbus::Struct<std::string, std::map<std::string, sdbus::Variant>>;
using ResultArg = sdbus::Struct<bool, bool, std::map<std::string, std::string>>;

// Only the bus driver's "nobody has that name" means polkit is not there.
// A timeout, a refusal by the bus (LimitsExceeded, AccessDenied) or an error
// from polkit itself says nothing about who may do what: fail closed.
bool means_not_on_bus(const std::string& name) {
    return name == "org.freedesktop.DBus.Error.ServiceUnknown" ||
           name == "org.freedesktop.DBus.Error.NameHasNoOwner";
}

} // namespace

PolkitAuthority::PolkitAuthority(sdbus::IConnection& connection)
    : proxy_(sdbus::createProxy(connection, authority_name, authority_path)),
      id_prefix_("promiscd-" + std::to_string(::getpid()) + "-") {
    proxy_->finishRegistration();
}

PolkitAuthority::~PolkitAuthority() = default;

uint64_t PolkitAuthority::check(const Subject& subject, const std::string& action,
                                const std::map<std::string, std::string>& details, bool interactive,
                                Callback done) {
    uint64_t ticket = next_ticket_++;
    SubjectArg subj;
    if (subject.kind == Subject::Kind::BusName) {
        subj = SubjectArg("system-bus-name", {{"name", sdbus::Variant(subject.bus_name)}});
    } else {
        subj = SubjectArg("unix-process",
                          {{"pid", sdbus::Variant(subject.pid)},
                           {"start-time", sdbus::Variant(subject.start_time)},
                           {"uid", sdbus::Variant(static_cast<int32_t>(subject.uid))}});
    }
    Pending p{std::move(done), id_prefix_ + std::to_string(ticket)};
    std::string cancellation_id = p.cancellation_id;
    pending_.emplace(ticket, std::move(p));
    try {
        proxy_->callMethodAsync("CheckAuthorization")
            .onInterface(authority_iface)
            .withTimeout(interactive ? interactive_timeout : plain_timeout)
            .withArguments(subj, action, details, interactive ? allow_user_interaction : 0u,
                           cancellation_id)
            .uponReplyInvoke([this, ticket](const sdbus::Error* error, ResultArg result) {
                Answer a;
                if (error) {
                    const std::string& name = error->getName();
                    if (name == "org.freedesktop.PolicyKit1.Error.Cancelled") {
                        a.verdict = Verdict::Cancelled;
                    } else if (means_not_on_bus(name)) {
                        a.verdict = Verdict::Unavailable;
                        a.detail = "polkit is unavailable (not on the bus: " + name + ")";
                    } else {
                        a.verdict = Verdict::Error;
                        a.detail =
                            "the polkit check failed (" + name + ": " + error->getMessage() + ")";
                    }
                } else if (result.get<0>()) {
                    a.verdict = Verdict::Allowed;
                } else {
                    a.verdict = result.get<1>() ? Verdict::Challenge : Verdict::Denied;
                }
                finish(ticket, a);
            });
    } catch (...) {
        pending_.erase(ticket); // not sent: the caller reports polkit unavailable
        throw;
    }
    return ticket;
}

void PolkitAuthority::finish(uint64_t ticket, const Answer& answer) {
    auto it = pending_.find(ticket);
    if (it == pending_.end())
        return; // cancelled and already answered
    Callback done = std::move(it->second.done);
    pending_.erase(it);
    if (done)
        done(answer);
}

void PolkitAuthority::cancel(uint64_t ticket) {
    auto it = pending_.find(ticket);
    if (it == pending_.end())
        return;
    std::string id = it->second.cancellation_id;
    try {
        // No reply expected: it would count against the bus's limit of
        // pending replies, and there is nothing to do with it.
        proxy_->callMethod("CancelCheckAuthorization")
            .onInterface(authority_iface)
            .withArguments(id)
            .dontExpectReply();
    } catch (const sdbus::Error&) {
        // polkit gone as well: nothing to cancel there.
    }
    finish(ticket, Answer{Verdict::Cancelled, {}});
}

} // namespace promiscd::auth
