// A program outside the tree, built by test_libpromisc with nothing but
// `pkg-config promisc` against an installed libpromisc, exercising its C++
// API against the real daemon. It prints what happened, one line each, and
// waits for a line on standard input where the test wants to look around.
//
//   libpromisc_check [--varlink SOCKET] raii|watch|renew|next|errors|denied|monitor LINK
//   libpromisc_check [--varlink SOCKET] admin LINK LEASE-ID
#include <promisc/promisc.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;

promisc::ClientOptions options;

void say(const std::string& line) {
    std::cout << line << std::endl;
}

void wait_for_test() {
    std::string line;
    std::getline(std::cin, line);
}

std::string hex(const std::vector<std::uint8_t>& data) {
    std::string out;
    char b[3];
    for (auto c : data) {
        std::snprintf(b, sizeof b, "%02x", c);
        out += b;
    }
    return out;
}

// The most derived class of e, by catching it as each of them.
std::string class_of(const promisc::Error& e) {
    if (dynamic_cast<const promisc::NoSuchInterfaceError*>(&e))
        return "NoSuchInterfaceError";
    if (dynamic_cast<const promisc::InvalidArgumentError*>(&e))
        return "InvalidArgumentError";
    if (dynamic_cast<const promisc::InvalidFilterError*>(&e))
        return "InvalidFilterError";
    if (dynamic_cast<const promisc::QuotaExceededError*>(&e))
        return "QuotaExceededError";
    if (dynamic_cast<const promisc::NoSuchLeaseError*>(&e))
        return "NoSuchLeaseError";
    if (dynamic_cast<const promisc::NoSuchCaptureError*>(&e))
        return "NoSuchCaptureError";
    if (dynamic_cast<const promisc::NotOwnerError*>(&e))
        return "NotOwnerError";
    if (dynamic_cast<const promisc::AccessDeniedError*>(&e))
        return "AccessDeniedError";
    if (dynamic_cast<const promisc::InteractiveAuthorizationRequiredError*>(&e))
        return "InteractiveAuthorizationRequiredError";
    if (dynamic_cast<const promisc::LimitsExceededError*>(&e))
        return "LimitsExceededError";
    if (dynamic_cast<const promisc::NotSupportedError*>(&e))
        return "NotSupportedError";
    if (dynamic_cast<const promisc::DaemonUnreachableError*>(&e))
        return "DaemonUnreachableError";
    return "Error";
}

// "CASE label class code errno name | message", or "CASE label no error".
template <typename F>
void expect_error(const std::string& label, F&& f) {
    try {
        f();
        say("CASE " + label + " no error");
    } catch (const promisc::Error& e) {
        say("CASE " + label + " " + class_of(e) + " " + promisc::to_string(e.code()) + " " +
            std::to_string(promisc::errno_of(e.code())) + " " +
            (e.name().empty() ? "-" : e.name()) + " | " + e.what());
    }
}

int raii(const std::string& link) {
    promisc::Client client(options);
    {
        promisc::Lease lease = client.acquire(link);
        say("HELD " + std::to_string(lease.id()) + " " + promisc::to_string(lease.state()));
        wait_for_test();
    }
    say("RELEASED");
    wait_for_test();
    return 0;
}

int watch(const std::string& link) {
    promisc::Client client(options);
    promisc::Lease lease = client.acquire(link);
    lease.on_change([&](promisc::LeaseState from, promisc::LeaseState to) {
        say(std::string("CHANGE ") + promisc::to_string(from) + " " + promisc::to_string(to));
    });
    say("HELD " + std::to_string(lease.id()));
    while (lease.held())
        client.process(200ms);
    say("ENDED " + lease.end_reason() + " | " + lease.end_detail());
    return 0;
}

int renew(const std::string& link) {
    promisc::Client client(options);
    promisc::LeaseOptions o;
    o.ttl = std::chrono::seconds(2);
    promisc::Lease lease = client.acquire(link, o);
    lease.renew(std::chrono::seconds(0));
    const auto end = std::chrono::steady_clock::now() + 3500ms;
    while (std::chrono::steady_clock::now() < end)
        client.process(100ms);
    say(std::string("AFTER ") + promisc::to_string(lease.state()));
    lease.release();
    say("RELEASED");
    return 0;
}

int next(const std::string& link) {
    promisc::Client client(options);
    promisc::CaptureOptions o;
    o.filter = "ether proto 0x88b5";
    promisc::Capture capture = client.capture(link, o);
    const auto t0 = std::chrono::steady_clock::now();
    auto f = capture.next(700ms);
    const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - t0);
    say(std::string("IDLE ") + (f ? "frame" : "nothing") + " after " +
        std::to_string(waited.count()) + " ms");
    say("READY");
    f = capture.next(20s);
    if (!f) {
        say("NO FRAME");
        return 1;
    }
    const auto ns = f->timestamp.time_since_epoch().count();
    say("FRAME " + std::to_string(f->data.size()) + " " + std::to_string(f->original_length) + " " +
        std::to_string(f->link_type) + " " + std::to_string(ns) + " " + hex(f->data));
    say("STATS frames=" + std::to_string(capture.stats().frames));
    capture.stop();
    while (!capture.ended())
        capture.next(1s);
    const auto s = capture.stats();
    say("ENDED " + capture.end_reason() + " final=" + (s.final ? "yes" : "no"));
    return 0;
}

