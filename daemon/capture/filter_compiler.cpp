#include "capture/filter_compiler.hpp"

#include <pcap/dlt.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>

namespace promiscd::capture {

namespace {

// The largest answer a child may give: a full program and a message.
constexpr std::size_t kMaxOutput = 1 + 4 + BPF_MAXINSNS * sizeof(sock_filter) + 4096;

struct SourceUnref {
    void operator()(sd_event_source* s) const noexcept { sd_event_source_disable_unref(s); }
};
using SourcePtr = std::unique_ptr<sd_event_source, SourceUnref>;

bool word_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

// The user a compiler started by root runs as: libpcap's parser reads text
// any local user wrote, so what it runs as owns nothing of the daemon's.
constexpr uid_t kNobody = 65534;

// In the child, before it reads the expression: no capability (permitted,
// effective, inheritable and with them ambient), root's uid given up when it
// has it, no way back through exec, and no ptrace or core of the copy of the
// daemon's memory it holds. False when any step failed.
bool drop_privileges() {
    if (::geteuid() == 0) {
        if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
            ::setresuid(kNobody, kNobody, kNobody) != 0)
            return false;
    }
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct none[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capset, &header, none) != 0)
        return false;
    return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 && ::prctl(PR_SET_DUMPABLE, 0) == 0;
}

// In the child: compile, write the answer, exit. Never returns.
[[noreturn]] void child_main(int fd, const FilterJob& job, unsigned cpu_ms) {
    // Only the answer's pipe stays open: the daemon's other descriptors (its
    // clients' pipes above all, whose end of file must not wait for this
    // child, its netlink, packet and bus sockets, its state directory) are
    // not the compiler's business.
    if (fd != 3) {
        ::dup2(fd, 3);
        fd = 3;
    }
    ::close_range(4, ~0U, 0);
    const bool dropped = drop_privileges();
    // (A change of uid clears the parent-death signal: set it after.)
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (!dropped) {
        static const char refusal[] = "Ethe filter compiler could not give up its privileges";
        [[maybe_unused]] auto n = ::write(fd, refusal, sizeof refusal - 1);
        ::_exit(0);
    }
    std::signal(SIGPROF, SIG_DFL);
    std::signal(SIGXCPU, SIG_DFL);
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, SIGPROF);
    sigaddset(&unblock, SIGXCPU);
    ::sigprocmask(SIG_UNBLOCK, &unblock, nullptr);
    rlimit none{0, 0};
    ::setrlimit(RLIMIT_CORE, &none);
    // ITIMER_PROF counts this process's CPU time (user and system) to the
    // millisecond; RLIMIT_CPU (whole seconds) is the backstop.
    rlimit cpu{cpu_ms / 1000 + 2, cpu_ms / 1000 + 3};
    ::setrlimit(RLIMIT_CPU, &cpu);
    itimerval it{};
    it.it_value.tv_sec = cpu_ms / 1000;
    it.it_value.tv_usec = static_cast<suseconds_t>((cpu_ms % 1000) * 1000);
    ::setitimer(ITIMER_PROF, &it, nullptr);

    std::string out;
    try {
        BpfProgram p = job.cooked ? compile_cooked_filter(job.expression, job.snaplen)
                                  : compile_filter(job.expression, DLT_EN10MB, job.snaplen);
        const auto insns = p.instructions();
        const auto n = static_cast<std::uint32_t>(insns.size());
        out.push_back('O');
        out.append(reinterpret_cast<const char*>(&n), sizeof n);
        out.append(reinterpret_cast<const char*>(insns.data()), insns.size_bytes());
    } catch (const FilterError& e) {
        out = "E" + e.reason().substr(0, 4000);
    } catch (...) {
        out = "Ethe filter compiler failed";
    }
    const char* p = out.data();
    std::size_t left = out.size();
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    ::_exit(0);
}

} // namespace

