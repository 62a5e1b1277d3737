#include "netns.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sched.h>
#include <stdexcept>
#include <unistd.h>

namespace promiscd::testing {

namespace {

std::string ip_failure(const std::vector<std::string>& argv, const CommandResult& r) {
    std::string cmd;
    for (const auto& a : argv)
        cmd += (cmd.empty() ? "" : " ") + a;
    return "command failed (" + std::to_string(r.status) + "): " + cmd + "\n" + r.out + r.err;
}

std::string run_ok(const std::vector<std::string>& argv) {
    auto r = run(argv);
    if (!r.ok())
        throw std::runtime_error(ip_failure(argv, r));
    return r.out;
}

LinkState parse_link(const nlohmann::json& j) {
    LinkState s;
    s.ifindex = j.at("ifindex").get<int>();
    s.name = j.at("ifname").get<std::string>();
    s.flags = j.value("flags", std::vector<std::string>{});
    s.mtu = j.value("mtu", 0u);
    s.operstate = j.value("operstate", std::string{});
    s.promiscuity = j.value("promiscuity", 0u);
    s.allmulti_count = j.value("allmulti", 0u);
    return s;
}

} // namespace

Netns::Netns() : name_(unique_name("pd")) {
    run_ok({"ip", "netns", "add", name_});
    try {
        run_ok({"ip", "-n", name_, "link", "set", "dev", "lo", "up"});
    } catch (...) {
        run({"ip", "netns", "del", name_});
        throw;
    }
}

Netns::~Netns() {
    // Links go with the namespace; a process still inside keeps it alive until it
    // exits, but the name is gone at once.
    try {
        run({"ip", "netns", "del", name_});
    } catch (...) {
    }
}

std::string Netns::path() const {
    return "/run/netns/" + name_;
}

std::vector<std::string> Netns::wrap(std::vector<std::string> argv) const {
    std::vector<std::string> out{"ip", "netns", "exec", name_};
    out.insert(out.end(), std::make_move_iterator(argv.begin()),
               std::make_move_iterator(argv.end()));
    return out;
}

CommandResult Netns::exec(const std::string& cmd) const {
    return run(wrap({"sh", "-c", cmd}));
}

std::string Netns::exec_ok(const std::string& cmd) const {
    auto r = exec(cmd);
    if (!r.ok())
        throw std::runtime_error("command failed (" + std::to_string(r.status) + ") in netns " +
                                 name_ + ": " + cmd + "\n" + r.out + r.err);
    return r.out;
}

Enter::Enter(const Netns& ns) {
    saved_fd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (saved_fd_ < 0)
        throw std::runtime_error(std::string("cannot open own network namespace: ") +
                                 std::strerror(errno));
    int target = ::open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (target < 0 || ::setns(target, CLONE_NEWNET) < 0) {
        int err = errno;
        if (target >= 0)
            ::close(target);
        ::close(saved_fd_);
        throw std::runtime_error("cannot enter network namespace " + ns.name() + ": " +
                                 std::strerror(err));
    }
    ::close(target);
}

Enter::~Enter() {
    if (::setns(saved_fd_, CLONE_NEWNET) < 0) {
        // Every later test would run in the wrong namespace and act on its links.
        std::fprintf(stderr, "cannot return to the original network namespace: %s\n",
                     std::strerror(errno));
        std::abort();
    }
    ::close(saved_fd_);
}

VethPair add_veth(const Netns& ns, std::string name, std::string peer_name) {
    VethPair p{name.empty() ? unique_name("v") : std::move(name),
               peer_name.empty() ? unique_name("v") : std::move(peer_name)};
    // Always "name X" and "dev X": ip takes a bare "a..." word for "address".
    run_ok({"ip", "-n", ns.name(), "link", "add", "name", p.name, "type", "veth", "peer", "name",
            p.peer_name});
    return p;
}

VethPair add_veth(const Netns& ns, const Netns& peer_ns, std::string name, std::string peer_name) {
    VethPair p{name.empty() ? unique_name("v") : std::move(name),
               peer_name.empty() ? unique_name("v") : std::move(peer_name)};
    run_ok({"ip", "-n", ns.name(), "link", "add", "name", p.name, "type", "veth", "peer", "name",
            p.peer_name, "netns", peer_ns.name()});
    return p;
}

std::string add_ifb(const Netns& ns, std::string name) {
    if (name.empty())
        name = unique_name("i");
    run_ok({"ip", "-n", ns.name(), "link", "add", "name", name, "type", "ifb"});
    return name;
}

bool dummy_supported() {
    static const bool supported = [] {
        Netns probe;
        return run({"ip", "-n", probe.name(), "link", "add", "name", "probe0", "type", "dummy"})
            .ok();
    }();
    return supported;
}

std::string add_plain_link(const Netns& ns, std::string name) {
    if (!dummy_supported())
        return add_ifb(ns, std::move(name));
    if (name.empty())
        name = unique_name("d");
    run_ok({"ip", "-n", ns.name(), "link", "add", "name", name, "type", "dummy"});
    return name;
}

bool LinkState::has_flag(std::string_view flag) const {
    for (const auto& f : flags)
        if (f == flag)
            return true;
    return false;
}

std::optional<LinkState> link_state(const Netns& ns, const std::string& dev) {
    std::vector<std::string> argv{"ip", "-n", ns.name(), "-j", "-d", "link", "show", "dev", dev};
    auto r = run(argv);
    if (!r.ok()) {
        if (r.err.find("does not exist") != std::string::npos)
            return std::nullopt;
        throw std::runtime_error(ip_failure(argv, r));
    }
    auto j = nlohmann::json::parse(r.out);
    if (!j.is_array() || j.size() != 1)
        throw std::runtime_error("unexpected `ip -j link show dev " + dev + "` output: " + r.out);
    return parse_link(j.at(0));
}

std::vector<LinkState> link_states(const Netns& ns) {
    auto out = run_ok({"ip", "-n", ns.name(), "-j", "-d", "link", "show"});
    std::vector<LinkState> links;
    for (const auto& j : nlohmann::json::parse(out))
        links.push_back(parse_link(j));
    return links;
}

} // namespace promiscd::testing
