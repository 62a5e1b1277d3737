// Control-plane measurements against a running promiscd, and their floors.
// bench/control_plane.py runs it inside the daemon's network namespace with
// the bus and varlink socket of a private stack; every figure is printed as
// one JSON object per line. Subcommands:
//   ping N                      D-Bus Peer.Ping to promiscd: per-call µs
//   setlink N IFACE             one RTM_SETLINK (promisc on/off) with its ack: µs
//   pairs N IFACE [VARLINK]     Acquire then Release, N times: µs per call
//   concurrent K SEC PREFIX [VARLINK]
//                               K clients (threads, own connections) on links
//                               PREFIX0..K-1, Acquire+Release for SEC s: ops/s, p50, p99
//   hold N CONNS IFACE...       CONNS D-Bus connections hold N leases spread
//                               over the links until stdin closes
//   reads N                     ListLinks, ListLeases, GetManagedObjects: µs
//   dump N                      a netlink RTM_GETLINK dump of every link: µs
//   external N IFACE            a lease is held on IFACE (enforce): clear the flag,
//                               time until promiscd set it again; floor: see the
//                               clear's notification, then one RTM_SETLINK
//   exit N IFACE                a client holding a lease is killed: time until
//                               the flag is cleared; floor: until NameOwnerChanged
#include <systemd/sd-bus.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

const char* kBusName = "org.promiscd.Promisc1";
const char* kRoot = "/org/promiscd/Promisc1";
const char* kManager = "org.promiscd.Promisc1.Manager";

double us_since(Clock::time_point t) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

json summary(std::vector<double> v) {
    if (v.empty())
        return json::object();
    std::sort(v.begin(), v.end());
    auto at = [&](double q) { return v[std::min(v.size() - 1, size_t(q * double(v.size())))]; };
    return {{"n", v.size()}, {"p50", at(0.5)}, {"p99", at(0.99)}, {"min", v.front()}};
}

void emit(const std::string& what, json j) {
    j["what"] = what;
    std::cout << j.dump() << std::endl;
}

[[noreturn]] void fail(const std::string& what, int r = 0) {
    throw std::runtime_error(what + (r ? std::string(": ") + std::strerror(-r) : ""));
}

sd_bus* open_bus() {
    sd_bus* bus = nullptr;
    int r = sd_bus_open_system(&bus);
    if (r < 0)
        fail("sd_bus_open_system", r);
    return bus;
}

// ---------------------------------------------------------------- netlink

class Rtnl {
public:
    explicit Rtnl(bool monitor = false) {
        fd_ = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        sockaddr_nl sa{};
        sa.nl_family = AF_NETLINK;
        if (monitor)
            sa.nl_groups = RTMGRP_LINK;
        if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
            fail("netlink socket");
        int big = 8 << 20;
        setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    }
    ~Rtnl() { close(fd_); }
    int fd() const { return fd_; }

    void set_promisc(int ifindex, bool on) {
        struct {
            nlmsghdr h;
            ifinfomsg i;
        } req{};
        req.h.nlmsg_len = sizeof req;
        req.h.nlmsg_type = RTM_SETLINK;
        req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
        req.h.nlmsg_seq = ++seq_;
        req.i.ifi_family = AF_UNSPEC;
        req.i.ifi_index = ifindex;
        req.i.ifi_flags = on ? IFF_PROMISC : 0;
        req.i.ifi_change = IFF_PROMISC;
        if (send(fd_, &req, sizeof req, 0) < 0)
            fail("RTM_SETLINK");
        char buf[4096];
        for (;;) {
            ssize_t n = recv(fd_, buf, sizeof buf, 0);
            if (n < 0)
                fail("RTM_SETLINK ack");
            for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n))
                if (h->nlmsg_type == NLMSG_ERROR && h->nlmsg_seq == seq_)
                    return;
        }
    }

    // A full dump of every link; returns how many.
    int dump() {
        struct {
            nlmsghdr h;
            ifinfomsg i;
        } req{};
        req.h.nlmsg_len = sizeof req;
        req.h.nlmsg_type = RTM_GETLINK;
        req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        req.h.nlmsg_seq = ++seq_;
        req.i.ifi_family = AF_UNSPEC;
        if (send(fd_, &req, sizeof req, 0) < 0)
            fail("RTM_GETLINK");
        std::vector<char> buf(1 << 16);
        int links = 0;
        for (;;) {
            ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
            if (n < 0)
                fail("dump");
            for (auto* h = reinterpret_cast<nlmsghdr*>(buf.data()); NLMSG_OK(h, n);
                 h = NLMSG_NEXT(h, n)) {
                if (h->nlmsg_type == NLMSG_DONE)
                    return links;
                if (h->nlmsg_type == RTM_NEWLINK)
                    ++links;
            }
        }
    }

    // Waits for an RTM_NEWLINK of ifindex whose admin bit is `on`.
    bool wait_flag(int ifindex, bool on, int timeout_ms = 5000) {
        char buf[1 << 16];
        const auto end = Clock::now() + std::chrono::milliseconds(timeout_ms);
        while (Clock::now() < end) {
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 100) <= 0)
                continue;
            ssize_t n = recv(fd_, buf, sizeof buf, 0);
            for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, n); h = NLMSG_NEXT(h, n)) {
                if (h->nlmsg_type != RTM_NEWLINK)
                    continue;
                auto* i = static_cast<ifinfomsg*>(NLMSG_DATA(h));
                if (i->ifi_index == ifindex && bool(i->ifi_flags & IFF_PROMISC) == on)
                    return true;
            }
        }
        return false;
    }
    void drain() {
        char buf[1 << 16];
        while (recv(fd_, buf, sizeof buf, MSG_DONTWAIT) > 0) {
        }
    }

