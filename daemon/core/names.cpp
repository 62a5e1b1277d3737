#include "names.hpp"

#include "errors.hpp"

#include <cstdio>
#include <net/if.h>

namespace promiscd::core {

std::string_view to_string(LeaseState s) {
    switch (s) {
    case LeaseState::Active:
        return "active";
    case LeaseState::Pending:
        return "pending";
    case LeaseState::Overridden:
        return "overridden";
    }
    return "active";
}

std::string_view to_string(EndReason r) {
    switch (r) {
    case EndReason::Released:
        return "released";
    case EndReason::Expired:
        return "expired";
    case EndReason::OwnerGone:
        return "owner-gone";
    case EndReason::Revoked:
        return "revoked";
    case EndReason::DaemonShutdown:
        return "daemon-shutdown";
    }
    return "released";
}

std::string_view to_string(Policy p) {
    return p == Policy::Yield ? "yield" : "enforce";
}

std::string_view to_string(Origin o) {
    switch (o) {
    case Origin::None:
        return "none";
    case Origin::Daemon:
        return "daemon";
    case Origin::Admin:
        return "admin";
    }
    return "none";
}

std::optional<EndReason> parse_end_reason(std::string_view s) {
    for (auto r : {EndReason::Released, EndReason::Expired, EndReason::OwnerGone,
                   EndReason::Revoked, EndReason::DaemonShutdown})
        if (to_string(r) == s)
            return r;
    return std::nullopt;
}

std::optional<LeaseState> parse_lease_state(std::string_view s) {
    for (auto st : {LeaseState::Active, LeaseState::Pending, LeaseState::Overridden})
        if (to_string(st) == s)
            return st;
    return std::nullopt;
}

std::optional<Policy> parse_policy(std::string_view s) {
    if (s == "enforce")
        return Policy::Enforce;
    if (s == "yield")
        return Policy::Yield;
    return std::nullopt;
}

std::string quote(std::string_view s) {
    constexpr size_t max_shown = 64;
    std::string out = "'";
    size_t shown = 0;
    for (unsigned char c : s) {
        if (shown++ == max_shown) {
            out += "...";
            break;
        }
        if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else {
            out += static_cast<char>(c);
        }
    }
    out += "'";
    return out;
}

void validate_interface_name(std::string_view name) {
    auto fail = [&](const char* why) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid interface name " + quote(name) + ": " + why);
    };
    if (name.empty())
        throw Error(ErrorCode::InvalidArgument, "invalid interface name: it is empty");
    if (name.size() > IFNAMSIZ - 1)
        fail("longer than 15 bytes");
    if (name == "." || name == "..")
        fail("'.' and '..' are not interface names");
    for (unsigned char c : name) {
        if (c == '/')
            fail("contains '/'");
        if (c == ':')
            fail("contains ':'");
        if (c <= 0x20 || c == 0x7f)
            fail("contains whitespace or a control character");
    }
}

} // namespace promiscd::core
