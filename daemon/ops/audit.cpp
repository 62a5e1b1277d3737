#include "ops/audit.hpp"

#include "core/names.hpp"
#include "log.hpp"

#include <algorithm>
#include <vector>

namespace promiscd::ops {

using namespace core;

namespace {

constexpr double burst = 20;
constexpr double per_second = 5;
constexpr size_t max_buckets = 4096;

std::string shown(const std::string& raw) {
    return display_name(raw);
}

// The journal fields that name a lease and its owner.
std::vector<log::Field> lease_fields(const Lease& l) {
    return {{"PROMISCD_LINK", shown(l.interface)},
            {"PROMISCD_LEASE", std::to_string(l.id)},
            {"PROMISCD_OWNER", label(l.owner)},
            {"PROMISCD_OWNER_UID", std::to_string(l.owner.uid)},
            {"PROMISCD_OWNER_PID", std::to_string(l.owner.pid)},
            {"PROMISCD_OWNER_COMM", l.owner.command}};
}

} // namespace

Audit::Audit(std::function<uint64_t()> now) : now_(std::move(now)) {}

bool Audit::admit(uint32_t uid, uint64_t& suppressed_before) {
    const uint64_t now = now_();
    if (buckets_.size() >= max_buckets && !buckets_.count(uid))
        std::erase_if(buckets_, [&](const auto& kv) {
            return kv.second.suppressed == 0 &&
                   kv.second.tokens + double(now - kv.second.last) / 1e6 * per_second >= burst;
        });
    auto [it, fresh] = buckets_.try_emplace(uid, Bucket{burst, now, 0});
    Bucket& b = it->second;
    if (!fresh && now > b.last) {
        b.tokens = std::min(burst, b.tokens + double(now - b.last) / 1e6 * per_second);
        b.last = now;
    }
    if (b.tokens < 1) {
        ++b.suppressed;
        ++suppressed_total_;
        return false;
    }
    b.tokens -= 1;
    suppressed_before = b.suppressed;
    b.suppressed = 0;
    return true;
}

void Audit::denied(const std::string& operation, const Caller& caller, const Target& target,
                   const Error& error) {
    uint64_t suppressed = 0;
    if (!admit(caller.uid, suppressed))
        return;
    const Owner o = caller.owner();
    std::string what = operation;
    if (!target.link.empty())
        what += " on " + shown(target.link);
    if (target.lease)
        what += " of lease " + std::to_string(*target.lease);
    if (target.capture)
        what += " of capture " + std::to_string(*target.capture);
    std::string text = what + " refused to " + describe(o) + ": " + error.what();
    if (suppressed)
        text += " (" + std::to_string(suppressed) + " earlier refusals of uid " +
                std::to_string(caller.uid) + " not logged)";
    log::audit(log::Level::Notice, log::id::request_denied, text,
               {{"PROMISCD_OPERATION", operation},
                {"PROMISCD_LINK", shown(target.link)},
                {"PROMISCD_LEASE", target.lease ? std::to_string(*target.lease) : ""},
                {"PROMISCD_CAPTURE", target.capture ? std::to_string(*target.capture) : ""},
                {"PROMISCD_OWNER", label(o)},
                {"PROMISCD_OWNER_UID", std::to_string(o.uid)},
                {"PROMISCD_OWNER_PID", std::to_string(o.pid)},
                {"PROMISCD_OWNER_COMM", o.command},
                {"PROMISCD_ERROR", std::string(error_name(error.code()))},
                {"PROMISCD_REASON", error.what()}});
}

void Audit::on_change(const service::Change& change) {
    using namespace service;
    if (const auto* a = std::get_if<LeaseAdded>(&change)) {
        const Lease& l = a->lease;
        auto fields = lease_fields(l);
        fields.push_back({"PROMISCD_REASON", l.reason});
        log::audit(log::Level::Info, log::id::lease_granted,
                   "lease " + std::to_string(l.id) + " on " + shown(l.interface) + " granted to " +
                       describe(l.owner) + " (" + std::string(to_string(l.state)) + ")",
                   fields);
    } else if (const auto* e = std::get_if<service::LeaseEnded>(&change)) {
        const Lease& l = e->lease;
        std::string text = "lease " + std::to_string(l.id) + " on " + shown(l.interface) +
                           " held by " + describe(l.owner) +
                           " ended: " + std::string(to_string(e->reason));
        const Revocation* r = e->revocation ? &*e->revocation : nullptr;
        if (r)
            text += " by " + r->by + (r->message.empty() ? "" : ": " + quote(r->message));
        auto fields = lease_fields(l);
        fields.push_back({"PROMISCD_REASON", std::string(to_string(e->reason))});
        fields.push_back({"PROMISCD_REVOKED_BY", r ? r->by : ""});
        fields.push_back({"PROMISCD_REVOKED_BY_UID", r ? std::to_string(r->by_uid) : ""});
        fields.push_back({"PROMISCD_REVOCATION", r ? r->message : ""});
        log::audit(log::Level::Info, log::id::lease_ended, text, fields);
    } else if (const auto* c = std::get_if<LeaseChanged>(&change)) {
        if (!c->from)
            return;
        const Lease& l = c->lease;
        log::audit(log::Level::Info, log::id::lease_state,
                   "lease " + std::to_string(l.id) + " on " + shown(l.interface) + " is now " +
                       std::string(to_string(l.state)),
                   {{"PROMISCD_LEASE", std::to_string(l.id)},
                    {"PROMISCD_LINK", shown(l.interface)},
                    {"PROMISCD_STATE", std::string(to_string(l.state))}});
    } else if (const auto* f = std::get_if<FlagChanged>(&change)) {
        if (f->by_daemon)
            log::audit(log::Level::Notice, f->on ? log::id::flag_set : log::id::flag_cleared,
                       std::string(f->on ? "set" : "cleared") + " promiscuous mode on " +
                           shown(f->name),
                       {{"PROMISCD_LINK", shown(f->name)},
                        {"PROMISCD_IFINDEX", std::to_string(f->ifindex)},
                        {"PROMISCD_FLAG", f->on ? "on" : "off"}});
        else
            log::info("promiscuous mode " + std::string(f->on ? "set" : "cleared") + " on " +
                      shown(f->name) + " by another agent");
    } else if (const auto* k = std::get_if<Conflict>(&change)) {
        log::audit(log::Level::Warning, log::id::conflict,
                   "another agent cleared promiscuous mode on " + shown(k->name) + " " +
                       std::to_string(k->clears) +
                       " times within the conflict window; not fighting it any more",
                   {{"PROMISCD_LINK", shown(k->name)},
                    {"PROMISCD_IFINDEX", std::to_string(k->ifindex)},
                    {"PROMISCD_CLEARS", std::to_string(k->clears)}});
    }
}

} // namespace promiscd::ops