private:
    int fd_;
    uint32_t seq_ = 0;
};

int ifindex_of(const std::string& name) {
    int i = static_cast<int>(if_nametoindex(name.c_str()));
    if (!i)
        fail("no link " + name);
    return i;
}

// ---------------------------------------------------------------- leases

// One client's way to take and give back a lease.
class Leaser {
public:
    virtual ~Leaser() = default;
    virtual std::string acquire(const std::string& iface) = 0; // a handle
    virtual void release(const std::string& handle) = 0;
};

class BusLeaser final : public Leaser {
public:
    BusLeaser() : bus_(open_bus()) {}
    ~BusLeaser() override { sd_bus_flush_close_unref(bus_); }
    std::string acquire(const std::string& iface) override {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message* reply = nullptr;
        int r = sd_bus_call_method(bus_, kBusName, kRoot, kManager, "AcquireLease", &e, &reply,
                                   "sa{sv}", iface.c_str(), 0);
        if (r < 0) {
            std::string msg = e.message ? e.message : "";
            sd_bus_error_free(&e);
            fail("AcquireLease: " + msg, r);
        }
        const char* path = nullptr;
        sd_bus_message_read(reply, "o", &path);
        std::string p = path;
        sd_bus_message_unref(reply);
        return p;
    }
    void release(const std::string& path) override {
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus_, kBusName, path.c_str(), "org.promiscd.Promisc1.Lease",
                                   "Release", &e, nullptr, "");
        sd_bus_error_free(&e);
        if (r < 0)
            fail("Release", r);
    }
    sd_bus* bus() { return bus_; }

private:
    sd_bus* bus_;
};

