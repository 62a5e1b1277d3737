#include "output.hpp"

#include "config.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>
#include <ostream>
#include <pwd.h>
#include <unistd.h>

namespace promiscd::ctl {

bool colour_wanted(int fd) {
    const char* no_colour = std::getenv("NO_COLOR");
    if (no_colour && *no_colour)
        return false;
    const char* term = std::getenv("TERM");
    if (term && std::string_view(term) == "dumb")
        return false;
    return ::isatty(fd) == 1;
}

std::string Style::wrap(const char* code, std::string_view s) const {
    if (!on_)
        return std::string(s);
    return std::string("\x1b[") + code + "m" + std::string(s) + "\x1b[0m";
}

std::string Style::state(std::string_view s) const {
    if (s == "active" || s == "yes" || s == "on")
        return green(s);
    if (s == "pending" || s == "admin")
        return yellow(s);
    if (s == "overridden")
        return red(s);
    return std::string(s);
}

namespace {

size_t visible_width(std::string_view s) {
    size_t n = 0;
    for (unsigned char c : s)
        if ((c & 0xC0) != 0x80)
            ++n;
    return n;
}

} // namespace

void Table::print(std::ostream& out, const Style& style, bool header) const {
    std::vector<size_t> width(header_.size(), 0);
    if (header)
        for (size_t i = 0; i < header_.size(); ++i)
            width[i] = visible_width(header_[i]);
    for (const auto& row : rows_)
        for (size_t i = 0; i < row.size() && i < width.size(); ++i)
            width[i] = std::max(width[i], visible_width(row[i].text));
    auto line = [&](const std::vector<Cell>& cells) {
        std::string s;
        for (size_t i = 0; i < cells.size(); ++i) {
            if (i)
                s += ' ';
            s += cells[i].shown;
            if (i + 1 < cells.size())
                s.append(width[i] - visible_width(cells[i].text), ' ');
        }
        out << s << '\n';
    };
    if (header) {
        std::vector<Cell> cells;
        for (const auto& h : header_)
            cells.push_back({h, style.header(h)});
        line(cells);
    }
    for (const auto& row : rows_)
        line(row);
}

void print_json(std::ostream& out, const nlohmann::json& j, JsonMode mode) {
    out << (mode == JsonMode::Pretty ? j.dump(2) : j.dump()) << '\n';
}

std::uint64_t now_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

std::string format_timespan(std::uint64_t usec) {
    static const std::pair<std::uint64_t, const char*> units[] = {
        {7ULL * 24 * 3600, "w"}, {24ULL * 3600, "d"}, {3600, "h"}, {60, "min"}, {1, "s"}};
    std::uint64_t secs = usec / 1'000'000;
    if (secs == 0)
        return usec >= 1000 ? std::to_string(usec / 1000) + "ms" : "0s";
    // The two largest units say enough for a person ("2h 5min", not "2h 5min 3s").
    std::string out;
    int shown = 0;
    for (const auto& [size, name] : units) {
        if (secs >= size && shown < 2) {
            if (!out.empty())
                out += ' ';
            out += std::to_string(secs / size) + name;
            secs %= size;
            ++shown;
        } else if (shown) {
            ++shown; // a zero unit still ends the precision
        }
    }
    return out;
}

std::string format_relative(std::uint64_t when, std::uint64_t now) {
    if (when == 0)
        return "never";
    if (when > now) {
        auto d = when - now;
        return d < 1'000'000 ? "now" : "in " + format_timespan(d);
    }
    auto d = now - when;
    return d < 1'000'000 ? "now" : format_timespan(d) + " ago";
}

std::string format_timestamp(std::uint64_t usec) {
    time_t secs = static_cast<time_t>(usec / 1'000'000);
    tm local{};
    ::localtime_r(&secs, &local);
    char buf[64];
    size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &local);
    std::snprintf(buf + n, sizeof buf - n, ".%03u", static_cast<unsigned>((usec / 1000) % 1000));
    return buf;
}

std::string format_bytes(std::uint64_t bytes) {
    static const char* const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024)
        return std::to_string(bytes) + " B";
    double v = static_cast<double>(bytes);
    int u = -1;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

