#include "ops/requests.hpp"

#include "core/errors.hpp"
#include "core/names.hpp"

#include <initializer_list>

namespace promiscd::ops {

using core::Error;
using core::ErrorCode;
using core::quote;

namespace {

enum class Want { String, Unsigned, Bool };

struct Spec {
    const char* name;
    Want want;
};

const char* want_name(Want w) {
    switch (w) {
    case Want::String:
        return "a string";
    case Want::Unsigned:
        return "an unsigned integer";
    case Want::Bool:
        return "a boolean";
    }
    return "?";
}

// Unknown keys and wrong types are errors that name the key, never ignored.
void check(const Options& options, std::initializer_list<Spec> known) {
    for (const auto& [key, value] : options) {
        const Spec* spec = nullptr;
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
        if (value.kind == Value::Kind::Null)
            continue;
        bool ok = false;
        switch (spec->want) {
        case Want::String:
            ok = value.kind == Value::Kind::String;
            break;
        case Want::Unsigned:
            ok = value.kind == Value::Kind::Unsigned ||
                 (value.kind == Value::Kind::Signed && value.i >= 0);
            break;
        case Want::Bool:
            ok = value.kind == Value::Kind::Bool;
            break;
        }
        if (!ok) {
            std::string got = value.type_name;
            if (value.kind == Value::Kind::Signed)
                got = "the negative number " + std::to_string(value.i);
            throw Error(ErrorCode::InvalidArgument, "option " + quote(key) + " must be " +
                                                        want_name(spec->want) + ", not " + got);
        }
    }
}

const Value* get(const Options& o, const char* key) {
    auto it = o.find(key);
    if (it == o.end() || it->second.kind == Value::Kind::Null)
        return nullptr;
    return &it->second;
}

std::optional<std::string> text(const Options& o, const char* key) {
    const Value* v = get(o, key);
    return v ? std::optional(v->text) : std::nullopt;
}

std::optional<uint64_t> number(const Options& o, const char* key) {
    const Value* v = get(o, key);
    if (!v)
        return std::nullopt;
    return v->kind == Value::Kind::Signed ? static_cast<uint64_t>(v->i) : v->u;
}

std::optional<bool> flag(const Options& o, const char* key) {
    const Value* v = get(o, key);
    return v ? std::optional(v->b) : std::nullopt;
}

} // namespace

std::string decode_interface(const std::string& display) {
    std::string raw = core::parse_display_name(display);
    core::validate_interface_name(raw);
    return raw;
}

core::Usec decode_ttl(uint64_t s) {
    return s > UINT64_MAX / core::usec_per_sec ? UINT64_MAX : s * core::usec_per_sec;
}

core::Policy decode_policy(const std::string& policy) {
    auto p = core::parse_policy(policy);
    if (!p)
        throw Error(ErrorCode::InvalidArgument,
                    "unknown policy " + quote(policy) + " (expected 'enforce' or 'yield')");
    return *p;
}

core::LeaseRequest decode_acquire(const std::string& interface, const Options& options) {
    core::LeaseRequest req;
    req.interface = decode_interface(interface);
    check(options, {{"ttl", Want::Unsigned},
                    {"reason", Want::String},
                    {"wait", Want::Bool},
                    {"netns", Want::String}});
    if (auto ttl = number(options, "ttl"))
        req.ttl = decode_ttl(*ttl);
    req.netns = text(options, "netns").value_or("");
    req.reason = text(options, "reason").value_or("");
    req.wait = flag(options, "wait").value_or(false);
    return req;
}

service::CaptureRequest decode_capture(const std::string& interface, const Options& options) {
    service::CaptureRequest req;
    req.interface = interface == service::kAnyInterface ? std::string(service::kAnyInterface)
                                                        : decode_interface(interface);
    check(options, {{"filter", Want::String},
                    {"snaplen", Want::Unsigned},
                    {"promisc", Want::Bool},
                    {"format", Want::String},
                    {"buffer_size", Want::Unsigned},
                    {"count", Want::Unsigned},
                    {"netns", Want::String}});
    req.netns = text(options, "netns").value_or("");
    req.filter = text(options, "filter").value_or("");
    if (auto snaplen = number(options, "snaplen"))
        // Out of range (including past 32 bits) is reported by validate().
        req.snaplen = *snaplen > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(*snaplen);
    req.promisc = flag(options, "promisc").value_or(true);
    if (auto f = text(options, "format")) {
        auto format = service::parse_format(*f);
        if (!format)
            throw Error(ErrorCode::InvalidArgument,
                        "unknown format " + quote(*f) + " (known formats: pcapng, pcap, socket)");
        req.format = *format;
    }
    req.buffer_size = number(options, "buffer_size");
    req.count = number(options, "count").value_or(0);
    return req;
}

} // namespace promiscd::ops