unsigned count_terms(std::string_view e) {
    unsigned ops = 0;
    bool any = false;
    for (std::size_t i = 0; i < e.size(); ++i) {
        if (!std::isspace(static_cast<unsigned char>(e[i])))
            any = true;
        if (i + 1 < e.size() &&
            ((e[i] == '&' && e[i + 1] == '&') || (e[i] == '|' && e[i + 1] == '|'))) {
            ++ops;
            ++i;
            continue;
        }
        if (!word_char(e[i]) || (i > 0 && word_char(e[i - 1])))
            continue;
        std::size_t j = i;
        while (j < e.size() && word_char(e[j]))
            ++j;
        std::string_view w = e.substr(i, j - i);
        if (w == "and" || w == "or")
            ++ops;
        i = j - 1;
    }
    return any ? ops + 1 : 0;
}

struct FilterCompiler::Job {
    uint32_t caller = 0;
    FilterJob job;
    Done done;
    uint64_t queue_ticket = 0;
    pid_t pid = -1;
    UniqueFd out;
    SourcePtr io;
    SourcePtr timer;
    std::string data;
};

FilterCompiler::FilterCompiler(sd_event* event, CompilerLimits limits)
    : event_(event), limits_(limits), queue_(limits.queue) {}

FilterCompiler::~FilterCompiler() {
    auto jobs = std::move(jobs_);
    jobs_.clear();
    for (auto& [id, j] : jobs) {
        if (j->pid > 0) {
            ::kill(j->pid, SIGKILL);
            ::waitpid(j->pid, nullptr, 0);
        }
    }
}

void FilterCompiler::set_limits(const CompilerLimits& limits) {
    limits_ = limits;
    queue_.set_limits(limits.queue);
}

uint64_t FilterCompiler::now() const {
    uint64_t t = 0;
    sd_event_now(event_, CLOCK_MONOTONIC, &t);
    return t;
}

uint64_t FilterCompiler::compile(uint32_t caller, FilterJob job, Done done) {
    const unsigned terms = count_terms(job.expression);
    if (terms == 0) {
        // Nothing to compile: the program that accepts every frame.
        done(job.cooked ? compile_cooked_filter("", job.snaplen)
                        : compile_filter("", DLT_EN10MB, job.snaplen));
        return 0;
    }
    if (terms > limits_.max_terms) {
        done(FilterError(job.expression, "it has " + std::to_string(terms) +
                                             " terms; filters are limited to " +
                                             std::to_string(limits_.max_terms) +
                                             " (libpcap's optimizer is superlinear)"));
        return 0;
    }
    const uint64_t id = next_id_++;
    auto j = std::make_shared<Job>();
    j->caller = caller;
    j->job = std::move(job);
    j->done = std::move(done);
    jobs_.emplace(id, j);
    auto ticket = queue_.submit(caller, now(), [this, id](uint64_t t) { start(id, t); });
    if (!ticket) {
        jobs_.erase(id);
        j->done(FilterError(j->job.expression, queue_.refusal(caller, "filter compilations")));
        return 0;
    }
    if (!jobs_.count(id))
        return 0;
    j->queue_ticket = *ticket;
    return id;
}

void FilterCompiler::start(uint64_t id, uint64_t queue_ticket) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) {
        queue_.finished(queue_ticket, false, now());
        return;
    }
    auto j = it->second;
    j->queue_ticket = queue_ticket;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        finish(id,
               FilterError(j->job.expression, std::string("cannot start the filter compiler: ") +
                                                  std::strerror(errno)),
               false);
        return;
    }
    UniqueFd rd(fds[0]), wr(fds[1]);
    pid_t pid = ::fork();
    if (pid < 0) {
        finish(id,
               FilterError(j->job.expression, std::string("cannot start the filter compiler: ") +
                                                  std::strerror(errno)),
               false);
        return;
    }
    if (pid == 0) {
        rd.reset();
        child_main(wr.get(), j->job, limits_.cpu_ms);
    }
    wr.reset();
    j->pid = pid;
    ::fcntl(rd.get(), F_SETFL, O_NONBLOCK);
    j->out = std::move(rd);
    sd_event_source* s = nullptr;
    if (sd_event_add_io(event_, &s, j->out.get(), EPOLLIN, &FilterCompiler::on_output, this) < 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        j->pid = -1;
        finish(id, FilterError(j->job.expression, "cannot watch the filter compiler"), false);
        return;
    }
    j->io.reset(s);
    sd_event_source_set_description(s, "filter-compiler");
    if (sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, uint64_t{limits_.wall_ms} * 1000, 0,
                                   &FilterCompiler::on_timeout, this) >= 0) {
        j->timer.reset(s);
        sd_event_source_set_description(s, "filter-compiler-timeout");
    }
}

