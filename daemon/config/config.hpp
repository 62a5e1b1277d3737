// The daemon's configuration file (/etc/promiscd/promiscd.json): quotas,
// conflict thresholds, default policies by link pattern, groups allowed
// without polkit, static leases, idle exit, varlink limits. Strict: unknown
// keys and wrong types are errors naming the key and the file.
#pragma once

#include "capture/filter_compiler.hpp"
#include "core/arbiter.hpp"
#include "sched/fair_queue.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace promiscd::config {

inline constexpr const char* default_path = "/etc/promiscd/promiscd.json";

struct StaticLease {
    std::string interface;
    std::string reason;
    bool operator==(const StaticLease&) const = default;
};

struct Config {
    core::Limits limits;
    std::vector<std::pair<std::string, core::Policy>> policies; // fnmatch pattern, first wins
    std::vector<std::string> allowed_groups; // may act without polkit when it is unreachable
    std::vector<StaticLease> static_leases;
    uint64_t idle_exit_seconds = 30; // 0: never
    // Leases and captures on links of other network namespaces (option
    // "netns"); off, the unit may drop CAP_SYS_ADMIN and CAP_SYS_PTRACE.
    bool namespaces_enabled = true;
    size_t varlink_max_message_bytes = 64 * 1024;
    unsigned varlink_max_connections_per_uid = 16;
    unsigned varlink_max_connections = 256;
    size_t varlink_max_backlog_bytes = 1024 * 1024; // unread replies before a disconnect
    size_t varlink_max_total_backlog_bytes = 32 * 1024 * 1024;
    uint64_t varlink_idle_timeout_seconds = 60; // 0: never
    // Costly D-Bus reads (GetManagedObjects, Introspect, ListLinks,
    // ListLeases) of all callers together, in items answered.
    uint64_t reads_items_burst = 40000;
    uint64_t reads_items_per_second = 10000;
    // Messages the bus connection may hold unsent (dbus-daemon not reading)
    // before signals are dropped: above three per lease of quotas.leases_total,
    // so that ending every lease at once drops nothing on a bus that reads.
    uint64_t dbus_max_queued_messages = 65536;
    // polkit checks in flight and waiting (per uid and in all).
    sched::QueueLimits authorization{32, 2, 16, 512};
    // Capture filters: terms, CPU time, compilations in flight and waiting.
    capture::CompilerLimits filters{};
};

class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// `origin` names the file in messages. `keys`, when given, receives the path
// of every key the parser looked for, present or not ("quotas.leases_total",
// "policies[0].match"): the keys it knows in the objects the text has
// (promiscd.json(5) is tested against them).
Config parse(const std::string& text, const std::string& origin,
             std::vector<std::string>* keys = nullptr);
// A missing file gives the defaults unless must_exist (an explicit --config).
Config load(const std::string& path, bool must_exist);

} // namespace promiscd::config
