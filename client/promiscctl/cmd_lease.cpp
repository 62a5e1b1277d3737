// hold, run, release, revoke and policy: the commands that change something.
#include "commands.hpp"
#include "event_loop.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <optional>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace promiscd::ctl {

namespace {

using promisc::Lease;

std::string describe(const Lease& l) {
    return "lease " + std::to_string(l.id()) + " on " + l.interface();
}

// "revoked by :1.7 (uid 0, pid 42, promiscctl): maintenance", or the reason
// alone ("expired"; "reason unknown" when there is none).
std::string how_it_ended(const Lease& l) {
    if (l.end_reason().empty())
        return "reason unknown";
    if (l.end_reason() == "revoked" && !l.end_detail().empty())
        return "revoked by " + l.end_detail();
    return l.end_reason();
}

// The link's policy as the daemon has it now ("" when it cannot say).
std::string policy_of(promisc::Client& c, const std::string& link) {
    try {
        for (const auto& l : c.links())
            if (l.name == link)
                return l.policy;
    } catch (const promisc::Error&) {
    }
    return {};
}

// What a state means, for the lease's link: an overridden lease under
// "enforce" is one promiscd fought for and gave up on; under "yield" it
// let the other agent have its way at once.
std::string explain_state(promisc::Client& t, const std::string& link, const std::string& state) {
    if (state == "pending")
        return " (the link is absent; the lease applies when it appears)";
    if (state != "overridden")
        return {};
    const std::string policy = policy_of(t, link);
    if (policy == "yield")
        return " (someone else cleared the flag; under policy yield promiscd leaves it cleared)";
    if (policy == "enforce")
        return " (another agent kept clearing the flag; promiscd set it again, then stopped "
               "fighting)";
    return " (someone else cleared the flag and promiscd no longer sets it again)";
}

const std::string kLeaseIdHelp = "a lease id (a number, see 'promiscctl leases') or a lease path";

promisc::LeaseOptions lease_options(std::uint64_t ttl, const std::string& reason, bool wait,
                                    const std::string& netns) {
    promisc::LeaseOptions o;
    o.ttl = std::chrono::seconds(ttl);
    o.reason = reason;
    o.wait = wait;
    o.netns = netns;
    return o;
}

} // namespace

std::string netns_spec(const std::string& arg) {
    const bool pid = !arg.empty() && arg.size() <= 10 &&
                     arg.find_first_not_of("0123456789") == std::string::npos;
    return pid ? "pid:" + arg : arg;
}

std::uint64_t lease_id_of_arg(const std::string& arg) {
    bool number = !arg.empty() && arg.size() <= 19 &&
                  arg.find_first_not_of("0123456789") == std::string::npos;
    if (number)
        return std::stoull(arg);
    if (auto id = lease_id_of(arg))
        return *id;
    throw UsageError(quote(arg) + " is not " + kLeaseIdHelp);
}

int hold(Context& ctx, const HoldArgs& args) {
    auto& client = ctx.client();
    const bool quiet = ctx.globals().quiet;
    EventLoop loop;
    std::optional<Lease> lease;
    // Blocked from here on and read by the loop: one that arrives during the
    // request waits, and releases the lease as soon as the loop runs.
    auto stop = [&] {
        if (lease->held()) {
            try {
                lease->release();
            } catch (const promisc::NoSuchLeaseError&) {
                // Ended meanwhile (its Ended signal is still queued).
            }
        }
        if (!quiet)
            std::cout << "Released " << describe(*lease) << ".\n" << std::flush;
        loop.exit(kSuccess);
    };
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
        loop.on_signal(sig, stop);

    {
        auto agent = ctx.polkit_agent();
        lease.emplace(
            client.acquire(args.link, lease_options(args.ttl, args.reason, args.wait, args.netns)));
    }
    if (!quiet) {
        const std::string state = promisc::to_string(lease->state());
        std::cout << "Holding " << describe(*lease) << " (" << state << ")"
                  << explain_state(client, args.link, state) << ".\n";
        if (args.ttl)
            std::cout << "It expires in " << format_timespan(args.ttl * 1'000'000) << ".\n";
        std::cout << "Press Ctrl-C (or send SIGTERM) to release it.\n" << std::flush;
    }
    lease->on_change([&](promisc::LeaseState from_state, promisc::LeaseState to_state) {
        if (to_state == promisc::LeaseState::Ended) {
            const std::string& reason = lease->end_reason();
            if (reason == "expired" && args.ttl) {
                if (!quiet)
                    std::cout << "Lease " << lease->id() << " on " << lease->interface()
                              << " expired.\n"
                              << std::flush;
                loop.exit(kSuccess);
                return;
            }
            if (reason == "lost-in-restart")
                std::cerr << "promiscctl: " << describe(*lease)
                          << " did not survive the restart of promiscd\n";
            else
                std::cerr << "promiscctl: " << describe(*lease)
                          << " ended: " << how_it_ended(*lease) << '\n';
            loop.exit(kFailed);
            return;
        }
        const std::string from = promisc::to_string(from_state);
        const std::string to = promisc::to_string(to_state);
        if (!quiet)
            std::cout << "Lease " << lease->id() << " on " << lease->interface() << ": " << from
                      << " -> " << to << explain_state(client, lease->interface(), to) << ".\n"
                      << std::flush;
    });
    client.on_daemon([&](bool running) {
        if (!running) {
            std::cerr << "promiscctl: promiscd left the bus; it recovers the lease if it comes "
                         "back while promiscctl runs\n";
            return;
        }
        if (!lease->held())
            return;
        if (!quiet)
            std::cout << "promiscd is back; " << describe(*lease) << " is "
                      << promisc::to_string(lease->state()) << ".\n"
                      << std::flush;
    });
    loop.attach(client);
    return loop.run();
}

