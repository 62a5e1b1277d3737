// The daemon's records under its runtime directory, one small file per lease
// (leases/<id>) and per link whose flag promiscd set (links/<ifindex>), as
// systemd-networkd and logind keep /run/systemd/netif/links/N and
// /run/systemd/sessions/ID; plus one file for the daemon itself (daemon: the
// bus it served and the lease ids it reserved). Recording a change writes or
// removes one file, whatever the number of leases. Files are written to a
// temporary name (O_CREAT|O_EXCL|O_NOFOLLOW) and renamed; they are read with
// O_NOFOLLOW and must be regular files; the directories must belong to the
// daemon's user and be writable by nobody else, or nothing in them is trusted
// and no lease is granted. /run is lost at reboot together with every flag,
// so nothing is fsync'ed: only a crash of the daemon must be survived.
#pragma once

#include "core/arbiter.hpp"
#include "service/recorder.hpp"

#include <functional>
#include <optional>
#include <string>
#include <sys/types.h>
#include <unordered_map>
#include <utility>
#include <vector>

namespace promiscd::state {

// What the records of an earlier run say.
struct Records {
    std::vector<core::Lease> leases;
    std::vector<std::pair<int, std::string>> flags; // ifindex, raw name
    core::LeaseId next_id = 1;
    std::string bus_id; // the bus the earlier run served ("" without one)
    // Records that could not be used (moved aside, logged): a damaged lease
    // record hides which link it held; a damaged link record, whose flag it was.
    unsigned damaged_leases = 0;
    std::vector<int> damaged_flags;
    // The directory itself could not be trusted or read: nothing is known.
    bool unusable = false;
};

class RecordStore final : public service::Recorder {
public:
    // dir: created (0755) if missing, then checked. Never throws: an unsafe
    // or unwritable directory makes unusable() say why.
    explicit RecordStore(std::string dir);
    ~RecordStore() override;
    RecordStore(const RecordStore&) = delete;
    RecordStore& operator=(const RecordStore&) = delete;

    // The records of the previous run (damaged ones moved aside).
    Records load();
    // Remembers the bus this run serves (empty: none) and reserves lease ids
    // from next_id on. Throws service::RecordError.
    void begin(const std::string& bus_id, core::LeaseId next_id);
    // Removes every record the arbiter no longer backs (after recovery).
    void prune(const core::Arbiter& arbiter) noexcept;
    // After an orderly stop nothing is left to recover.
    void clear() noexcept;
    // The leases in force, for when the directory must be written again from
    // scratch: it was replaced or removed while the daemon ran (each write
    // first checks that the path still names the directory it opened).
    void set_lease_source(std::function<std::vector<core::Lease>()> source) {
        lease_source_ = std::move(source);
    }

    // service::Recorder
    void save_lease(const core::Lease& lease) override;
    void save_flag(int ifindex, const std::string& name) override;
    void remove_lease(core::LeaseId id) noexcept override;
    void remove_flag(int ifindex) noexcept override;
    std::string unusable() const override { return unusable_; }
    const std::string& where() const override { return dir_; }

    // Serialization, for tests and for the fuzzers (throws service::RecordError).
    static std::string lease_to_text(const core::Lease& lease);
    static core::Lease lease_from_text(const std::string& text);

private:
    void open_dirs();
    void close_dirs() noexcept;
    // Before a write: if the path no longer names the directory opened, open
    // the one it names now (checked as at start) and record everything in it.
    void follow_replacement();
    void write(int dirfd, const std::string& name, const std::string& content);
    void save_daemon();
    [[noreturn]] void fail(const std::string& what) const;

    std::string dir_;
    int dirfd_ = -1;
    int leases_fd_ = -1;
    int links_fd_ = -1;
    dev_t dev_ = 0; // the directory opened, to notice it being replaced
    ino_t ino_ = 0;
    bool replaced_ = false; // replaced, and what is there now is unusable
    std::function<std::vector<core::Lease>()> lease_source_;
    std::string unusable_;
    std::string bus_id_;
    core::LeaseId reserved_ = 0; // ids below this are on record as used
    // What this run last wrote to links/<ifindex>: rewriting the same text
    // (the flag set again after another agent cleared it) is skipped.
    std::unordered_map<int, std::string> flags_;
};

// $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=) when set, else /run/promiscd.
std::string default_state_dir();

} // namespace promiscd::state
