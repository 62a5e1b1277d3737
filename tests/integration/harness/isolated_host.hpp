// Test harness: a command run on what looks to it like a host of its own,
// while the real host sees none of it: a private mount namespace with an
// empty tmpfs on /run (no system bus, no /run/promiscd), writable copies over
// chosen directories (where a script installs files), files added under /etc,
// optionally inside a network namespace. For what must run with the host's
// default paths (scripts/run, a promiscd without options) and still leave the
// host untouched. Whatever is left in the namespace is killed at the end.
#pragma once

#include "netns.hpp"
#include "process.hpp"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace promiscd::testing {

class IsolatedHost {
public:
    struct Options {
        // Directories shadowed by writable copies of themselves.
        std::vector<std::string> writable_copies;
        // Files added (or replaced) under /etc: absolute path -> content.
        std::map<std::string, std::string> etc_files;
        // Bind mounts made last: source -> existing mount point.
        std::vector<std::pair<std::string, std::string>> binds;
        // More shell lines run as root inside, after the mounts, before the
        // command (e.g. starting services the command expects).
        std::string setup;
        // Run inside this network namespace (else the host's).
        const Netns* netns = nullptr;
    };

    // Starts `command` as bash runs a command line (`bash -c`), from `cwd`,
    // inside; returns once the namespace is made (throws if it is not).
    IsolatedHost(Options opts, const std::string& command, const std::string& cwd = "/");
    // Kills every process left in the namespace; with them go its mounts.
    // Prints the command's output when the test failed.
    ~IsolatedHost();
    IsolatedHost(const IsolatedHost&) = delete;
    IsolatedHost& operator=(const IsolatedHost&) = delete;

    // The command (its own session and process group: signal() reaches the
    // whole foreground group, as Ctrl-C in a terminal does).
    Process& process() { return *process_; }
    // Scratch space on the host, outside the namespace's mounts.
    const TempDir& stage() const { return stage_; }
    // argv run inside the namespaces (mount, and network when given), with env.
    std::vector<std::string> inside(const std::map<std::string, std::string>& env,
                                    std::vector<std::string> argv) const;
    // Every live process in the mount namespace, with its command name.
    std::map<pid_t, std::string> processes() const;
    // The host's copies of the shadowed directories are as they were, and
    // its mount table names nothing of ours.
    void expect_host_untouched() const;

private:
    Options opts_;
    TempDir stage_;
    std::unique_ptr<Process> process_;
    std::string mnt_ns_;
    std::map<std::string, std::set<std::string>> host_listings_;
};

// The mount namespace of pid as /proc/PID/ns/mnt names it ("" if gone).
std::string mount_namespace_of(pid_t pid);
// Every live process in that mount namespace, with its command name.
std::map<pid_t, std::string> processes_in_mount_namespace(const std::string& ns);
// Gone, or a zombie that PID 1 has not reaped yet.
bool process_gone(pid_t pid);

} // namespace promiscd::testing
