// monitor: one timestamped line (or JSON object) per thing that happens.
#include "commands.hpp"
#include "event_loop.hpp"

#include <iostream>
#include <set>

namespace promiscd::ctl {

namespace {

using client::Event;
using Type = client::Event::Type;

bool has(const std::vector<std::string>& v, const char* name) {
    return std::find(v.begin(), v.end(), name) != v.end();
}

std::string lease_name(const client::LeaseInfo& l) {
    std::string s = "lease " + std::to_string(l.id);
    if (!l.interface.empty())
        s += " on " + l.interface;
    return s;
}

std::string capture_name(const client::CaptureInfo& c) {
    std::string s = "capture " + std::to_string(c.id);
    if (!c.interface.empty())
        s += " on " + c.interface;
    return s;
}

// Who changed the admin flag, as far as the daemon's Origin tells: it sets
// the flag only for its leases and clears it only after the last one.
std::string flag_change(const Event& e) {
    const auto& l = e.link;
    if (l.admin_flag)
        return l.origin == "daemon" ? "promiscuous flag on, set by promiscd"
                                    : "promiscuous flag on, set outside promiscd";
    if (e.previous_link.origin == "daemon" && l.leases == 0)
        return "promiscuous flag off, cleared by promiscd (no lease left)";
    return "promiscuous flag off, cleared outside promiscd";
}

bool flag_set_by_daemon(const Event& e) {
    const auto& l = e.link;
    if (l.admin_flag)
        return l.origin == "daemon";
    return e.previous_link.origin == "daemon" && l.leases == 0;
}

// flag_events: the daemon tells each flag change with its own event (and
// who made it), so the properties that follow need not be explained.
std::string link_change(const Event& e, bool flag_events = false) {
    const auto& l = e.link;
    const auto& p = e.previous_link;
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

std::string owner_text(const client::LeaseInfo& l) {
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
};

std::string flag_event(const Event& e, History& h) {
    const bool ours = e.by == "promiscd";
    const bool restored = e.flag_on && ours && h.cleared_outside.count(e.interface);
    if (!e.flag_on && !ours)
        h.cleared_outside.insert(e.interface);
    else
        h.cleared_outside.erase(e.interface);
    if (restored)
        return "promiscuous flag on again, set back by promiscd (policy enforce: its leases "
               "still hold)";
    if (e.flag_on)
        return ours ? "promiscuous flag on, set by promiscd"
                    : "promiscuous flag on, set outside promiscd";
    return ours ? "promiscuous flag off, cleared by promiscd (no lease left)"
                : "promiscuous flag off, cleared outside promiscd";
}

// The line for an event, empty for those not worth one.
std::string text_of(const Event& e, const Style& st, std::uint64_t now, History& h) {
    switch (e.type) {
    case Type::LinkAdded:
        return "link " + st.bold(e.link.name) + " (index " + std::to_string(e.link.index) +
               ") appeared" + (e.link.admin_flag ? ", promiscuous flag on" : "");
    case Type::LinkRemoved:
        return "link " + st.bold(e.link.name) + " (index " + std::to_string(e.link.index) +
               ") removed";
    case Type::LinkChanged: {
        auto what = link_change(e, h.flag_events);
        return what.empty() ? std::string() : "link " + st.bold(e.link.name) + ": " + what;
    }
    case Type::LeaseGranted: {
        std::string s = lease_name(e.lease) + " granted to " + owner_text(e.lease) + ", " +
                        st.state(e.lease.state);
        if (!e.lease.reason.empty())
            s += ", reason " + quote(e.lease.reason);
        if (e.lease.expires_usec)
            s += ", expires " + format_relative(e.lease.expires_usec, now);
        return s;
    }
    case Type::LeaseChanged: {
        std::vector<std::string> parts;
        if (has(e.changed, "State"))
            parts.push_back(e.previous_lease.state + " -> " + st.state(e.lease.state));
        if (has(e.changed, "Expires"))
            parts.push_back("expires " + format_relative(e.lease.expires_usec, now));
        if (has(e.changed, "Interface"))
            parts.push_back("now on " + e.lease.interface);
        std::string out;
        for (const auto& p : parts)
            out += (out.empty() ? "" : ", ") + p;
        return out.empty() ? out : lease_name(e.lease) + ": " + out;
    }
    case Type::LeaseEnded:
        // "ended: revoked by :1.7 (uid 0, pid 42, promiscctl): maintenance"
        return lease_name(e.lease) + " ended" +
               (e.reason.empty()
                    ? ""
                    : ": " + client::describe(e.end.reason.empty()
                                                  ? client::LeaseEnd{e.reason, {}, {}, {}}
                                                  : e.end));
    case Type::CaptureStarted: {
        std::string s = capture_name(e.capture) + " started";
        if (!e.capture.filter.empty())
            s += ", filter " + quote(e.capture.filter);
        if (!e.capture.format.empty())
            s += ", " + e.capture.format;
        return s;
    }
    case Type::CaptureChanged:
        return {}; // counters tick with every batch of frames
    case Type::CaptureFinished: {
        std::string s =
            capture_name(e.capture) + " finished" + (e.reason.empty() ? "" : ": " + e.reason);
        // The Capture object's counters; varlink's event has none.
        if (!e.capture.path.empty())
            s += " (" + std::to_string(e.capture.packets) + " packets, " +
                 std::to_string(e.capture.drops) + " dropped)";
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
    }
    return {};
}

const char* json_name(Type t) {
    switch (t) {
    case Type::LinkAdded:
        return "link-added";
    case Type::LinkChanged:
        return "link-changed";
    case Type::LinkRemoved:
        return "link-removed";
    case Type::LeaseGranted:
        return "lease-granted";
    case Type::LeaseChanged:
        return "lease-changed";
    case Type::LeaseEnded:
        return "lease-ended";
    case Type::CaptureStarted:
        return "capture-started";
    case Type::CaptureChanged:
        return "capture-changed";
    case Type::CaptureFinished:
        return "capture-finished";
    case Type::Conflict:
        return "conflict";
    case Type::FlagChanged:
        return "flag-changed";
    case Type::DaemonStarted:
        return "daemon-started";
    case Type::DaemonStopped:
        return "daemon-stopped";
    }
    return "unknown";
}

// The JSON object for an event; null for those not reported.
nlohmann::json json_of(const Event& e, History& h) {
    nlohmann::json j = {{"timestamp", e.timestamp_usec}, {"event", json_name(e.type)}};
    switch (e.type) {
    case Type::LinkAdded:
    case Type::LinkRemoved:
        j["link"] = to_json(e.link);
        break;
    case Type::LinkChanged:
        if (link_change(e).empty())
            return nullptr;
        j["link"] = to_json(e.link);
        j["previous"] = to_json(e.previous_link);
        j["changed"] = e.changed;
        if (has(e.changed, "AdminFlag"))
            j["cause"] = flag_set_by_daemon(e) ? "promiscd" : "other";
        break;
    case Type::LeaseGranted:
        j["lease"] = to_json(e.lease);
        break;
    case Type::LeaseChanged:
        j["lease"] = to_json(e.lease);
        j["previous"] = to_json(e.previous_lease);
        j["changed"] = e.changed;
        break;
    case Type::LeaseEnded:
        j["lease"] = to_json(e.lease);
        j["reason"] = e.reason;
        if (!e.end.revoked_by.empty())
            j["revoked_by"] = e.end.revoked_by;
        if (e.end.revoked_by_uid)
            j["revoked_by_uid"] = *e.end.revoked_by_uid;
        if (!e.end.message.empty())
            j["message"] = e.end.message;
        break;
    case Type::CaptureStarted:
        j["capture"] = to_json(e.capture);
        break;
    case Type::CaptureChanged:
        return nullptr;
    case Type::CaptureFinished:
        j["capture"] = to_json(e.capture);
        j["reason"] = e.reason;
        break;
    case Type::Conflict:
        j["interface"] = e.interface;
        j["clears"] = e.clears;
        break;
    case Type::FlagChanged: {
        const bool restored =
            e.flag_on && e.by == "promiscd" && h.cleared_outside.count(e.interface);
        flag_event(e, h); // keeps the history
        j["interface"] = e.interface;
        j["flag"] = e.flag_on;
        j["by"] = e.by;
        j["restored"] = restored;
        break;
    }
    case Type::DaemonStarted:
    case Type::DaemonStopped:
        break;
    }
    return j;
}

} // namespace

int monitor(Context& ctx) {
    auto& client = ctx.transport();
    EventLoop loop;
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
        loop.on_signal(sig, [&loop] { loop.exit(kSuccess); });
    // Exits 4 here when the daemon is not running: there is nothing to follow.
    auto watcher = client.watch();
    const auto json = ctx.globals().json;
    const Style& st = ctx.style();
    History history;
    watcher->on_event([&](const Event& e) {
        if (json != JsonMode::Off) {
            auto j = json_of(e, history);
            if (!j.is_null())
                print_json(std::cout, j, json);
        } else {
            history.flag_events = watcher->reports_flag_changes();
            auto line = text_of(e, st, now_usec(), history);
            if (!line.empty())
                std::cout << st.grey(format_timestamp(e.timestamp_usec)) << ' ' << line << '\n';
        }
        std::cout.flush();
    });
    client.attach(loop);
    if (!ctx.globals().quiet)
        std::cerr << "Monitoring promiscd (" << watcher->link_count() << " links, "
                  << watcher->lease_count() << " leases); Ctrl-C to stop.\n";
    return loop.run();
}

} // namespace promiscd::ctl
