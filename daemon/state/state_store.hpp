// The state file: the lease table and the links whose flag the daemon set,
// written atomically on every change, read at start-up to recover from a crash.
#pragma once

#include "core/arbiter.hpp"

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace promiscd::state {

struct SavedState {
    core::LeaseId next_id = 1;
    std::vector<core::Lease> leases;
    std::vector<std::pair<int, std::string>> daemon_flags; // ifindex, name
    bool clean = false; // written by an orderly stop: nothing to recover
    bool operator==(const SavedState&) const = default;
};

class StateError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

SavedState snapshot(const core::Arbiter& arbiter, bool clean = false);
std::string to_json(const SavedState& state);
// Throws StateError naming what is wrong.
SavedState from_json(const std::string& text);

class StateStore {
public:
    // dir: created (0755) if missing.
    explicit StateStore(std::string dir);
    const std::string& path() const { return path_; }
    // nullopt when there is no file; throws StateError when it cannot be used.
    std::optional<SavedState> load() const;
    // Renames an unusable file to state.json.corrupt-<time>; returns the new name.
    std::string move_aside() const;
    // Atomic: temp file, fsync, rename. Skips the write when nothing changed.
    void save(const SavedState& state);

private:
    std::string dir_;
    std::string path_;
    std::string last_written_;
};

// $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=) when set, else /run/promiscd.
std::string default_state_dir();

} // namespace promiscd::state

namespace promiscd::state {

// Re-installs the leases of a crashed run that `keep` accepts (their owners
// are still there), and
// the flags it had set; the leases of owners that are gone end (logged) and
// their flags are cleared by the returned commands. Never guesses: a flag the
// saved state does not name is left alone.
struct Recovery {
    size_t adopted = 0;
    size_t ended = 0;
};
core::Commands recover(core::Arbiter& arbiter, const SavedState& saved,
                       const std::function<bool(const core::Lease&)>& keep, Recovery& report);

} // namespace promiscd::state
