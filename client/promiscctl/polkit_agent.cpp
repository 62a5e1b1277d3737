#include "polkit_agent.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <systemd/sd-login.h>
#include <unistd.h>
#include <utility>
#include <vector>

extern char** environ;

namespace promiscd::ctl {

namespace {

constexpr const char* kPkttyagent = "/usr/bin/pkttyagent";
// How long to wait for the agent to register; polkitd answers one request
// at a time, so a slow rule elsewhere can delay it.
constexpr int kRegisterTimeoutMs = 30'000;

// polkitd (as of 122) consults a "--fallback" agent only for a subject in a
// login session, and then only when the session has no agent of its own.
// Without a session (no logind, a container, a service) the process's own
// agent is the only one that can answer, so it must not be a fallback.
bool in_login_session() {
    char* session = nullptr;
    int r = sd_pid_get_session(0, &session);
    free(session);
    return r >= 0;
}

} // namespace

PolkitAgent PolkitAgent::start_if_useful(bool ask_password) {
    if (!ask_password || ::geteuid() == 0 || ::isatty(STDIN_FILENO) != 1)
        return {};
    // The agent closes its end of the pipe once it has registered. The
    // write end is inherited (no O_CLOEXEC); this process starts nothing
    // else meanwhile.
    int p[2];
    if (::pipe(p) < 0)
        return {};
    struct Fd {
        int fd;
        ~Fd() { reset(); }
        int get() const { return fd; }
        void reset() {
            if (fd >= 0)
                ::close(std::exchange(fd, -1));
        }
    } rd{p[0]}, wr{p[1]};
    ::fcntl(rd.get(), F_SETFD, FD_CLOEXEC);

    std::vector<std::string> args = {kPkttyagent, "--notify-fd", std::to_string(wr.get())};
    if (in_login_session())
        args.push_back("--fallback");
    args.insert(args.end(), {"--process", std::to_string(::getpid())});
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);

    // The agent starts with the signal state a shell would give it, whatever
    // promiscctl's loop has blocked, so that SIGTERM ends it.
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
    pid_t pid = -1;
    int err = posix_spawn(&pid, kPkttyagent, nullptr, &attr, argv.data(), environ);
    posix_spawnattr_destroy(&attr);
    wr.reset();
    if (err != 0)
        return {}; // not installed: polkit's answer will say that nobody could ask

    PolkitAgent agent(pid);
    for (;;) {
        pollfd pfd{rd.get(), POLLIN, 0};
        int r = ::poll(&pfd, 1, kRegisterTimeoutMs);
        if (r < 0 && errno == EINTR)
            continue;
        break; // closed (registered, or the agent gave up), or timed out
    }
    return agent;
}

PolkitAgent::PolkitAgent(PolkitAgent&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}

PolkitAgent& PolkitAgent::operator=(PolkitAgent&& o) noexcept {
    if (this != &o) {
        stop();
        pid_ = std::exchange(o.pid_, -1);
    }
    return *this;
}

PolkitAgent::~PolkitAgent() {
    stop();
}

void PolkitAgent::stop() noexcept {
    if (pid_ <= 0)
        return;
    ::kill(pid_, SIGTERM);
    int status;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
}

} // namespace promiscd::ctl
