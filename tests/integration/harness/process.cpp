#include "process.hpp"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <sstream>
#include <stdexcept>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <utility>

extern char** environ;

namespace promiscd::testing {

std::string unique_name(const std::string& prefix) {
    static std::atomic<unsigned> counter{0};
    return prefix + std::to_string(::getpid()) + "x" + std::to_string(counter++);
}

namespace {

std::vector<std::string> merged_env(const std::map<std::string, std::string>& extra) {
    std::map<std::string, std::string> all;
    for (char** e = environ; *e; ++e) {
        std::string kv = *e;
        auto eq = kv.find('=');
        if (eq != std::string::npos)
            all[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    for (const auto& [k, v] : extra)
        all[k] = v;
    std::vector<std::string> out;
    out.reserve(all.size());
    for (const auto& [k, v] : all)
        out.push_back(k + "=" + v);
    return out;
}

std::vector<char*> cstrs(std::vector<std::string>& v) {
    std::vector<char*> out;
    out.reserve(v.size() + 1);
    for (auto& s : v)
        out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

int decode_status(int st) {
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return -1;
}

std::string slurp_fd(int fd) {
    std::string out;
    char buf[65536];
    ssize_t n;
    ::lseek(fd, 0, SEEK_SET);
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
        out.append(buf, static_cast<size_t>(n));
    return out;
}

// A memfd used to collect a child's output without pipes (no deadlock on large output).
int make_memfd(const char* name) {
    int fd = ::memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        throw std::runtime_error(std::string("memfd_create: ") + std::strerror(errno));
    return fd;
}

} // namespace

CommandResult run(const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& env, const std::string& input) {
    if (argv.empty())
        throw std::invalid_argument("run: empty argv");
    int out_fd = make_memfd("out");
    int err_fd = make_memfd("err");
    int in_fd = make_memfd("in");
    if (!input.empty() &&
        ::write(in_fd, input.data(), input.size()) != static_cast<ssize_t>(input.size()))
        throw std::runtime_error("run: cannot stage stdin");
    ::lseek(in_fd, 0, SEEK_SET);

    auto args = argv;
    auto envs = merged_env(env);
    auto cargv = cstrs(args);
    auto cenv = cstrs(envs);
    pid_t pid = ::fork();
    if (pid < 0)
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        ::dup2(in_fd, 0);
        ::dup2(out_fd, 1);
        ::dup2(err_fd, 2);
        ::execvpe(cargv[0], cargv.data(), cenv.data());
        std::fprintf(stderr, "exec %s: %s\n", cargv[0], std::strerror(errno));
        ::_exit(127);
    }
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    CommandResult r;
    r.status = decode_status(st);
    r.out = slurp_fd(out_fd);
    r.err = slurp_fd(err_fd);
    ::close(out_fd);
    ::close(err_fd);
    ::close(in_fd);
    return r;
}

CommandResult sh(const std::string& cmdline, const std::map<std::string, std::string>& env) {
    return run({"/bin/sh", "-c", cmdline}, env);
}

std::string sh_ok(const std::string& cmdline) {
    auto r = sh(cmdline);
    if (!r.ok())
        throw std::runtime_error("command failed (" + std::to_string(r.status) + "): " + cmdline +
                                 "\n" + r.out + r.err);
    return r.out;
}

Process::Process(std::vector<std::string> argv, Options opts) : group_(opts.new_session) {
    if (argv.empty())
        throw std::invalid_argument("Process: empty argv");
    log_path_ = opts.log_path;
    if (log_path_.empty()) {
        char tmpl[] = "/tmp/promiscd-test-log-XXXXXX";
        int fd = ::mkstemp(tmpl);
        if (fd < 0)
            throw std::runtime_error("mkstemp failed");
        ::close(fd);
        log_path_ = tmpl;
        own_log_ = true;
    }
    int log_fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0)
        throw std::runtime_error("cannot open log " + log_path_);
    int in_pipe[2] = {-1, -1};
    if (opts.stdin_pipe && ::pipe2(in_pipe, O_CLOEXEC) < 0)
        throw std::runtime_error("pipe failed");
    auto envs = merged_env(opts.env);
    auto cargv = cstrs(argv);
    auto cenv = cstrs(envs);
    pid_ = ::fork();
    if (pid_ < 0) {
        ::close(log_fd);
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid_ == 0) {
        if (group_)
            ::setsid();
        int in = in_pipe[0] >= 0 ? in_pipe[0] : ::open("/dev/null", O_RDONLY);
        ::dup2(in, 0);
        ::dup2(log_fd, 1);
        ::dup2(log_fd, 2);
        ::execvpe(cargv[0], cargv.data(), cenv.data());
        std::fprintf(stderr, "exec %s: %s\n", cargv[0], std::strerror(errno));
        ::_exit(127);
    }
    ::close(log_fd);
    if (in_pipe[0] >= 0) {
        ::close(in_pipe[0]);
        stdin_fd_ = in_pipe[1];
    }
}

void Process::write_stdin(const std::string& text) {
    if (stdin_fd_ < 0)
        throw std::logic_error("write_stdin: the process has no stdin pipe");
    if (::write(stdin_fd_, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        throw std::runtime_error("write_stdin failed");
}

void Process::close_stdin() {
    if (stdin_fd_ >= 0)
        ::close(stdin_fd_);
    stdin_fd_ = -1;
}

size_t Process::wait_for_output(const std::string& text, std::chrono::milliseconds timeout,
                                size_t from) const {
    size_t pos = std::string::npos;
    wait_until(
        [&] {
            pos = log().find(text, from);
            return pos != std::string::npos;
        },
        timeout);
    return pos;
}

Process::~Process() {
    try {
        stop(2s);
    } catch (...) {
    }
    close_stdin();
    if (own_log_)
        ::unlink(log_path_.c_str());
}

bool Process::running() {
    if (status_)
        return false;
    int st = 0;
    pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
        status_ = decode_status(st);
        return false;
    }
    return r == 0;
}

void Process::signal(int sig) {
    if (!running())
        return;
    if (group_)
        ::kill(-pid_, sig);
    else
        ::kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return std::nullopt;
        std::this_thread::sleep_for(5ms);
    }
    return status_;
}

int Process::stop(std::chrono::milliseconds grace) {
    if (pid_ <= 0)
        return -1;
    if (running()) {
        signal(SIGTERM);
        if (!wait(grace)) {
            signal(SIGKILL);
            if (group_)
                ::kill(pid_, SIGKILL);
            int st = 0;
            while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
            }
            status_ = decode_status(st);
        }
    }
    return status_.value_or(-1);
}

bool has_sanitizer_report(const std::string& log) {
    for (const char* mark : {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                             "LeakSanitizer has encountered a fatal error", ": runtime error: "})
        if (log.find(mark) != std::string::npos)
            return true;
    return false;
}

bool runs_under_asan(pid_t pid) {
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    for (std::string line; std::getline(maps, line);)
        if (line.find("/libasan.so") != std::string::npos)
            return true;
    return false;
}

void expect_clean_stop(Process& daemon, std::chrono::milliseconds grace) {
    // The end of the log: where a sanitizer's report or the reason for a
    // failed stop is.
    auto tail = [&] {
        std::string log = daemon.log();
        return log.size() > 16000 ? "...\n" + log.substr(log.size() - 16000) : log;
    };
    if (daemon.running()) {
        daemon.signal(SIGTERM);
        auto status = daemon.wait(grace);
        EXPECT_TRUE(status.has_value() && *status == 0)
            << "promiscd (pid " << daemon.pid() << ") did not exit with status 0 on SIGTERM ("
            << (status ? "status " + std::to_string(*status) : std::string("still running"))
            << "):\n"
            << tail();
    }
    EXPECT_FALSE(has_sanitizer_report(daemon.log())) << tail();
}

std::string Process::log() const {
    return read_file(log_path_);
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds step) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred())
            return true;
        if (std::chrono::steady_clock::now() >= deadline)
            return false;
        std::this_thread::sleep_for(step);
    }
}

