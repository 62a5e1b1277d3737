// monitor: one timestamped line (or JSON object) per thing that happens.
#include "commands.hpp"
#include "event_loop.hpp"

#include <iostream>
#include <set>

namespace promiscd::ctl {

namespace {

using promisc::Event;
using Type = promisc::Event::Type;
using LinkInfo = promisc::Link;

const LinkInfo kNoLink{};
const promisc::LeaseInfo kNoLease{};
const promisc::CaptureInfo kNoCapture{};

// The records an event carries (empty ones where it carries none).
const LinkInfo& link_of(const Event& e) {
    return e.link ? *e.link : kNoLink;
}
const LinkInfo& previous_link_of(const Event& e) {
    return e.previous_link ? *e.previous_link : kNoLink;
}
const promisc::LeaseInfo& lease_of(const Event& e) {
    return e.lease ? *e.lease : kNoLease;
}
const promisc::LeaseInfo& previous_lease_of(const Event& e) {
    return e.previous_lease ? *e.previous_lease : kNoLease;
}
const promisc::CaptureInfo& capture_of(const Event& e) {
    return e.capture ? *e.capture : kNoCapture;
}

// "revoked by :1.7 (uid 0, pid 42, promiscctl): maintenance", or the reason
// alone ("expired").
std::string how_it_ended(const Event& e) {
    std::string s = e.reason;
    if (!e.revoked_by.empty())
        s += " by " + e.revoked_by;
    else if (e.revoked_by_uid)
        s += " by uid " + std::to_string(*e.revoked_by_uid);
    if (!e.message.empty())
        s += ": " + e.message;
    return s;
}

bool has(const std::vector<std::string>& v, const char* name) {
    return std::find(v.begin(), v.end(), name) != v.end();
}

std::string lease_name(const promisc::LeaseInfo& l) {
    std::string s = "lease " + std::to_string(l.id);
    if (!l.interface.empty())
        s += " on " + l.interface;
    return s;
}

std::string capture_name(const promisc::CaptureInfo& c) {
    std::string s = "capture " + std::to_string(c.id);
    if (!c.interface.empty())
        s += " on " + c.interface;
    return s;
}

// Who changed the admin flag, as far as the daemon's Origin tells: it sets
// the flag only for its leases and clears it only after the last one.
std::string flag_change(const Event& e) {
    const auto& l = link_of(e);
    if (l.admin_flag)
        return l.origin == "daemon" ? "promiscuous flag on, set by promiscd"
                                    : "promiscuous flag on, set outside promiscd";
    if (previous_link_of(e).origin == "daemon" && l.leases == 0)
        return "promiscuous flag off, cleared by promiscd (no lease left)";
    return "promiscuous flag off, cleared outside promiscd";
}

bool flag_set_by_daemon(const Event& e) {
    const auto& l = link_of(e);
    if (l.admin_flag)
        return l.origin == "daemon";
    return previous_link_of(e).origin == "daemon" && l.leases == 0;
}

// flag_events: the daemon tells each flag change with its own event (and
// who made it), so the properties that follow need not be explained.
std::string link_change(const Event& e, bool flag_events = false) {
    const auto& l = link_of(e);
    const auto& p = previous_link_of(e);
    std::vector<std::string> parts;
    if (has(e.changed, "Name") && !p.name.empty())
        parts.push_back("renamed from " + p.name);
    // AdminFlag and Origin: said by the FlagChanged event when there is one.
    if (!flag_events && has(e.changed, "AdminFlag"))
        parts.push_back(flag_change(e));
    else if (!flag_events && has(e.changed, "Origin"))
        parts.push_back("origin " + p.origin + " -> " + l.origin);
    if (has(e.changed, "Promiscuity"))
        parts.push_back("kernel promiscuity " + std::to_string(p.promiscuity) + " -> " +
                        std::to_string(l.promiscuity) +
                        (has(e.changed, "Promiscuous")
                             ? (l.promiscuous ? " (now promiscuous)" : " (no longer promiscuous)")
                             : ""));
    if (has(e.changed, "Leases"))
        parts.push_back("leases " + std::to_string(p.leases) + " -> " + std::to_string(l.leases));
    if (has(e.changed, "Policy"))
        parts.push_back("policy " + p.policy + " -> " + l.policy);
    std::string out;
    for (const auto& s : parts)
        out += (out.empty() ? "" : ", ") + s;
    return out;
}

std::string owner_text(const promisc::LeaseInfo& l) {
    std::string s = user_label(l.uid);
    if (user_name(l.uid))
        s += " (uid " + std::to_string(l.uid) + ")";
    s += ", pid " + std::to_string(l.pid);
    if (!l.command.empty())
        s += " (" + l.command + ")";
    return s;
}

// What promiscctl remembers between events to tell more than each says.
struct History {
    // Links whose flag another agent cleared last: promiscd setting it
    // again is its policy "enforce" at work.
    std::set<std::string> cleared_outside;
    // The daemon announces every flag change (FlagChanged).
    bool flag_events = false;
    // The daemon publishes capture counters (D-Bus).
    bool counters = false;
};

std::string flag_event(const Event& e, History& h) {
    const bool ours = e.by == "promiscd";
    const bool restored = e.flag && ours && h.cleared_outside.count(e.interface);
    if (!e.flag && !ours)
        h.cleared_outside.insert(e.interface);
    else
        h.cleared_outside.erase(e.interface);
    if (restored)
        return "promiscuous flag on again, set back by promiscd (policy enforce: its leases "
               "still hold)";
    if (e.flag)
        return ours ? "promiscuous flag on, set by promiscd"
                    : "promiscuous flag on, set outside promiscd";
    return ours ? "promiscuous flag off, cleared by promiscd (no lease left)"
                : "promiscuous flag off, cleared outside promiscd";
}

// The line for an event, empty for those not worth one.
std::string text_of(const Event& e, const Style& st, std::uint64_t now, History& h) {
    const auto& link = link_of(e);
    const auto& lease = lease_of(e);
    const auto& capture = capture_of(e);
    switch (e.type) {
    case Type::LinkAdded:
        return "link " + st.bold(link.name) + " (index " + std::to_string(link.index) +
               ") appeared" + (link.admin_flag ? ", promiscuous flag on" : "");
    case Type::LinkRemoved:
        return "link " + st.bold(link.name) + " (index " + std::to_string(link.index) + ") removed";
    case Type::LinkChanged: {
        auto what = link_change(e, h.flag_events);
        return what.empty() ? std::string() : "link " + st.bold(link.name) + ": " + what;
    }
    case Type::LeaseGranted: {
        std::string s = lease_name(lease) + " granted to " + owner_text(lease) + ", " +
                        st.state(state_of(lease));
        if (!lease.reason.empty())
            s += ", reason " + quote(lease.reason);
        if (lease.expires)
            s += ", expires " + format_relative(usec_of(lease.expires), now);
        return s;
    }
    case Type::LeaseChanged: {
        std::vector<std::string> parts;
        if (has(e.changed, "State"))
            parts.push_back(state_of(previous_lease_of(e)) + " -> " + st.state(state_of(lease)));
        if (has(e.changed, "Expires"))
            parts.push_back("expires " + format_relative(usec_of(lease.expires), now));
        if (has(e.changed, "Interface"))
            parts.push_back("now on " + lease.interface);
        std::string out;
        for (const auto& p : parts)
            out += (out.empty() ? "" : ", ") + p;
        return out.empty() ? out : lease_name(lease) + ": " + out;
    }
    case Type::LeaseEnded:
        // "ended: revoked by :1.7 (uid 0, pid 42, promiscctl): maintenance"
        return lease_name(lease) + " ended" + (e.reason.empty() ? "" : ": " + how_it_ended(e));
    case Type::CaptureStarted: {
        std::string s = capture_name(capture) + " started";
        if (!capture.filter.empty())
            s += ", filter " + quote(capture.filter);
        if (!capture.format.empty())
            s += ", " + capture.format;
        return s;
    }
    case Type::CaptureFinished: {
        std::string s =
            capture_name(capture) + " finished" + (e.reason.empty() ? "" : ": " + e.reason);
        // The Capture object's counters; varlink's event has none.
        if (h.counters)
            s += " (" + std::to_string(capture.packets) + " packets, " +
                 std::to_string(capture.drops) + " dropped)";
        return s;
    }
    case Type::FlagChanged:
        return "link " + st.bold(e.interface) + ": " + flag_event(e, h);
    case Type::Conflict:
        return st.red("conflict") + " on " + st.bold(e.interface) +
               ": another agent cleared the promiscuous flag " + std::to_string(e.clears) +
               " times; promiscd stopped fighting and its leases are overridden";
    case Type::DaemonStarted:
        return "promiscd started";
    case Type::DaemonStopped:
        return "promiscd stopped";
    case Type::Unknown:
        break;
    }
    return {};
}

// The JSON object for an event; null for those not reported.
nlohmann::json json_of(const Event& e, History& h) {
    nlohmann::json j = {{"timestamp", usec_of(e.time)}, {"event", promisc::to_string(e.type)}};
    switch (e.type) {
    case Type::LinkAdded:
    case Type::LinkRemoved:
        j["link"] = to_json(link_of(e));
        break;
    case Type::LinkChanged:
        if (link_change(e).empty())
            return nullptr;
        j["link"] = to_json(link_of(e));
        j["previous"] = to_json(previous_link_of(e));
        j["changed"] = e.changed;
        if (has(e.changed, "AdminFlag"))
            j["cause"] = flag_set_by_daemon(e) ? "promiscd" : "other";
        break;
    case Type::LeaseGranted:
        j["lease"] = to_json(lease_of(e));
        break;
    case Type::LeaseChanged:
        j["lease"] = to_json(lease_of(e));
        j["previous"] = to_json(previous_lease_of(e));
        j["changed"] = e.changed;
        break;
    case Type::LeaseEnded:
        j["lease"] = to_json(lease_of(e));
        j["reason"] = e.reason;
        if (!e.revoked_by.empty())
            j["revoked_by"] = e.revoked_by;
        if (e.revoked_by_uid)
            j["revoked_by_uid"] = *e.revoked_by_uid;
        if (!e.message.empty())
            j["message"] = e.message;
        break;
    case Type::CaptureStarted:
        j["capture"] = to_json(capture_of(e));
        break;
    case Type::CaptureFinished:
        j["capture"] = to_json(capture_of(e));
        j["reason"] = e.reason;
        break;
    case Type::Conflict:
        j["interface"] = e.interface;
        j["clears"] = e.clears;
        break;
    case Type::FlagChanged: {
        const bool restored = e.flag && e.by == "promiscd" && h.cleared_outside.count(e.interface);
        flag_event(e, h); // keeps the history
        j["interface"] = e.interface;
        j["flag"] = e.flag;
        j["by"] = e.by;
        j["restored"] = restored;
        break;
    }
    case Type::DaemonStarted:
    case Type::DaemonStopped:
        break;
    case Type::Unknown:
        return nullptr;
    }
    return j;
}

} // namespace

int monitor(Context& ctx) {
    auto& client = ctx.client();
    EventLoop loop;
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
        loop.on_signal(sig, [&loop] { loop.exit(kSuccess); });
    // Exits 4 here when the daemon is not running: there is nothing to follow.
    promisc::Monitor watcher = client.monitor();
    const auto json = ctx.globals().json;
    const Style& st = ctx.style();
    History history;
    history.counters = client.transport() == promisc::Transport::DBus;
    watcher.on_event([&](const Event& e) {
        if (json != JsonMode::Off) {
            auto j = json_of(e, history);
            if (!j.is_null())
                print_json(std::cout, j, json);
        } else {
            history.flag_events = watcher.reports_flag_changes();
            auto line = text_of(e, st, now_usec(), history);
            if (!line.empty())
                std::cout << st.grey(format_timestamp(usec_of(e.time))) << ' ' << line << '\n';
        }
        std::cout.flush();
    });
    loop.attach(client);
    if (!ctx.globals().quiet)
        std::cerr << "Monitoring promiscd (" << watcher.links().size() << " links, "
                  << watcher.leases().size() << " leases); Ctrl-C to stop.\n";
    return loop.run();
}

} // namespace promiscd::ctl
