// A polkit text agent (pkttyagent) for the length of one request, as
// systemctl starts one: so that polkit can ask the person at the terminal for
// a password instead of refusing with "authentication is required".
#pragma once

#include <sys/types.h>

namespace promiscd::ctl {

class PolkitAgent {
public:
    // Starts pkttyagent for this process when it can help: standard input is
    // a terminal (someone can answer), the caller is not root (polkit never
    // asks root), and asking was not turned off. Returns once the agent has
    // registered with polkitd (or has failed to: the request then goes ahead
    // without one, and polkit's answer says what was missing).
    static PolkitAgent start_if_useful(bool ask_password);

    PolkitAgent() = default;
    // Ends the agent (SIGTERM) and reaps it.
    ~PolkitAgent();
    PolkitAgent(PolkitAgent&& o) noexcept;
    PolkitAgent& operator=(PolkitAgent&& o) noexcept;
    PolkitAgent(const PolkitAgent&) = delete;
    PolkitAgent& operator=(const PolkitAgent&) = delete;

    bool running() const noexcept { return pid_ > 0; }
    pid_t pid() const noexcept { return pid_; }

private:
    explicit PolkitAgent(pid_t pid) : pid_(pid) {}
    void stop() noexcept;
    pid_t pid_ = -1;
};

} // namespace promiscd::ctl