class VarlinkLeaser final : public Leaser {
public:
    explicit VarlinkLeaser(const std::string& path) {
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strncpy(sa.sun_path, path.c_str(), sizeof sa.sun_path - 1);
        if (connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
            fail("connect " + path);
    }
    ~VarlinkLeaser() override { close(fd_); }
    json call(const std::string& method, const json& params) {
        std::string msg = json{{"method", method}, {"parameters", params}}.dump();
        msg.push_back('\0');
        if (send(fd_, msg.data(), msg.size(), MSG_NOSIGNAL) < 0)
            fail("varlink send");
        for (;;) {
            auto nul = in_.find('\0');
            if (nul != std::string::npos) {
                json reply = json::parse(in_.substr(0, nul));
                in_.erase(0, nul + 1);
                if (reply.contains("error"))
                    fail(method + ": " + reply.dump());
                return reply["parameters"];
            }
            char buf[65536];
            ssize_t n = recv(fd_, buf, sizeof buf, 0);
            if (n <= 0)
                fail("varlink recv");
            in_.append(buf, static_cast<size_t>(n));
        }
    }
    std::string acquire(const std::string& iface) override {
        return std::to_string(
            call("org.promiscd.promisc.Acquire", {{"interface", iface}})["lease"]["id"]
                .get<uint64_t>());
    }
    void release(const std::string& id) override {
        call("org.promiscd.promisc.Release", {{"id", std::stoull(id)}});
    }

private:
    int fd_;
    std::string in_;
};

std::unique_ptr<Leaser> leaser(const std::string& varlink) {
    if (varlink.empty())
        return std::make_unique<BusLeaser>();
    return std::make_unique<VarlinkLeaser>(varlink);
}

// ---------------------------------------------------------------- commands

void cmd_ping(int n) {
    sd_bus* bus = open_bus();
    std::vector<double> v;
    for (int i = 0; i < n + 10; ++i) {
        auto t = Clock::now();
        sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = sd_bus_call_method(bus, kBusName, kRoot, "org.freedesktop.DBus.Peer", "Ping", &e,
                                   nullptr, "");
        sd_bus_error_free(&e);
        if (r < 0)
            fail("Ping", r);
        if (i >= 10)
            v.push_back(us_since(t));
    }
    sd_bus_flush_close_unref(bus);
    emit("ping", summary(v));
}

void cmd_setlink(int n, const std::string& iface) {
    Rtnl nl;
    const int idx = ifindex_of(iface);
    std::vector<double> v;
    for (int i = 0; i < n; ++i) {
        auto t = Clock::now();
        nl.set_promisc(idx, i % 2 == 0);
        v.push_back(us_since(t));
    }
    nl.set_promisc(idx, false);
    emit("setlink", summary(v));
}

void cmd_pairs(int n, const std::string& iface, const std::string& varlink) {
    auto l = leaser(varlink);
    std::vector<double> acq, rel;
    for (int i = 0; i < n + 10; ++i) {
        auto t = Clock::now();
        auto h = l->acquire(iface);
        double a = us_since(t);
        t = Clock::now();
        l->release(h);
        double r = us_since(t);
        if (i >= 10) {
            acq.push_back(a);
            rel.push_back(r);
        }
    }
    emit("pairs", {{"transport", varlink.empty() ? "dbus" : "varlink"},
                   {"acquire", summary(acq)},
                   {"release", summary(rel)}});
}

void cmd_concurrent(int k, double seconds, const std::string& prefix, const std::string& varlink) {
    std::atomic<bool> go{false}, stop{false};
    std::vector<std::vector<double>> lat(static_cast<size_t>(k));
    std::vector<long> ops(static_cast<size_t>(k));
    std::vector<std::thread> threads;
    std::atomic<int> ready{0};
    std::string error;
    for (int i = 0; i < k; ++i)
        threads.emplace_back([&, i] {
            try {
                auto l = leaser(varlink);
                const std::string iface = prefix + std::to_string(i);
                ++ready;
                while (!go)
                    std::this_thread::yield();
                while (!stop) {
                    auto t = Clock::now();
                    auto h = l->acquire(iface);
                    l->release(h);
                    lat[size_t(i)].push_back(us_since(t) / 2);
                    ops[size_t(i)] += 2;
                }
            } catch (const std::exception& e) {
                error = e.what();
                ++ready;
            }
        });
    while (ready < k)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    auto t0 = Clock::now();
    go = true;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& t : threads)
        t.join();
    double elapsed = us_since(t0) / 1e6;
    if (!error.empty())
        fail(error);
    std::vector<double> all;
    long total = 0;
    for (int i = 0; i < k; ++i) {
        all.insert(all.end(), lat[size_t(i)].begin(), lat[size_t(i)].end());
        total += ops[size_t(i)];
    }
    json s = summary(all);
    s["clients"] = k;
    s["ops_per_s"] = double(total) / elapsed;
    s["transport"] = varlink.empty() ? "dbus" : "varlink";
    emit("concurrent", s);
}

void cmd_hold(int n, int conns, const std::vector<std::string>& links) {
    std::vector<std::unique_ptr<BusLeaser>> cs;
    for (int i = 0; i < conns; ++i)
        cs.push_back(std::make_unique<BusLeaser>());
    auto t = Clock::now();
    for (int i = 0; i < n; ++i)
        cs[size_t(i % conns)]->acquire(links[size_t(i) % links.size()]);
    emit("hold", {{"leases", n}, {"connections", conns}, {"seconds", us_since(t) / 1e6}});
    // Hold until told; keep the connections served meanwhile.
    std::string line;
    std::getline(std::cin, line);
}

