// The assembled daemon: the event loop, the service, the state file and crash
// recovery, and the D-Bus front end with polkit; start-up and orderly stop in
// the order that keeps promises (READY only once the bus name is owned;
// flags cleared and owners told before exit).
#pragma once

#include <cstdint>

#include <memory>
#include <string>
#include <vector>

namespace promiscd {

struct DaemonOptions {
    bool use_bus = true;     // false: no D-Bus
    std::string state_dir;   // empty: state::default_state_dir()
    std::string config_path; // empty: config::default_path, which may be missing
    std::string varlink_path = "/run/promiscd/io.promiscd"; // empty: no varlink socket
    bool exit_on_idle = false;                              // also implied by socket activation
    std::vector<std::string> holds;
    int netlink_rcvbuf = 0; // 0: the watcher's default
};

class Daemon {
public:
    explicit Daemon(DaemonOptions options);
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Runs until SIGTERM/SIGINT; returns the exit status.
    int run();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

} // namespace promiscd
