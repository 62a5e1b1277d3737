#include "varlink/promisc_calls.hpp"

#include "config.h"
#include "core/errors.hpp"
#include "core/names.hpp"
#include "ops/requests.hpp"

#include <initializer_list>

namespace promiscd::varlink {

using core::Error;
using core::ErrorCode;
using core::quote;
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

} // namespace

std::optional<DecodedCall> decode_call(const Call& call) {
    const std::string& m = call.method;
    if (m.size() <= iface.size() || m.compare(0, iface.size(), iface) != 0 ||
        m[iface.size()] != '.')
        return std::nullopt;
    const std::string name = m.substr(iface.size() + 1);
    Params p(call.parameters);
    // Each checks in the order the answers have always come: the fixed
    // parameters, then the options, then allowInteractiveAuthentication.
    if (name == "ListLinks") {
        p.allow({});
        return DecodedCall{calls::ListLinks{}};
    }
    if (name == "ListLeases") {
        p.allow({});
        return DecodedCall{calls::ListLeases{}};
    }
    if (name == "Monitor") {
        p.allow({});
        return DecodedCall{calls::Monitor{}};
    }
    if (name == "Acquire") {
        calls::Acquire a{ops::decode_acquire(p.str("interface"), p.options({"interface"}))};
        return DecodedCall{std::move(a), p.interactive()};
    }
    if (name == "Release") {
        p.allow({"id"});
        calls::Release r{p.uint("id")};
        return DecodedCall{r, p.interactive()};
    }
    if (name == "Renew") {
        p.allow({"id", "ttl"});
        calls::Renew r;
        r.id = p.uint("id");
        r.ttl = ops::decode_ttl(p.uint("ttl"));
        return DecodedCall{r, p.interactive()};
    }
    if (name == "Revoke") {
        p.allow({"id", "reason"});
        calls::Revoke r;
        r.id = p.uint("id");
        r.reason = p.opt_str("reason").value_or("");
        return DecodedCall{std::move(r), p.interactive()};
    }
    if (name == "SetLinkPolicy") {
        p.allow({"interface", "policy"});
        calls::SetLinkPolicy s;
        s.interface = ops::decode_interface(p.str("interface"));
        s.policy = ops::decode_policy(p.str("policy"));
        return DecodedCall{std::move(s), p.interactive()};
    }
    if (name == "OpenCapture") {
        calls::OpenCapture o{ops::decode_capture(p.str("interface"), p.options({"interface"}))};
        return DecodedCall{std::move(o), p.interactive()};
    }
    if (name == "StopCapture") {
        p.allow({"id"});
        calls::StopCapture s{p.uint("id")};
        return DecodedCall{s, p.interactive()};
    }
    return std::nullopt;
}

} // namespace promiscd::varlink
