// Test harness: child processes that are always killed and reaped, commands
// whose output and status a test inspects, and waiting with a deadline.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <unistd.h>
#include <vector>

namespace promiscd::testing {

using namespace std::chrono_literals;

// Skip the current gtest with a clear message unless running as root.
// Use as: PROMISCD_REQUIRE_ROOT();
#define PROMISCD_REQUIRE_ROOT()                                                                    \
    do {                                                                                           \
        if (::geteuid() != 0)                                                                      \
            GTEST_SKIP() << "integration test needs root (network namespaces, "                    \
                            "rtnetlink, private system bus); run it as root";                      \
    } while (0)

// A name unique to this test process and call: "<prefix><pid>x<n>", short
// enough for an interface name when prefix is at most 4 characters.
std::string unique_name(const std::string& prefix);

struct CommandResult {
    int status = -1; // exit status, or 128+signal
    std::string out; // stdout
    std::string err; // stderr
    bool ok() const { return status == 0; }
};

// Run argv to completion (no shell). Throws only if it cannot be started.
CommandResult run(const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& env = {},
                  const std::string& input = {});
// Run a shell command line with /bin/sh -c.
CommandResult sh(const std::string& cmdline, const std::map<std::string, std::string>& env = {});
// Like sh(), but throws std::runtime_error with the output when it fails.
std::string sh_ok(const std::string& cmdline);

// A child process. The destructor kills it (SIGTERM, then SIGKILL after a
// grace period) and reaps it, so no test leaves a process behind.
class Process {
public:
    struct Options {
        std::map<std::string, std::string> env; // added to (or overriding) the environment
        std::string log_path;                   // stdout+stderr go here; empty: a temp file
        bool new_session = true;                // own process group, killed as a group
        bool stdin_pipe = false;                // write_stdin() feeds the child
    };
    Process(std::vector<std::string> argv, Options opts);
    explicit Process(std::vector<std::string> argv) : Process(std::move(argv), Options{}) {}
    ~Process();
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    // True while the child has not exited (zombies count as exited).
    bool running();
    // Send a signal to the child (its process group when new_session).
    void signal(int sig);
    // Wait for exit up to timeout; returns the exit status (or 128+signal), nullopt on timeout.
    std::optional<int> wait(std::chrono::milliseconds timeout);
    // Terminate (SIGTERM, then SIGKILL after grace) and return the status.
    int stop(std::chrono::milliseconds grace = 3s);
    const std::string& log_path() const { return log_path_; }
    std::string log() const;
    // With Options::stdin_pipe: send text to the child's standard input.
    void write_stdin(const std::string& text);
    void close_stdin();
    // Wait until the log contains `text` (after `from`); returns its offset or npos.
    size_t wait_for_output(const std::string& text, std::chrono::milliseconds timeout = 5s,
                           size_t from = 0) const;

private:
    pid_t pid_ = -1;
    bool group_ = true;
    std::optional<int> status_;
    std::string log_path_;
    bool own_log_ = false;
    int stdin_fd_ = -1;
};

// A child whose standard output is a pipe to the test; its own process
// group, killed (SIGTERM) and reaped on the way out, whatever happens.
class PipedChild {
public:
    enum class Output {
        Read,    // the test reads it (take_read_fd)
        Stalled, // a full pipe nobody reads: the child blocks in its first write
    };
    explicit PipedChild(const std::vector<std::string>& argv, Output output = Output::Read);
    ~PipedChild() { stop(); }
    PipedChild(const PipedChild&) = delete;
    PipedChild& operator=(const PipedChild&) = delete;
    pid_t pid() const { return pid_; }
    int take_read_fd();
    void stop();

private:
    pid_t pid_ = -1;
    int read_fd_ = -1;
};

// Whether a log holds a report of AddressSanitizer, LeakSanitizer or
// UndefinedBehaviorSanitizer (scripts/test runs the tests against promiscd and
// promiscctl built with them).
bool has_sanitizer_report(const std::string& log);

// Whether the running process pid is built with AddressSanitizer (libasan is
// mapped): the tests are not, when scripts/test runs them against a sanitized
// promiscd, so they ask the process, not the compiler.
bool runs_under_asan(pid_t pid);

// The end of a test with a promiscd of its own: stop it as systemd would
// (SIGTERM) and expect exit status 0 within `grace`, and no sanitizer report
// in its log. A daemon that had exited already is only checked for reports.
// Under ASan, LeakSanitizer runs when the daemon exits: one killed with
// SIGKILL would never report its leaks, so tests end the daemon this way.
void expect_clean_stop(Process& daemon, std::chrono::milliseconds grace = 20s);

// Poll pred every `step` until it is true or the deadline passes.
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 5s,
                std::chrono::milliseconds step = 10ms);

// A temporary directory removed (recursively) by the destructor.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content, unsigned mode = 0644);

} // namespace promiscd::testing