std::optional<std::string> user_name(std::uint32_t uid) {
    // Listings name the same few owners many times.
    static std::map<std::uint32_t, std::optional<std::string>> cache;
    if (auto it = cache.find(uid); it != cache.end())
        return it->second;
    std::optional<std::string> name;
    if (const passwd* pw = ::getpwuid(static_cast<uid_t>(uid)); pw && pw->pw_name)
        name = pw->pw_name;
    cache.emplace(uid, name);
    return name;
}

std::string user_label(std::uint32_t uid) {
    return user_name(uid).value_or(std::to_string(uid));
}

std::string quote(std::string_view s) {
    return "'" + std::string(s) + "'";
}

std::string link_path(int index) {
    return std::string(PROMISCD_OBJECT_PATH) + "/link/" + std::to_string(index);
}
std::string lease_path(std::uint64_t id) {
    return std::string(PROMISCD_OBJECT_PATH) + "/lease/" + std::to_string(id);
}
std::string capture_path(std::uint64_t id) {
    return std::string(PROMISCD_OBJECT_PATH) + "/capture/" + std::to_string(id);
}

std::optional<std::uint64_t> lease_id_of(std::string_view path) {
    const std::string prefix = std::string(PROMISCD_OBJECT_PATH) + "/lease/";
    if (path.substr(0, prefix.size()) != prefix)
        return std::nullopt;
    const std::string_view digits = path.substr(prefix.size());
    if (digits.empty() || digits.size() > 19 ||
        digits.find_first_not_of("0123456789") != std::string_view::npos ||
        (digits.size() > 1 && digits[0] == '0'))
        return std::nullopt;
    return std::stoull(std::string(digits));
}

std::string state_of(const promisc::LeaseInfo& l) {
    return promisc::to_string(l.state);
}

std::uint64_t usec_of(std::chrono::system_clock::time_point t) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch());
    return us.count() > 0 ? static_cast<std::uint64_t>(us.count()) : 0;
}
std::uint64_t usec_of(const std::optional<std::chrono::system_clock::time_point>& t) {
    return t ? usec_of(*t) : 0;
}

nlohmann::json to_json(const promisc::Link& l) {
    nlohmann::json j = {
        {"name", l.name},
        {"index", l.index},
        // A link of another namespace: its object path is promiscd's own
        // number, which neither listing carries.
        {"path", l.netns_inode ? nlohmann::json(nullptr) : nlohmann::json(link_path(l.index))},
        {"promiscuous", l.promiscuous},
        {"admin_flag", l.admin_flag},
        {"promiscuity", l.promiscuity},
        {"origin", l.origin},
        {"leases", l.leases},
        {"policy", l.policy},
    };
    if (l.external_changes)
        j["external_changes"] = *l.external_changes;
    if (l.netns_inode) {
        j["netns"] = l.netns;
        j["netns_inode"] = l.netns_inode;
    }
    return j;
}

nlohmann::json to_json(const promisc::LeaseInfo& l) {
    auto user = user_name(l.uid);
    const std::uint64_t expires = usec_of(l.expires);
    nlohmann::json j = {
        {"id", l.id},
        {"path", lease_path(l.id)},
        {"interface", l.interface},
        {"state", state_of(l)},
        {"owner", l.owner},
        {"uid", l.uid},
        {"user", user ? nlohmann::json(*user) : nlohmann::json(nullptr)},
        {"pid", l.pid},
        {"command", l.command},
        {"reason", l.reason},
        {"acquired", usec_of(l.acquired)},
        {"expires", expires ? nlohmann::json(expires) : nlohmann::json(nullptr)},
    };
    if (l.netns_inode) {
        j["netns"] = l.netns;
        j["netns_inode"] = l.netns_inode;
    }
    return j;
}

nlohmann::json to_json(const promisc::CaptureInfo& c) {
    return {
        {"id", c.id},         {"path", capture_path(c.id)}, {"interface", c.interface},
        {"filter", c.filter}, {"format", c.format},         {"packets", c.packets},
        {"bytes", c.bytes},   {"drops", c.drops},
    };
}

} // namespace promiscd::ctl
