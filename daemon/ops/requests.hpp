// Requests as the operations layer takes them, decoded from what either
// transport carried. Front ends turn their wire values (a{sv} variants, JSON)
// into Options; the checks and every message about a bad option live here
// once, so both transports answer a bad request alike.
#pragma once

#include "core/arbiter.hpp"
#include "service/capture_service.hpp"

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace promiscd::ops {

// One option value as the wire carried it, in neutral terms.
struct Value {
    enum class Kind { String, Unsigned, Signed, Bool, Null, Other } kind = Kind::Null;
    std::string text; // String
    uint64_t u = 0;   // Unsigned
    int64_t i = 0;    // Signed (negative or not)
    bool b = false;   // Bool
    // For messages: "a string", "an array", "D-Bus type 'as'", ...
    std::string type_name;

    static Value string(std::string s) {
        return {Kind::String, std::move(s), 0, 0, false, "a string"};
    }
    static Value unsigned_(uint64_t v) {
        return {Kind::Unsigned, {}, v, 0, false, "an unsigned integer"};
    }
    static Value signed_(int64_t v) { return {Kind::Signed, {}, 0, v, false, "an integer"}; }
    static Value boolean(bool v) { return {Kind::Bool, {}, 0, 0, v, "a boolean"}; }
    static Value null() { return {Kind::Null, {}, 0, 0, false, "null"}; }
    static Value other(std::string type) { return {Kind::Other, {}, 0, 0, false, std::move(type)}; }
};
using Options = std::map<std::string, Value>;

// Throw core::Error(InvalidArgument) naming the option and what was wrong:
// "unknown option 'tll' (known options: ttl, reason, wait)", "option 'ttl'
// must be an unsigned integer, not a string". A null value counts as absent.
core::LeaseRequest decode_acquire(const std::string& interface, const Options& options);
service::CaptureRequest decode_capture(const std::string& interface, const Options& options);
// An interface as clients write it (the escaped display form) → raw bytes.
std::string decode_interface(const std::string& display);
core::Policy decode_policy(const std::string& policy);
// Seconds from the wire → microseconds (0 stays 0: no expiry).
core::Usec decode_ttl(uint64_t seconds);

} // namespace promiscd::ops
