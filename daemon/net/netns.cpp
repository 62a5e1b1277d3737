#include "net/netns.hpp"

#include "core/errors.hpp"
#include "core/names.hpp"

#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <exception>
#include <fcntl.h>
#include <fstream>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace promiscd::net {

using capture::UniqueFd;
using core::Error;
using core::ErrorCode;
using core::quote;

namespace {

[[noreturn]] void invalid(const std::string& message) {
    throw Error(ErrorCode::InvalidArgument, message);
}

std::string why(int err) {
    switch (err) {
    case ENOENT:
        return "it does not exist";
    case EACCES:
    case EPERM:
        return "promiscd may not open it";
    default:
        return std::strerror(err);
    }
}

// Opens path without reading it, proves it is a network namespace on nsfs,
// and only then opens it for reading (so a device or a FIFO named here is
// never opened).
UniqueFd open_nsfs(const std::string& path, const std::string& spec) {
    UniqueFd probe(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (!probe)
        invalid("network namespace " + quote(spec) + ": cannot open " + quote(path) + ": " +
                why(errno));
    struct statfs fs {};
    if (::fstatfs(probe.get(), &fs) != 0 || fs.f_type != NSFS_MAGIC)
        invalid("network namespace " + quote(spec) + ": " + quote(path) +
                " is not a namespace file");
    const std::string self = "/proc/self/fd/" + std::to_string(probe.get());
    UniqueFd fd(::open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd)
        invalid("network namespace " + quote(spec) + ": cannot open " + quote(path) + ": " +
                why(errno));
    const int type = ::ioctl(fd.get(), NS_GET_NSTYPE);
    if (type != CLONE_NEWNET)
        invalid("network namespace " + quote(spec) + ": " + quote(path) +
                " is a namespace of another kind");
    return fd;
}

bool all_digits(std::string_view s) {
    return !s.empty() && s.size() <= 10 && s.find_first_not_of("0123456789") == s.npos;
}

// Paths promiscd looks up on a client's behalf: a lookup elsewhere could
// cross a FUSE mount of the client's that never answers, and hang the loop.
// /proc/PID[/task/TID]/ns/net, or one file in a directory only root can
// mount on (where ip netns, Docker, CNI and Podman put theirs).
bool trusted_path(std::string_view p) {
    if (p.substr(0, 6) == "/proc/") {
        std::string_view rest = p.substr(6);
        const auto slash = rest.find('/');
        if (slash == rest.npos || !all_digits(rest.substr(0, slash)))
            return false;
        rest = rest.substr(slash);
        if (rest.substr(0, 6) == "/task/") {
            rest = rest.substr(6);
            const auto s2 = rest.find('/');
            if (s2 == rest.npos || !all_digits(rest.substr(0, s2)))
                return false;
            rest = rest.substr(s2);
        }
        return rest == "/ns/net";
    }
    if (p.substr(0, 9) == "/var/run/")
        p.remove_prefix(4);
    for (std::string_view dir : {"/run/netns/", "/run/docker/netns/"}) {
        if (p.substr(0, dir.size()) != dir)
            continue;
        const std::string_view file = p.substr(dir.size());
        return !file.empty() && file != "." && file != ".." && file.find('/') == file.npos;
    }
    return false;
}

std::optional<int> parse_pid(std::string_view digits) {
    if (digits.empty() || digits.size() > 10)
        return std::nullopt;
    long long v = 0;
    for (char c : digits) {
        if (c < '0' || c > '9')
            return std::nullopt;
        v = v * 10 + (c - '0');
    }
    if (v < 1 || v > INT32_MAX)
        return std::nullopt;
    return static_cast<int>(v);
}

uint64_t inode_of(const char* path) {
    struct stat st {};
    if (::stat(path, &st) != 0)
        throw std::system_error(errno, std::generic_category(), std::string("stat ") + path);
    return st.st_ino;
}

// The uid owning the user namespace that owns fd's namespace, when that is
// not the initial one.
std::optional<uint32_t> owner_of(int fd) {
    UniqueFd userns(::ioctl(fd, NS_GET_USERNS));
    if (!userns)
        return std::nullopt; // EPERM: owned outside promiscd's view; nothing to tell
    struct stat st {};
    if (::fstat(userns.get(), &st) != 0)
        return std::nullopt;
    static const uint64_t initial = [] {
        try {
            return inode_of("/proc/1/ns/user");
        } catch (const std::system_error&) {
            return uint64_t{0};
        }
    }();
    if (st.st_ino == initial)
        return std::nullopt;
    uid_t uid = 0;
    if (::ioctl(userns.get(), NS_GET_OWNER_UID, &uid) != 0)
        return std::nullopt;
    return static_cast<uint32_t>(uid);
}

// Whether the calling thread has cap in its effective set.
bool has_capability(int cap) {
    std::ifstream status("/proc/thread-self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("CapEff:", 0) != 0)
            continue;
        try {
            return (std::stoull(line.substr(7), nullptr, 16) >> cap) & 1;
        } catch (const std::exception&) {
            return false;
        }
    }
    return false;
}

} // namespace

Netns open_netns(std::string_view spec) {
    Netns ns;
    ns.spec = std::string(spec);
    if (spec.empty())
        invalid("option 'netns' is empty (a name under /run/netns, pid:N, or an absolute path)");
    if (spec.size() > 4096)
        invalid("option 'netns' is longer than 4096 bytes");
    for (unsigned char c : spec)
        if (c < 0x20 || c == 0x7f)
            invalid("network namespace " + quote(spec) + " contains a control character");
    if (spec.substr(0, 4) == "pid:") {
        const auto pid = parse_pid(spec.substr(4));
        if (!pid)
            invalid("network namespace " + quote(spec) +
                    ": after 'pid:' comes a process id (1 to 2147483647)");
        UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, *pid, 0)));
        if (!pidfd)
            invalid("network namespace " + quote(spec) + ": " +
                    (errno == ESRCH ? "there is no process " + std::to_string(*pid)
                                    : std::string(std::strerror(errno))));
        ns.path = "/proc/" + std::to_string(*pid) + "/ns/net";
        ns.fd = open_nsfs(ns.path, ns.path);
        // The pid named the same process all along: it still lives, so
        // /proc/N was not somebody else's when the file was opened.
        // (EPERM: alive, and another user's; only ESRCH says it is gone.)
        if (::syscall(SYS_pidfd_send_signal, pidfd.get(), 0, nullptr, 0) != 0 && errno == ESRCH)
            invalid("network namespace " + quote(spec) + ": process " + std::to_string(*pid) +
                    " exited");
        ns.pidfd = std::move(pidfd);
    } else if (spec.front() == '/') {
        if (!trusted_path(spec))
            invalid("network namespace " + quote(spec) +
                    ": promiscd opens namespace files only as /proc/PID/ns/net or in /run/netns "
                    "and /run/docker/netns (`ip netns attach NAME PID` puts one there)");
        ns.path = std::string(spec);
        ns.fd = open_nsfs(ns.path, ns.path);
    } else {
        if (spec == "." || spec == ".." || spec.find('/') != std::string_view::npos)
            invalid("network namespace " + quote(spec) +
                    ": a name under /run/netns has no '/' and is not '.' or '..'");
        if (spec.size() > 255)
            invalid("network namespace name " + quote(spec) + " is longer than 255 bytes");
        ns.path = "/run/netns/" + std::string(spec);
        ns.fd = open_nsfs(ns.path, std::string(spec));
    }
    struct stat st {};
    if (::fstat(ns.fd.get(), &st) != 0)
        throw std::system_error(errno, std::generic_category(), "fstat " + ns.path);
    ns.inode = st.st_ino;
    ns.dev = st.st_dev;
    ns.owner_uid = owner_of(ns.fd.get());
    return ns;
}

