// Compiles capture filters off the daemon's loop. libpcap's compiler and
// optimizer are superlinear (an `or` chain of 800 terms takes minutes), so a
// filter is first bounded by its number of terms, then compiled in a child
// process (fork, no exec) that is killed when it uses more than its CPU time.
// Compilations in flight and waiting are bounded per caller and in all
// (sched::FairQueue); a caller whose filter was too costly waits behind
// everyone else for a while. Answers come from the loop, never re-entrantly
// from compile() unless the filter was refused before any work was done.
#pragma once

#include "capture/filter.hpp"
#include "capture/unique_fd.hpp"
#include "sched/fair_queue.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <systemd/sd-event.h>
#include <variant>

namespace promiscd::capture {

struct CompilerLimits {
    unsigned max_terms = 64;  // primitives joined by and/or (&&, ||)
    unsigned cpu_ms = 2000;   // CPU time of one compilation
    unsigned wall_ms = 10000; // and wall-clock time (a stopped child is killed)
    sched::QueueLimits queue{2, 1, 4, 64};
};

// What to compile: the expression and the link type its frames start with.
struct FilterJob {
    std::string expression;
    bool cooked = false; // SOCK_DGRAM socket, LINKTYPE_LINUX_SLL2 records
    std::uint32_t snaplen = 262144;
};

// The number of primitives in an expression: its and/or operators plus one
// (0 for an empty expression).
unsigned count_terms(std::string_view expression);

class FilterCompiler {
public:
    using Result = std::variant<BpfProgram, FilterError>;
    using Done = std::function<void(Result)>;

    FilterCompiler(sd_event* event, CompilerLimits limits = {});
    ~FilterCompiler(); // kills and reaps children still running
    FilterCompiler(const FilterCompiler&) = delete;
    FilterCompiler& operator=(const FilterCompiler&) = delete;

    // Compiles for `caller` (a uid, for fairness). An empty expression and a
    // refusal (too many terms, too many compilations waiting) are answered at
    // once, from inside compile(); otherwise done runs later from the loop.
    // Returns a ticket for cancel() (0 when answered already).
    uint64_t compile(uint32_t caller, FilterJob job, Done done);
    // The caller went away: done never runs; a running child is killed.
    void cancel(uint64_t ticket);

    void set_limits(const CompilerLimits& limits);
    const CompilerLimits& limits() const { return limits_; }
    size_t running() const { return queue_.in_flight(); }

private:
    struct Job;
    void start(uint64_t id, uint64_t queue_ticket);
    void finish(uint64_t id, Result result, bool too_costly);
    static int on_output(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_timeout(sd_event_source* s, uint64_t usec, void* userdata);
    void collect(uint64_t id);
    // Removes a job, its sources and its child (killed and reaped if still there).
    std::shared_ptr<Job> take(uint64_t id);
    uint64_t now() const;

    sd_event* event_;
    CompilerLimits limits_;
    sched::FairQueue queue_;
    std::map<uint64_t, std::shared_ptr<Job>> jobs_;
    uint64_t next_id_ = 1;
};

} // namespace promiscd::capture