int run(Context& ctx, const RunArgs& args) {
    auto& client = ctx.client();
    const bool quiet = ctx.globals().quiet;
    EventLoop loop;
    pid_t child = -1;
    // sd-event watches the child through SIGCHLD, which must be blocked
    // before the child can exit.
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, nullptr);
    // Signals meant for "the command" reach it; promiscctl stays to release
    // the lease once the command has exited.
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
        loop.on_signal(sig, [&child, sig] {
            if (child > 0)
                ::kill(child, sig);
        });

    std::optional<Lease> lease;
    {
        // Only for the request: the command gets the terminal to itself.
        auto agent = ctx.polkit_agent();
        lease.emplace(
            client.acquire(args.link, lease_options(0, args.reason, args.wait, args.netns)));
    }
    // The command owns standard output; promiscctl speaks on standard error.
    lease->on_change([&](promisc::LeaseState from, promisc::LeaseState to) {
        if (to == promisc::LeaseState::Ended) {
            std::cerr << "promiscctl: warning: " << describe(*lease) << " ended ("
                      << how_it_ended(*lease) << ") while " << quote(args.command[0]) << " runs\n";
            return;
        }
        if (!quiet)
            std::cerr << "promiscctl: " << describe(*lease) << ": " << promisc::to_string(from)
                      << " -> " << promisc::to_string(to)
                      << explain_state(client, lease->interface(), promisc::to_string(to)) << '\n';
    });
    loop.attach(client, [&](const promisc::Error& e) {
        std::cerr << "promiscctl: warning: " << e.what() << "; the lease is gone while "
                  << quote(args.command[0]) << " runs\n";
    });

    // The command starts with the signal state a shell would give it.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD})
        sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> argv;
    for (const auto& a : args.command)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    int err = posix_spawnp(&child, argv[0], nullptr, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    if (err != 0) {
        std::cerr << "promiscctl: cannot run " << quote(args.command[0]) << ": "
                  << std::strerror(err) << '\n';
        // As a shell would say it: not found, or found but not runnable.
        return err == ENOENT ? 127 : 126;
    }
    loop.on_child(child, [&](const siginfo_t& si) {
        int code = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
        child = -1;
        loop.exit(code);
    });
    int code = loop.run();
    if (lease->held()) {
        try {
            lease->release();
        } catch (const promisc::Error&) {
            // Gone already; the daemon ends it when promiscctl leaves the bus anyway.
        }
    }
    return code;
}

int release(Context& ctx, const std::string& lease) {
    const auto id = lease_id_of_arg(lease);
    auto& client = ctx.client();
    auto agent = ctx.polkit_agent();
    client.release(id);
    return kSuccess;
}

int revoke(Context& ctx, const std::string& lease, const std::string& reason) {
    const auto id = lease_id_of_arg(lease);
    auto& client = ctx.client();
    auto agent = ctx.polkit_agent();
    client.revoke(id, reason);
    return kSuccess;
}

int policy(Context& ctx, const std::string& link, const std::string& policy) {
    auto& client = ctx.client();
    auto agent = ctx.polkit_agent();
    client.set_policy(link, policy);
    return kSuccess;
}

} // namespace promiscd::ctl
