// status and leases: what the daemon sees, as tables, detail or JSON.
#include "commands.hpp"
#include "pager.hpp"

#include <algorithm>
#include <iostream>
#include <map>

namespace promiscd::ctl {

namespace {

using promisc::LeaseInfo;
using LinkInfo = promisc::Link;

std::string yes_no(bool b) {
    return b ? "yes" : "no";
}

std::string flag_cause(const LinkInfo& l) {
    if (!l.admin_flag)
        return "off";
    if (l.origin == "daemon")
        return "on, set by promiscd";
    return "on, set outside promiscd (kept after the last lease)";
}

// "root (uid 0), pid 123 (python3)"
std::string owner_of(const LeaseInfo& l) {
    // Leases promiscd holds by its own configuration have no process.
    if (l.owner == "config:static")
        return "promiscd's configuration (static lease, owner config:static)";
    if (l.owner == "config:hold")
        return "promiscd --hold (owner config:hold)";
    std::string s = user_label(l.uid);
    if (user_name(l.uid))
        s += " (uid " + std::to_string(l.uid) + ")";
    s += ", pid " + std::to_string(l.pid);
    if (!l.command.empty())
        s += " (" + l.command + ")";
    return s;
}

// A link of another network namespace shows which: "eth0 (netns blue)".
std::string link_label(const std::string& name, const std::string& netns,
                       std::uint64_t netns_inode) {
    if (netns_inode == 0)
        return name;
    return name + " (netns " + (netns.empty() ? std::to_string(netns_inode) : netns) + ")";
}

void print_link_table(Context& ctx, const std::vector<LinkInfo>& links) {
    const Style& st = ctx.style();
    Table t({"IDX", "LINK", "PROMISC", "FLAG", "COUNT", "ORIGIN", "LEASES", "POLICY"});
    for (const auto& l : links) {
        std::string promisc = yes_no(l.promiscuous);
        std::string flag = l.admin_flag ? "on" : "off";
        const std::string name = link_label(l.name, l.netns, l.netns_inode);
        t.add_row({Table::plain(std::to_string(l.index)),
                   {name, st.bold(name)},
                   {promisc, st.state(promisc)},
                   {flag, st.state(flag)},
                   Table::plain(std::to_string(l.promiscuity)),
                   {l.origin, st.state(l.origin)},
                   Table::plain(std::to_string(l.leases)),
                   Table::plain(l.policy)});
    }
    bool legend = ctx.globals().legend;
    t.print(std::cout, st, legend);
    if (legend)
        std::cout << '\n'
                  << links.size() << (links.size() == 1 ? " link" : " links") << " listed.\n";
}

void print_link_detail(Context& ctx, const LinkInfo& l, const std::vector<LeaseInfo>& leases,
                       std::uint64_t now) {
    const Style& st = ctx.style();
    auto field = [](const char* name) {
        std::string s(name);
        return std::string(12 - std::min<size_t>(12, s.size()), ' ') + s + ": ";
    };
    std::cout << (l.promiscuous ? st.green("●") : "●") << ' ' << st.bold(l.name) << " (index "
              << l.index << ")\n";
    std::cout << field("Promiscuous") << st.state(yes_no(l.promiscuous)) << " (kernel count "
              << l.promiscuity << ")\n";
    std::cout << field("Admin flag") << flag_cause(l) << '\n';
    std::cout << field("Policy") << l.policy << '\n';
    std::cout << field("Leases") << l.leases << '\n';
    for (const auto& x : leases) {
        if (x.interface != l.name)
            continue;
        std::cout << std::string(14, ' ') << x.id << ' ' << st.state(state_of(x)) << ", "
                  << owner_of(x) << ", acquired " << format_relative(usec_of(x.acquired), now)
                  << ", expires " << format_relative(usec_of(x.expires), now);
        if (!x.reason.empty())
            std::cout << ": " << x.reason;
        std::cout << '\n';
    }
}

} // namespace

int status(Context& ctx, const std::vector<std::string>& names) {
    auto& client = ctx.client();
    auto links = client.links();
    std::sort(links.begin(), links.end(),
              [](const LinkInfo& a, const LinkInfo& b) { return a.index < b.index; });

    if (names.empty()) {
        Pager pager(ctx.globals().pager);
        if (ctx.globals().json != JsonMode::Off) {
            auto j = nlohmann::json::array();
            for (const auto& l : links)
                j.push_back(to_json(l));
            print_json(std::cout, j, ctx.globals().json);
        } else {
            print_link_table(ctx, links);
        }
        return kSuccess;
    }

    // Every name must exist before anything is printed.
    std::vector<LinkInfo> chosen;
    for (const auto& name : names) {
        auto it = std::find_if(links.begin(), links.end(),
                               [&](const LinkInfo& l) { return l.name == name; });
        if (it == links.end())
            throw promisc::NoSuchInterfaceError({}, "interface " + quote(name) + " does not exist");
        chosen.push_back(*it);
    }
    auto leases = client.leases();
    std::sort(leases.begin(), leases.end(),
              [](const LeaseInfo& a, const LeaseInfo& b) { return a.id < b.id; });
    Pager pager(ctx.globals().pager);
    if (ctx.globals().json != JsonMode::Off) {
        auto j = nlohmann::json::array();
        for (const auto& l : chosen) {
            auto o = to_json(l);
            o["lease_list"] = nlohmann::json::array();
            for (const auto& x : leases)
                if (x.interface == l.name)
                    o["lease_list"].push_back(to_json(x));
            j.push_back(o);
        }
        print_json(std::cout, j, ctx.globals().json);
        return kSuccess;
    }
    auto now = now_usec();
    for (size_t i = 0; i < chosen.size(); ++i) {
        if (i)
            std::cout << '\n';
        print_link_detail(ctx, chosen[i], leases, now);
    }
    return kSuccess;
}

int leases(Context& ctx) {
    auto leases = ctx.client().leases();
    std::sort(leases.begin(), leases.end(),
              [](const LeaseInfo& a, const LeaseInfo& b) { return a.id < b.id; });
    Pager pager(ctx.globals().pager);
    if (ctx.globals().json != JsonMode::Off) {
        auto j = nlohmann::json::array();
        for (const auto& l : leases)
            j.push_back(to_json(l));
        print_json(std::cout, j, ctx.globals().json);
        return kSuccess;
    }
    const Style& st = ctx.style();
    auto now = now_usec();
    Table t({"ID", "LINK", "STATE", "USER", "PID", "COMMAND", "ACQUIRED", "EXPIRES", "REASON"});
    for (const auto& l : leases) {
        std::string command = l.command.empty() ? "-" : l.command;
        const std::string link = link_label(l.interface, l.netns, l.netns_inode);
        t.add_row({Table::plain(std::to_string(l.id)),
                   {link, st.bold(link)},
                   {state_of(l), st.state(state_of(l))},
                   Table::plain(user_label(l.uid)),
                   Table::plain(std::to_string(l.pid)),
                   Table::plain(command),
                   Table::plain(format_relative(usec_of(l.acquired), now)),
                   Table::plain(format_relative(usec_of(l.expires), now)),
                   Table::plain(l.reason.empty() ? "-" : l.reason)});
    }
    bool legend = ctx.globals().legend;
    t.print(std::cout, st, legend);
    if (legend)
        std::cout << '\n'
                  << leases.size() << (leases.size() == 1 ? " lease" : " leases") << " listed.\n";
    return kSuccess;
}

} // namespace promiscd::ctl
