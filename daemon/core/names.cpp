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
    case EndReason::NetnsGone:
        return "netns-gone";
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
    case Origin::Unknown:
        return "unknown";
    }
    return "none";
}

std::optional<EndReason> parse_end_reason(std::string_view s) {
    for (auto r : {EndReason::Released, EndReason::Expired, EndReason::OwnerGone,
                   EndReason::Revoked, EndReason::DaemonShutdown, EndReason::NetnsGone})
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

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when the byte there does
// not start one (overlong forms, surrogates and code points past U+10FFFF
// are invalid).
size_t utf8_sequence(std::string_view s, size_t i) {
    const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    if (c < 0x80)
        return 1;
    size_t n = 0;
    unsigned lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (i + n > s.size())
        return 0;
    if (b(i + 1) < lo || b(i + 1) > hi)
        return 0;
    for (size_t k = 2; k < n; ++k)
        if (b(i + k) < 0x80 || b(i + k) > 0xbf)
            return 0;
    return n;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

} // namespace

bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8_sequence(s, i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

std::string display_name(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    for (size_t i = 0; i < raw.size();) {
        if (raw[i] == '\\') {
            out += "\\\\";
            ++i;
            continue;
        }
        size_t n = utf8_sequence(raw, i);
        if (n == 0) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(raw[i]));
            out += buf;
            ++i;
            continue;
        }
        out.append(raw.substr(i, n));
        i += n;
    }
    return out;
}

std::string parse_display_name(std::string_view d) {
    std::string out;
    out.reserve(d.size());
    for (size_t i = 0; i < d.size(); ++i) {
        if (d[i] != '\\') {
            out += d[i];
            continue;
        }
        if (i + 1 < d.size() && d[i + 1] == '\\') {
            out += '\\';
            ++i;
            continue;
        }
        int h = i + 3 < d.size() && d[i + 1] == 'x' ? hex_digit(d[i + 2]) : -1;
        int l = h >= 0 ? hex_digit(d[i + 3]) : -1;
        if (h < 0 || l < 0)
            throw Error(ErrorCode::InvalidArgument,
                        "invalid interface name " + quote(d) +
                            ": '\\' must be followed by '\\' or by 'x' and two hex digits");
        out += static_cast<char>(h * 16 + l);
        i += 3;
    }
    return out;
}

std::string qualify(uint64_t netns, std::string_view name) {
    if (netns == 0)
        return std::string(name);
    return std::to_string(netns) + '/' + std::string(name);
}

LinkName split_link(std::string_view qualified) {
    const auto slash = qualified.find('/');
    if (slash == std::string_view::npos || slash == 0)
        return {0, qualified};
    uint64_t ns = 0;
    for (size_t i = 0; i < slash; ++i) {
        const char c = qualified[i];
        if (c < '0' || c > '9' || ns > (UINT64_MAX - 9) / 10)
            return {0, qualified};
        ns = ns * 10 + static_cast<uint64_t>(c - '0');
    }
    return {ns, qualified.substr(slash + 1)};
}

std::string describe_link(std::string_view qualified) {
    const auto l = split_link(qualified);
    std::string out = quote(l.name);
    if (l.netns != 0)
        out += " in network namespace " + std::to_string(l.netns);
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