int errors(const std::string& link) {
    promisc::Client client(options);
    expect_error("nosuch", [&] { client.acquire("nosuch0"); });
    expect_error("empty", [&] { client.acquire(""); });
    expect_error("filter", [&] {
        promisc::CaptureOptions o;
        o.filter = "ether proto nonsense";
        client.capture(link, o);
    });
    expect_error("released-twice", [&] {
        promisc::Lease lease = client.acquire(link);
        lease.release();
        lease.release();
    });
    expect_error("password", [&] { client.capture("any"); });
    expect_error("quota", [&] {
        std::vector<promisc::Lease> held;
        for (int i = 0; i < 3; ++i)
            held.push_back(client.acquire(link));
    });
    expect_error("unreachable", [&] {
        promisc::ClientOptions o;
        o.transport = promisc::Transport::Varlink;
        o.varlink_socket = "/nonexistent/promiscd/io.promiscd";
        promisc::Client nowhere(o);
    });
    return 0;
}

int denied(const std::string& link) {
    promisc::Client client(options);
    expect_error("acquire", [&] { client.acquire(link); });
    expect_error("capture", [&] { client.capture(link); });
    say("LEASES " + std::to_string(client.leases().size()));
    return 0;
}

// "BEGAN ...", then one line per event about link: "EVENT <type> <link>
// <lease or capture id> <state, flag or reason> by=<who> | <detail>", until
// a second after the second lease-ended (or 30 s).
int monitor(const std::string& link) {
    promisc::Client client(options);
    promisc::Monitor monitor = client.monitor();
    std::size_t leases_on_link = 0;
    for (const auto& l : monitor.leases())
        leases_on_link += l.interface == link;
    bool link_known = false;
    for (const auto& l : monitor.links())
        link_known = link_known || l.name == link;
    std::optional<std::chrono::steady_clock::time_point> until;
    int ended = 0;
    monitor.on_event([&](const promisc::Event& e) {
        if (e.interface != link)
            return;
        std::string id = "-";
        std::string what = "-";
        if (e.lease) {
            id = std::to_string(e.lease->id);
            what = promisc::to_string(e.lease->state);
        } else if (e.capture) {
            id = std::to_string(e.capture->id);
        }
        if (!e.reason.empty())
            what = e.reason;
        if (e.type == promisc::Event::Type::FlagChanged)
            what = e.flag ? "on" : "off";
        say("EVENT " + std::string(promisc::to_string(e.type)) + " " + e.interface + " " + id +
            " " + what + " by=" + (e.by.empty() ? "-" : e.by) + " | " + e.detail);
        if (e.type == promisc::Event::Type::LeaseEnded && ++ended == 2)
            until = std::chrono::steady_clock::now() + 1s;
    });
    say("BEGAN link=" + std::string(link_known ? "listed" : "missing") +
        " leases=" + std::to_string(leases_on_link));
    const auto end = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < (until ? *until : end))
        client.process(100ms);
    say(until ? "DONE" : "TIMEOUT");
    return until ? 0 : 1;
}

std::string policy_of(promisc::Client& client, const std::string& link) {
    for (const auto& l : client.links())
        if (l.name == link)
            return l.policy;
    return "(no such link)";
}

// Administration, as whoever runs it: CASE lines, and the link's policy
// after each change.
int admin(const std::string& link, std::uint64_t lease) {
    promisc::Client client(options);
    expect_error("revoke-nosuch", [&] { client.revoke(987654321, "x"); });
    expect_error("policy-bad", [&] { client.set_policy(link, "sometimes"); });
    expect_error("policy-nosuch", [&] { client.set_policy("nosuch0", "yield"); });
    expect_error("policy-yield", [&] { client.set_policy(link, "yield"); });
    say("POLICY " + policy_of(client, link));
    expect_error("policy-enforce", [&] { client.set_policy(link, "enforce"); });
    say("POLICY " + policy_of(client, link));
    expect_error("revoke", [&] { client.revoke(lease, "maintenance"); });
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    int i = 1;
    if (argc > 2 && std::strcmp(argv[1], "--varlink") == 0) {
        options.transport = promisc::Transport::Varlink;
        options.varlink_socket = argv[2];
        i = 3;
    }
    if (argc < i + 2 || argc > i + 3) {
        std::cerr << "usage: libpromisc_check [--varlink SOCKET] COMMAND LINK [LEASE-ID]\n";
        return 2;
    }
    const std::string command = argv[i];
    const std::string link = argv[i + 1];
    say(std::string("LIBRARY ") + promisc::version());
    try {
        if (command == "raii")
            return raii(link);
        if (command == "watch")
            return watch(link);
        if (command == "renew")
            return renew(link);
        if (command == "next")
            return next(link);
        if (command == "errors")
            return errors(link);
        if (command == "denied")
            return denied(link);
        if (command == "monitor")
            return monitor(link);
        if (command == "admin" && argc == i + 3)
            return admin(link, std::strtoull(argv[i + 2], nullptr, 10));
    } catch (const promisc::Error& e) {
        say("FAILED " + class_of(e) + " " + e.what());
        return 1;
    }
    std::cerr << "unknown command " << command << '\n';
    return 2;
}