int FilterCompiler::on_output(sd_event_source* s, int fd, uint32_t, void* userdata) {
    auto* self = static_cast<FilterCompiler*>(userdata);
    for (auto& [id, j] : self->jobs_) {
        if (j->io.get() != s)
            continue;
        char buf[16384];
        for (;;) {
            ssize_t n = ::read(fd, buf, sizeof buf);
            if (n > 0) {
                j->data.append(buf, static_cast<std::size_t>(n));
                if (j->data.size() > kMaxOutput) {
                    ::kill(j->pid, SIGKILL);
                    j->data.clear();
                }
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN)
                return 0;
            break; // end of file (or an error): the child is done
        }
        self->collect(id);
        return 0;
    }
    return 0;
}

int FilterCompiler::on_timeout(sd_event_source* s, uint64_t, void* userdata) {
    auto* self = static_cast<FilterCompiler*>(userdata);
    for (auto& [id, j] : self->jobs_)
        if (j->timer.get() == s && j->pid > 0)
            ::kill(j->pid, SIGKILL); // its end of file follows
    return 0;
}

void FilterCompiler::collect(uint64_t id) {
    auto j = jobs_.at(id);
    int status = 0;
    // The pipe's end of file means the child has exited (it never closes its
    // end otherwise); reaping it does not wait.
    while (::waitpid(j->pid, &status, 0) < 0 && errno == EINTR) {
    }
    j->pid = -1;
    const std::string& d = j->data;
    if (WIFSIGNALED(status)) {
        finish(id,
               FilterError(j->job.expression, "compiling it took more than " +
                                                  std::to_string(limits_.cpu_ms) +
                                                  " ms of CPU time; use a simpler filter"),
               true);
        return;
    }
    if (d.size() >= 5 && d[0] == 'O') {
        std::uint32_t n = 0;
        std::memcpy(&n, d.data() + 1, sizeof n);
        if (d.size() == 5 + std::size_t{n} * sizeof(sock_filter) && n <= BPF_MAXINSNS) {
            std::vector<sock_filter> insns(n);
            std::memcpy(insns.data(), d.data() + 5, std::size_t{n} * sizeof(sock_filter));
            finish(id, BpfProgram(std::move(insns)), false);
            return;
        }
    } else if (!d.empty() && d[0] == 'E') {
        finish(id, FilterError(j->job.expression, d.substr(1)), false);
        return;
    }
    finish(id, FilterError(j->job.expression, "the filter compiler failed"), false);
}

std::shared_ptr<FilterCompiler::Job> FilterCompiler::take(uint64_t id) {
    auto it = jobs_.find(id);
    if (it == jobs_.end())
        return nullptr;
    auto j = it->second;
    jobs_.erase(it);
    j->io.reset();
    j->timer.reset();
    if (j->pid > 0) {
        ::kill(j->pid, SIGKILL);
        ::waitpid(j->pid, nullptr, 0);
        j->pid = -1;
    }
    return j;
}

void FilterCompiler::finish(uint64_t id, Result result, bool too_costly) {
    if (auto j = take(id)) {
        queue_.finished(j->queue_ticket, too_costly, now());
        j->done(std::move(result));
    }
}

void FilterCompiler::cancel(uint64_t ticket) {
    if (auto j = take(ticket))
        queue_.withdraw(j->queue_ticket, now());
}

} // namespace promiscd::capture
