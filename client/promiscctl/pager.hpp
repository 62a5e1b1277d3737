// Long listings go through a pager, as systemd's tools do: only when standard
// output is a terminal, never with --no-pager. The pager is $PAGER (run by
// /bin/sh; empty or "cat" means none), else less with LESS=FRSXMK unless
// LESS is set: it quits at once when the text fits on one screen.
#pragma once

#include <sys/types.h>

namespace promiscd::ctl {

class Pager {
public:
    // Starts the pager when wanted and standard output is a terminal;
    // standard output then goes into it.
    explicit Pager(bool wanted);
    // Flushes, closes the pager's input, and waits for the person to quit it.
    ~Pager();
    Pager(const Pager&) = delete;
    Pager& operator=(const Pager&) = delete;

    bool active() const noexcept { return pid_ > 0; }

private:
    pid_t pid_ = -1;
    int saved_stdout_ = -1;
};

} // namespace promiscd::ctl
