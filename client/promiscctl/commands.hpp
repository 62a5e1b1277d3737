// The promiscctl commands, one function each; cli.cpp parses the command line
// into these argument structs. Each returns the exit code, or throws
// promisc::Error / UsageError for the caller to report.
#pragma once

#include "context.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace promiscd::ctl {

int status(Context& ctx, const std::vector<std::string>& links);
int leases(Context& ctx);

// --netns as the user wrote it (a name under /run/netns, a pid, or a path)
// -> the form promiscd takes: a pid becomes "pid:N".
std::string netns_spec(const std::string& arg);

struct HoldArgs {
    std::string link;
    std::uint64_t ttl = 0;
    std::string reason;
    bool wait = false;
    std::string netns; // as promiscd takes it; empty: promiscd's own
};
int hold(Context& ctx, const HoldArgs& args);

struct RunArgs {
    std::string link;
    std::string reason;
    bool wait = false;
    std::string netns;
    std::vector<std::string> command;
};
int run(Context& ctx, const RunArgs& args);

// LEASE as given on the command line, an id ("3") or an object path: its id.
// Throws UsageError.
std::uint64_t lease_id_of_arg(const std::string& arg);
int release(Context& ctx, const std::string& lease);
int revoke(Context& ctx, const std::string& lease, const std::string& reason);
int policy(Context& ctx, const std::string& link, const std::string& policy);

struct CaptureArgs {
    std::string link;
    std::string filter;
    std::optional<std::string> file; // "-" or none: standard output
    std::uint64_t count = 0;         // 0: until stopped
    std::uint32_t snaplen = 0;       // 0: the daemon's default
    std::uint32_t buffer_size = 0;   // bytes; 0: the daemon's default
    std::string format = "pcapng";
    bool promisc = true;
    std::string netns;
};
// The capture's link and filter from tcpdump's conventions: -i LINK, or the
// first word; then the filter as the remaining words, or -f FILTER (not
// both). Throws UsageError.
void resolve_capture_words(CaptureArgs& args, const std::string& interface_option,
                           const std::vector<std::string>& words);
int capture(Context& ctx, const CaptureArgs& args);

int monitor(Context& ctx);

} // namespace promiscd::ctl