TempDir::TempDir() {
    char tmpl[] = "/tmp/promiscd-test-XXXXXX";
    if (!::mkdtemp(tmpl))
        throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
    ::chmod(path_.c_str(), 0755);
}

TempDir::~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

PipedChild::PipedChild(const std::vector<std::string>& argv, Output output) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    if (output == Output::Stalled) {
        // One page, filled: the child's first write blocks.
        ::fcntl(p[1], F_SETPIPE_SZ, 4096);
        const std::string fill(4096, 'x');
        while (::write(p[1], fill.data(), fill.size()) > 0) {
        }
    }
    auto args = argv;
    auto cargv = cstrs(args);
    pid_ = ::fork();
    if (pid_ < 0)
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) {
        ::setpgid(0, 0);
        ::fcntl(p[1], F_SETFL, 0); // blocking, as a program expects its stdout
        ::dup2(p[1], 1);
        ::execvp(cargv[0], cargv.data());
        ::_exit(127);
    }
    ::close(p[1]);
    read_fd_ = p[0];
    ::fcntl(read_fd_, F_SETFL, 0);
}

int PipedChild::take_read_fd() {
    return std::exchange(read_fd_, -1);
}

void PipedChild::stop() {
    if (read_fd_ >= 0)
        ::close(std::exchange(read_fd_, -1));
    if (pid_ > 0) {
        ::kill(-pid_, SIGTERM);
        ::waitpid(std::exchange(pid_, -1), nullptr, 0);
    }
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void write_file(const std::string& path, const std::string& content, unsigned mode) {
    {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        if (!f)
            throw std::runtime_error("cannot write " + path);
        f << content;
    }
    ::chmod(path.c_str(), mode);
}

} // namespace promiscd::testing