uint64_t own_netns_inode() {
    return inode_of("/proc/self/ns/net");
}

void run_in_netns(int netns_fd, const std::function<void()>& fn) {
    std::exception_ptr failure;
    std::thread t([&] {
        try {
            if (::setns(netns_fd, CLONE_NEWNET) != 0)
                throw std::system_error(errno, std::generic_category(),
                                        "cannot enter the network namespace");
            fn();
        } catch (...) {
            failure = std::current_exception();
        }
    });
    t.join();
    if (failure)
        std::rethrow_exception(failure);
}

std::set<uint64_t> netns_in_use(const std::set<uint64_t>& inodes) {
    std::set<uint64_t> used;
    // "net:[4026532840]" -> 4026532840, when it is one of ours.
    auto mark = [&](std::string_view text) {
        auto at = text.find("net:[");
        while (at != std::string_view::npos) {
            uint64_t v = 0;
            size_t i = at + 5;
            while (i < text.size() && text[i] >= '0' && text[i] <= '9' && v < UINT64_MAX / 10)
                v = v * 10 + static_cast<uint64_t>(text[i++] - '0');
            if (i < text.size() && text[i] == ']' && inodes.count(v))
                used.insert(v);
            at = text.find("net:[", i);
        }
    };
    // A bind mount (ip netns add) keeps it, whoever runs in it.
    {
        std::ifstream mounts("/proc/self/mountinfo");
        std::string line;
        while (std::getline(mounts, line))
            mark(line);
    }
    if (used.size() == inodes.size())
        return used;
    const bool may_ptrace = has_capability(CAP_SYS_PTRACE);
    DIR* proc = ::opendir("/proc");
    if (!proc)
        return inodes; // cannot tell: keep them all
    char target[64];
    while (const dirent* e = ::readdir(proc)) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        const std::string link = std::string("/proc/") + e->d_name + "/ns/net";
        const ssize_t n = ::readlink(link.c_str(), target, sizeof target);
        // A process promiscd may not look at might be in it. With
        // CAP_SYS_PTRACE (the unit grants it) that is only one outside
        // promiscd's user namespace, which cannot have joined a namespace
        // made inside it... or so promiscd must assume; without the
        // capability, any other user's process: then nobody can say.
        if (n > 0)
            mark(std::string_view(target, static_cast<size_t>(n)));
        else if (errno == EACCES || errno == EPERM) {
            if (!may_ptrace) {
                used = inodes;
                break;
            }
        }
        if (used.size() == inodes.size())
            break;
    }
    ::closedir(proc);
    return used;
}

} // namespace promiscd::net