void cmd_reads(int n) {
    // A connection of its own per method: costly reads are limited per
    // connection (a burst of 32, then 16 a second).
    auto call = [&](const char* path, const char* iface, const char* method) {
        sd_bus* bus = open_bus();
        std::vector<double> v;
        for (int i = 0; i < n; ++i) {
            auto t = Clock::now();
            sd_bus_error e = SD_BUS_ERROR_NULL;
            sd_bus_message* reply = nullptr;
            int r = sd_bus_call_method(bus, kBusName, path, iface, method, &e, &reply, "");
            sd_bus_error_free(&e);
            if (r < 0)
                fail(method, r);
            sd_bus_message_unref(reply);
            v.push_back(us_since(t));
        }
        sd_bus_flush_close_unref(bus);
        return summary(v);
    };
    emit("reads", {{"ListLinks", call(kRoot, kManager, "ListLinks")},
                   {"ListLeases", call(kRoot, kManager, "ListLeases")},
                   {"GetManagedObjects",
                    call(kRoot, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects")}});
}

void cmd_dump(int n) {
    Rtnl nl;
    std::vector<double> v;
    int links = 0;
    for (int i = 0; i < n; ++i) {
        auto t = Clock::now();
        links = nl.dump();
        v.push_back(us_since(t));
    }
    json s = summary(v);
    s["links"] = links;
    emit("dump", s);
}

void cmd_external(int n, const std::string& iface) {
    const int idx = ifindex_of(iface);
    BusLeaser holder;
    auto lease = holder.acquire(iface);
    Rtnl ctl, mon(true);
    std::vector<double> reassert, floor;
    for (int i = 0; i < n; ++i) {
        mon.drain();
        auto t = Clock::now();
        ctl.set_promisc(idx, false);
        if (!mon.wait_flag(idx, true))
            fail("promiscd did not set the flag again");
        reassert.push_back(us_since(t));
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    // The floor: see the clear's notification, then set the flag ourselves.
    holder.release(lease);
    for (int i = 0; i < n; ++i) {
        ctl.set_promisc(idx, true);
        mon.drain();
        auto t = Clock::now();
        ctl.set_promisc(idx, false);
        if (!mon.wait_flag(idx, false))
            fail("no notification of the clear");
        ctl.set_promisc(idx, true);
        floor.push_back(us_since(t));
    }
    ctl.set_promisc(idx, false);
    emit("external", {{"reasserted", summary(reassert)}, {"floor", summary(floor)}});
}

void cmd_exit(int n, const std::string& iface) {
    const int idx = ifindex_of(iface);
    std::vector<double> cleared, owner_changed;
    sd_bus* watch = open_bus();
    for (int i = 0; i < n; ++i) {
        int ready[2];
        if (pipe(ready) < 0)
            fail("pipe");
        pid_t child = fork();
        if (child == 0) {
            close(ready[0]);
            BusLeaser l;
            l.acquire(iface);
            const char* name = nullptr;
            sd_bus_get_unique_name(l.bus(), &name);
            std::string nm = name;
            nm.push_back('\n');
            (void)!write(ready[1], nm.data(), nm.size());
            pause();
            _exit(0);
        }
        close(ready[1]);
        char buf[256] = {};
        ssize_t got = read(ready[0], buf, sizeof buf - 1);
        close(ready[0]);
        std::string name(buf, got > 0 ? size_t(got) - 1 : 0);
        std::string match = "type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged',"
                            "arg0='" +
                            name + "'";
        bool gone = false;
        sd_bus_slot* slot = nullptr;
        sd_bus_add_match(
            watch, &slot, match.c_str(),
            [](sd_bus_message*, void* u, sd_bus_error*) {
                *static_cast<bool*>(u) = true;
                return 0;
            },
            &gone);
        Rtnl mon(true);
        auto t = Clock::now();
        kill(child, SIGKILL);
        double seen_gone = -1, seen_clear = -1;
        while ((seen_gone < 0 || seen_clear < 0) && us_since(t) < 5e6) {
            while (sd_bus_process(watch, nullptr) > 0) {
            }
            if (gone && seen_gone < 0)
                seen_gone = us_since(t);
            if (seen_clear < 0 && mon.wait_flag(idx, false, 1))
                seen_clear = us_since(t);
            if (seen_gone < 0)
                sd_bus_wait(watch, 1000);
        }
        waitpid(child, nullptr, 0);
        sd_bus_slot_unref(slot);
        if (seen_gone < 0 || seen_clear < 0)
            fail("the owner's exit was not followed in time");
        owner_changed.push_back(seen_gone);
        cleared.push_back(seen_clear);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    sd_bus_flush_close_unref(watch);
    emit("exit", {{"cleared", summary(cleared)}, {"floor", summary(owner_changed)}});
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> a(argv + 1, argv + argc);
    try {
        if (a.size() >= 2 && a[0] == "ping")
            cmd_ping(std::stoi(a[1]));
        else if (a.size() >= 3 && a[0] == "setlink")
            cmd_setlink(std::stoi(a[1]), a[2]);
        else if (a.size() >= 3 && a[0] == "pairs")
            cmd_pairs(std::stoi(a[1]), a[2], a.size() > 3 ? a[3] : "");
        else if (a.size() >= 4 && a[0] == "concurrent")
            cmd_concurrent(std::stoi(a[1]), std::stod(a[2]), a[3], a.size() > 4 ? a[4] : "");
        else if (a.size() >= 4 && a[0] == "hold")
            cmd_hold(std::stoi(a[1]), std::stoi(a[2]), {a.begin() + 3, a.end()});
        else if (a.size() >= 2 && a[0] == "reads")
            cmd_reads(std::stoi(a[1]));
        else if (a.size() >= 2 && a[0] == "dump")
            cmd_dump(std::stoi(a[1]));
        else if (a.size() >= 3 && a[0] == "external")
            cmd_external(std::stoi(a[1]), a[2]);
        else if (a.size() >= 3 && a[0] == "exit")
            cmd_exit(std::stoi(a[1]), a[2]);
        else {
            std::fprintf(stderr, "control_plane: unknown command (see the source's header)\n");
            return 2;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "control_plane: %s\n", e.what());
        return 1;
    }
    return 0;
}
