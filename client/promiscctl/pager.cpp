#include "pager.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <iostream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

namespace promiscd::ctl {

namespace {

// Whether an executable named `name` is on PATH: without it the child could
// only fail after the output is already gone into its pipe.
bool on_path(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
        size_t end = dirs.find(':', start);
        if (end == std::string::npos)
            end = dirs.size();
        std::string dir = dirs.substr(start, end - start);
        if (dir.empty())
            dir = ".";
        if (::access((dir + "/" + name).c_str(), X_OK) == 0)
            return true;
        start = end + 1;
    }
    return false;
}

} // namespace

Pager::Pager(bool wanted) {
    if (!wanted || ::isatty(STDOUT_FILENO) != 1)
        return;
    const char* env = std::getenv("PAGER");
    std::string command;
    bool use_shell = false;
    if (env) {
        command = env;
        if (command.empty() || command == "cat")
            return;
        use_shell = true;
    } else if (on_path("less")) {
        command = "less";
    } else {
        return;
    }

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0)
        return; // no pager is better than no output
    std::cout.flush();
    pid_t pid = ::fork();
    if (pid < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        return;
    }
    if (pid == 0) {
        ::dup2(fds[0], STDIN_FILENO);
        ::setenv("LESS", "FRSXMK", 0);
        // The pager owns the terminal's keys; Ctrl-C is for it, and it has
        // the default SIGPIPE whatever promiscctl set.
        ::signal(SIGPIPE, SIG_DFL);
        if (use_shell)
            ::execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
        else
            ::execlp(command.c_str(), command.c_str(), static_cast<char*>(nullptr));
        ::_exit(127);
    }
    ::close(fds[0]);
    saved_stdout_ = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[1]);
    pid_ = pid;
}

Pager::~Pager() {
    if (pid_ <= 0)
        return;
    std::cout.flush();
    std::fflush(stdout);
    // The pager sees end of file only when every copy of its input is closed.
    if (saved_stdout_ >= 0) {
        ::dup2(saved_stdout_, STDOUT_FILENO);
        ::close(saved_stdout_);
    } else {
        ::close(STDOUT_FILENO);
    }
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
}

} // namespace promiscd::ctl
