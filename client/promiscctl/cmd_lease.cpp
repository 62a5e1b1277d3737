// hold, run, release, revoke and policy: the commands that change something.
#include "commands.hpp"
#include "event_loop.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace promiscd::ctl {

namespace {

using Lease = HeldLease;

std::string describe(const Lease& l) {
    return "lease " + std::to_string(l.id()) + " on " + l.info().interface;
}

// The link's policy as the daemon has it now ("" when it cannot say).
std::string policy_of(Transport& t, const std::string& link) {
    try {
        for (const auto& l : t.list_links())
            if (l.name == link)
                return l.policy;
    } catch (const client::Error&) {
    }
    return {};
}

// What a state means, for the lease's link: an overridden lease under
// "enforce" is one promiscd fought for and gave up on; under "yield" it
// let the other agent have its way at once.
std::string explain_state(Transport& t, const std::string& link, const std::string& state) {
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

} // namespace

std::string lease_path_of(const std::string& arg) {
    bool number = !arg.empty() && arg.find_first_not_of("0123456789") == std::string::npos;
    // A number is the last element of a lease path.
    auto id = client::id_of_path(number ? "/" + arg : arg);
    if (id && (number || arg == client::lease_path(*id)))
        return client::lease_path(*id);
    throw UsageError(quote(arg) + " is not " + kLeaseIdHelp);
}

int hold(Context& ctx, const HoldArgs& args) {
    auto& client = ctx.transport();
    const bool quiet = ctx.globals().quiet;
    EventLoop loop;
    std::unique_ptr<Lease> lease;
    // Blocked from here on and read by the loop: one that arrives during the
    // request waits, and releases the lease as soon as the loop runs.
    auto stop = [&] {
        if (!lease->ended()) {
            try {
                lease->release();
            } catch (const client::Error& e) {
                // Ended meanwhile (its Ended signal is still queued).
                if (e.kind() != client::ErrorKind::NoSuchLease)
                    throw;
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
        lease = client.acquire(args.link, {args.ttl, args.reason, args.wait});
    }
    if (!quiet) {
        std::cout << "Holding " << describe(*lease) << " (" << lease->info().state << ")"
                  << explain_state(client, args.link, lease->info().state) << ".\n";
        if (args.ttl)
            std::cout << "It expires in " << format_timespan(args.ttl * 1'000'000) << ".\n";
        std::cout << "Press Ctrl-C (or send SIGTERM) to release it.\n" << std::flush;
    }
    lease->on_state_changed([&](const std::string& from, const std::string& to) {
        if (!quiet)
            std::cout << "Lease " << lease->id() << " on " << lease->info().interface << ": "
                      << from << " -> " << to << explain_state(client, lease->info().interface, to)
                      << ".\n"
                      << std::flush;
    });
    lease->on_ended([&](const std::string& reason) {
        if (reason == "expired" && args.ttl) {
            if (!quiet)
                std::cout << "Lease " << lease->id() << " on "
                          << lease->info().interface << " expired.\n"
                          << std::flush;
            loop.exit(kSuccess);
            return;
        }
        // "revoked by :1.7 (uid 0, pid 42, promiscctl): maintenance"
        std::cerr << "promiscctl: " << describe(*lease)
                  << " ended: " << client::describe(lease->end()) << '\n';
        loop.exit(kFailed);
    });
    client.on_daemon_presence([&](bool running) {
        if (!running) {
            std::cerr << "promiscctl: promiscd left the bus; it recovers the lease if it comes "
                         "back while promiscctl runs\n";
            return;
        }
        if (lease->ended())
            return;
        if (!lease->refresh()) {
            std::cerr << "promiscctl: " << describe(*lease)
                      << " did not survive the restart of promiscd\n";
            loop.exit(kFailed);
            return;
        }
        if (!quiet)
            std::cout << "promiscd is back; " << describe(*lease) << " is " << lease->info().state
                      << ".\n"
                      << std::flush;
    });
    client.attach(loop);
    return loop.run();
}

int run(Context& ctx, const RunArgs& args) {
    auto& client = ctx.transport();
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

    std::unique_ptr<Lease> lease;
    {
        // Only for the request: the command gets the terminal to itself.
        auto agent = ctx.polkit_agent();
        lease = client.acquire(args.link, {0, args.reason, args.wait});
    }
    // The command owns standard output; promiscctl speaks on standard error.
    lease->on_state_changed([&](const std::string& from, const std::string& to) {
        if (!quiet)
            std::cerr << "promiscctl: " << describe(*lease) << ": " << from << " -> " << to
                      << explain_state(client, lease->info().interface, to) << '\n';
    });
    lease->on_ended([&](const std::string&) {
        std::cerr << "promiscctl: warning: " << describe(*lease) << " ended ("
                  << client::describe(lease->end()) << ") while " << quote(args.command[0])
                  << " runs\n";
    });
    client.attach(loop, [&](const client::Error& e) {
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
    if (!lease->ended()) {
        try {
            lease->release();
        } catch (const client::Error&) {
            // Gone already; the daemon ends it when promiscctl leaves the bus anyway.
        }
    }
    return code;
}

int release(Context& ctx, const std::string& lease) {
    auto path = lease_path_of(lease);
    auto& transport = ctx.transport();
    auto agent = ctx.polkit_agent();
    transport.release(path);
    return kSuccess;
}

int revoke(Context& ctx, const std::string& lease, const std::string& reason) {
    auto path = lease_path_of(lease);
    auto& transport = ctx.transport();
    auto agent = ctx.polkit_agent();
    transport.revoke(path, reason);
    return kSuccess;
}

int policy(Context& ctx, const std::string& link, const std::string& policy) {
    auto& transport = ctx.transport();
    auto agent = ctx.polkit_agent();
    transport.set_policy(link, policy);
    return kSuccess;
}

} // namespace promiscd::ctl
