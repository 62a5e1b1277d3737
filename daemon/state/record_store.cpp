#include "state/record_store.hpp"
#include "state/json_text.hpp"

#include "config.h"
#include "log.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <dirent.h>
#include <fcntl.h>
#include <limits>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <type_traits>
#include <unistd.h>

namespace promiscd::state {

using nlohmann::json;
using service::RecordError;

namespace {

constexpr int format_version = 2;
constexpr off_t max_record = 64 * 1024;
constexpr core::LeaseId id_block = 1024;

std::string errno_text(int err) {
    return std::strerror(err);
}

// The directory must be ours and writable by nobody else: anyone who could
// plant a record could make promiscd clear (or keep) a flag.
std::string check_dir(int fd, const std::string& path) {
    struct stat st {};
    if (::fstat(fd, &st) < 0)
        return "cannot inspect " + path + ": " + errno_text(errno);
    if (!S_ISDIR(st.st_mode))
        return path + " is not a directory";
    if (st.st_uid != ::geteuid())
        return path + " belongs to uid " + std::to_string(st.st_uid) + ", not to promiscd's uid " +
               std::to_string(::geteuid());
    if (st.st_mode & 022)
        return path + " is writable by group or others (mode " +
               std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
               std::to_string(st.st_mode & 7) + ")";
    return {};
}

int open_subdir(int dirfd, const char* name, const std::string& path, std::string& why) {
    if (::mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST) {
        why = "cannot create " + path + ": " + errno_text(errno);
        return -1;
    }
    int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        why = "cannot open " + path + ": " + errno_text(errno);
        return -1;
    }
    why = check_dir(fd, path);
    if (!why.empty()) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// Reads a record: a regular file (never a FIFO or device, never through a
// symlink), at most max_record bytes.
std::optional<std::string> read_at(int dirfd, const std::string& name, std::string& why) {
    int fd = ::openat(dirfd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        // Empty: there is no such record.
        why = errno == ENOENT ? "" : errno == ELOOP ? "is a symbolic link" : errno_text(errno);
        return std::nullopt;
    }
    struct stat st {};
    if (::fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > max_record) {
        why = !S_ISREG(st.st_mode) ? "is not a regular file" : "is too large";
        ::close(fd);
        return std::nullopt;
    }
    std::string text(static_cast<size_t>(st.st_size), '\0');
    size_t got = 0;
    while (got < text.size()) {
        ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += static_cast<size_t>(n);
    }
    ::close(fd);
    text.resize(got);
    return text;
}

template <typename T>
T field(const json& j, const char* key, const char* where) {
    if (!j.is_object() || !j.contains(key))
        throw RecordError(std::string("missing '") + key + "' in " + where);
    const json& v = j.at(key);
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
        // nlohmann converts any number: -1 would become uid 4294967295, 1.5
        // pid 1, 2^32 uid 0. A record we did not write that way is damaged.
        if (!v.is_number_unsigned() ||
            v.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<T>::max()))
            throw RecordError(std::string("'") + key + "' in " + where +
                              " is not an unsigned integer of its range");
        return static_cast<T>(v.get<uint64_t>());
    } else {
        try {
            return v.get<T>();
        } catch (const json::exception&) {
            throw RecordError(std::string("'") + key + "' in " + where + " has the wrong type");
        }
    }
}

json parse_record(const std::string& text) {
    // Records are written by the daemon: flat objects. Anything nested more
    // deeply is not one of ours (and must not recurse the parser deeply).
    // Brackets inside strings do not count: a lease's reason or its owner's
    // command may be "[[[[[" (found by fuzz_records).
    int depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char ch = text[i];
        if (in_string) {
            if (ch == '\\')
                ++i;
            else if (ch == '"')
                in_string = false;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > 4)
                throw RecordError("nested too deeply");
        } else if ((ch == '}' || ch == ']') && depth > 0) {
            --depth;
        }
    }
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object())
        throw RecordError("not a JSON object");
    int version = field<int>(j, "version", "the record");
    if (version != format_version)
        throw RecordError("format version " + std::to_string(version) + " is not " +
                          std::to_string(format_version));
    return j;
}

std::string dump(const json& j) {
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

bool numeric(const char* name) {
    if (!*name)
        return false;
    for (const char* p = name; *p; ++p)
        if (*p < '0' || *p > '9')
            return false;
    return std::strlen(name) < 20;
}

// The names of the records in a directory (numbers; leftovers and damaged
// records moved aside have other names). nullopt when it cannot be listed.
std::optional<std::vector<std::string>> list_records(int dirfd) {
    int fd = ::dup(dirfd);
    DIR* d = fd >= 0 ? ::fdopendir(fd) : nullptr;
    if (!d) {
        if (fd >= 0)
            ::close(fd);
        return std::nullopt;
    }
    ::rewinddir(d);
    std::vector<std::string> names;
    while (dirent* e = ::readdir(d))
        if (numeric(e->d_name))
            names.emplace_back(e->d_name);
    ::closedir(d);
    return names;
}

// Moves a damaged record aside (name.damaged-<time>) and says so.
void move_aside(int dirfd, const std::string& dir, const std::string& name,
                const std::string& why) {
    std::string aside = name + ".damaged-" + std::to_string(::time(nullptr));
    if (::renameat(dirfd, name.c_str(), dirfd, aside.c_str()) < 0)
        ::unlinkat(dirfd, name.c_str(), 0);
    log::error("record " + dir + "/" + name + " is unusable (" + why + "); moved to " + aside);
}

} // namespace

std::string default_state_dir() {
    if (const char* rd = ::getenv("RUNTIME_DIRECTORY"); rd && *rd) {
        // systemd may list several, separated by ':'; ours is the first.
        std::string dirs = rd;
        return dirs.substr(0, dirs.find(':'));
    }
    return PROMISCD_DEFAULT_STATE_DIR;
}

RecordStore::RecordStore(std::string dir) : dir_(std::move(dir)) {
    open_dirs();
}

RecordStore::~RecordStore() {
    close_dirs();
}

void RecordStore::close_dirs() noexcept {
    for (int* fd : {&dirfd_, &leases_fd_, &links_fd_}) {
        if (*fd >= 0)
            ::close(*fd);
        *fd = -1;
    }
}

void RecordStore::open_dirs() {
    if (::mkdir(dir_.c_str(), 0755) < 0 && errno != EEXIST) {
        unusable_ = "cannot create " + dir_ + ": " + errno_text(errno);
        return;
    }
    dirfd_ = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dirfd_ < 0) {
        const int err = errno;
        struct stat st {};
        const bool link = ::lstat(dir_.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
        unusable_ = "cannot open " + dir_ + ": " +
                    (link ? std::string("it is a symbolic link") : errno_text(err));
        return;
    }
    unusable_ = check_dir(dirfd_, dir_);
    if (!unusable_.empty())
        return;
    struct stat st {};
    if (::fstat(dirfd_, &st) == 0) {
        dev_ = st.st_dev;
        ino_ = st.st_ino;
    }
    leases_fd_ = open_subdir(dirfd_, "leases", dir_ + "/leases", unusable_);
    if (leases_fd_ < 0)
        return;
    links_fd_ = open_subdir(dirfd_, "links", dir_ + "/links", unusable_);
}

void RecordStore::fail(const std::string& what) const {
    throw RecordError("cannot record lease state in " + dir_ + ": " + what);
}

void RecordStore::write(int dirfd, const std::string& name, const std::string& content) {
    if (!unusable_.empty())
        fail(unusable_);
    const std::string tmp = "." + name + ".tmp";
    int fd = -1;
    for (int attempt = 0; attempt < 2 && fd < 0; ++attempt) {
        fd = ::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                      0600);
        // A leftover of a crash in the middle of a write (never ours to follow).
        if (fd < 0 && errno == EEXIST)
            ::unlinkat(dirfd, tmp.c_str(), 0);
    }
    if (fd < 0)
        fail(errno_text(errno));
    const char* p = content.data();
    size_t left = content.size();
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            ::unlinkat(dirfd, tmp.c_str(), 0);
            fail(errno_text(err));
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
    if (::close(fd) < 0) {
        int err = errno;
        ::unlinkat(dirfd, tmp.c_str(), 0);
        fail(errno_text(err));
    }
    if (::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) < 0) {
        int err = errno;
        ::unlinkat(dirfd, tmp.c_str(), 0);
        fail(errno_text(err));
    }
}

std::string RecordStore::lease_to_text(const core::Lease& l) {
    std::string owner = JsonObjectText()
                            .field("transport", l.owner.transport)
                            .field("id", l.owner.id)
                            .field("uid", uint64_t{l.owner.uid})
                            .field("pid", uint64_t{l.owner.pid})
                            .field("command", l.owner.command)
                            .finish();
    JsonObjectText t;
    t.field("version", uint64_t{format_version})
        .field("id", uint64_t{l.id})
        .field("interface", core::display_name(l.interface))
        .raw("owner", owner)
        .field("reason", l.reason)
        .field("acquired", uint64_t{l.acquired})
        .field("capture", l.capture);
    if (!l.netns.empty())
        t.field("netns", l.netns);
    if (l.expires)
        t.field("expires", uint64_t{*l.expires});
    return t.finish(true);
}

core::Lease RecordStore::lease_from_text(const std::string& text) {
    json j = parse_record(text);
    core::Lease l;
    l.id = field<uint64_t>(j, "id", "a lease");
    try {
        l.interface = core::parse_display_name(field<std::string>(j, "interface", "a lease"));
        // A namespace's link: "<inode>/<name>" (core::qualify).
        core::validate_interface_name(core::split_link(l.interface).name);
    } catch (const core::Error& e) {
        throw RecordError(e.what());
    }
    const json& o = j.contains("owner") ? j.at("owner") : json();
    l.owner.transport = field<std::string>(o, "transport", "a lease owner");
    l.owner.id = field<std::string>(o, "id", "a lease owner");
    l.owner.uid = field<uint32_t>(o, "uid", "a lease owner");
    l.owner.pid = field<uint32_t>(o, "pid", "a lease owner");
    l.owner.command = field<std::string>(o, "command", "a lease owner");
    l.reason = field<std::string>(j, "reason", "a lease");
    l.acquired = field<uint64_t>(j, "acquired", "a lease");
    l.capture = field<bool>(j, "capture", "a lease");
    if (j.contains("netns"))
        l.netns = field<std::string>(j, "netns", "a lease");
    if (j.contains("expires"))
        l.expires = field<uint64_t>(j, "expires", "a lease");
    if (l.id == 0)
        throw RecordError("a lease has id 0");
    return l;
}

Records RecordStore::load() {
    Records r;
    if (!unusable_.empty()) {
        r.unusable = true;
        return r;
    }
    // A state file of promiscd 0.1 (one file for everything): not read.
    if (::unlinkat(dirfd_, "state.json", 0) == 0)
        log::notice("removed " + dir_ + "/state.json, written by an older promiscd");

    std::string why;
    if (auto text = read_at(dirfd_, "daemon", why)) {
        try {
            json j = parse_record(*text);
            r.next_id = field<uint64_t>(j, "next_id", "the daemon record");
            r.bus_id = field<std::string>(j, "bus_id", "the daemon record");
        } catch (const RecordError& e) {
            move_aside(dirfd_, dir_, "daemon", e.what());
        }
    } else if (!why.empty()) {
        move_aside(dirfd_, dir_, "daemon", why);
    }

    auto each = [&](int dirfd, const std::string& sub, auto&& take) {
        auto listed = list_records(dirfd);
        if (!listed) {
            r.unusable = true;
            log::error("cannot list " + dir_ + "/" + sub + ": " + errno_text(errno));
            return;
        }
        const std::vector<std::string>& names = *listed;
        for (const auto& name : names) {
            std::string reason;
            auto text = read_at(dirfd, name, reason);
            try {
                if (!text && reason.empty())
                    continue; // gone meanwhile
                if (!text)
                    throw RecordError(reason);
                take(name, *text);
            } catch (const RecordError& e) {
                move_aside(dirfd, dir_ + "/" + sub, name, e.what());
                if (sub == "leases")
                    ++r.damaged_leases;
                else
                    r.damaged_flags.push_back(std::stoi(name));
            }
        }
    };
    each(leases_fd_, "leases", [&](const std::string& name, const std::string& text) {
        core::Lease l = lease_from_text(text);
        if (std::to_string(l.id) != name)
            throw RecordError("it names lease " + std::to_string(l.id));
        r.leases.push_back(std::move(l));
    });
    each(links_fd_, "links", [&](const std::string& name, const std::string& text) {
        json j = parse_record(text);
        int idx = field<int>(j, "ifindex", "a link record");
        if (std::to_string(idx) != name)
            throw RecordError("it names link " + std::to_string(idx));
        try {
            r.flags.emplace_back(
                idx, core::parse_display_name(field<std::string>(j, "name", "a link record")));
        } catch (const core::Error& e) {
            throw RecordError(e.what());
        }
    });
    return r;
}

void RecordStore::follow_replacement() {
    if (dirfd_ < 0 && !replaced_)
        return; // unusable from the start: write() says why
    struct stat st {};
    if (!replaced_ && ::lstat(dir_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
        return;
    if (!replaced_)
        log::warning(dir_ + " was replaced or removed while promiscd ran: every lease and flag "
                            "is recorded again in what is there now");
    close_dirs();
    unusable_.clear();
    open_dirs();
    replaced_ = !unusable_.empty();
    if (replaced_)
        fail(unusable_); // and again at the next write, until it is usable
    save_daemon();
    for (const auto& [ifindex, text] : flags_)
        write(links_fd_, std::to_string(ifindex), text);
    if (lease_source_)
        for (const auto& lease : lease_source_())
            write(leases_fd_, std::to_string(lease.id), lease_to_text(lease));
    log::notice("recorded " + std::to_string(flags_.size()) + " flags and the leases in force in " +
                dir_ + " again");
}

void RecordStore::save_daemon() {
    write(dirfd_, "daemon",
          dump({{"version", format_version}, {"next_id", reserved_}, {"bus_id", bus_id_}}));
}

void RecordStore::begin(const std::string& bus_id, core::LeaseId next_id) {
    bus_id_ = bus_id;
    reserved_ = next_id + id_block;
    save_daemon();
}

void RecordStore::save_lease(const core::Lease& lease) {
    follow_replacement();
    if (lease.id >= reserved_) {
        // Ids are never reused, across restarts too: reserve the next block
        // before the first id of it is handed out.
        core::LeaseId before = reserved_;
        reserved_ = lease.id + id_block;
        try {
            save_daemon();
        } catch (...) {
            reserved_ = before;
            throw;
        }
    }
    write(leases_fd_, std::to_string(lease.id), lease_to_text(lease));
}

void RecordStore::save_flag(int ifindex, const std::string& name) {
    follow_replacement();
    std::string text = dump(
        {{"version", format_version}, {"ifindex", ifindex}, {"name", core::display_name(name)}});
    auto it = flags_.find(ifindex);
    if (it != flags_.end() && it->second == text)
        return;            // on disk already
    flags_.erase(ifindex); // unknown until the write succeeds
    write(links_fd_, std::to_string(ifindex), text);
    flags_.emplace(ifindex, std::move(text));
}

void RecordStore::remove_lease(core::LeaseId id) noexcept {
    if (leases_fd_ >= 0)
        ::unlinkat(leases_fd_, std::to_string(id).c_str(), 0);
}

void RecordStore::remove_flag(int ifindex) noexcept {
    flags_.erase(ifindex);
    if (links_fd_ >= 0)
        ::unlinkat(links_fd_, std::to_string(ifindex).c_str(), 0);
}

void RecordStore::prune(const core::Arbiter& arbiter) noexcept {
    if (!unusable_.empty())
        return;
    try {
        for (auto [fd, keep_leases] : {std::pair{leases_fd_, true}, std::pair{links_fd_, false}}) {
            auto names = list_records(fd);
            if (!names)
                continue;
            for (const auto& n : *names) {
                bool backed = keep_leases ? arbiter.find(std::stoull(n)) != nullptr
                                          : arbiter.daemon_set_links().count(std::stoi(n)) > 0;
                if (!backed) {
                    if (!keep_leases)
                        flags_.erase(std::stoi(n));
                    ::unlinkat(fd, n.c_str(), 0);
                }
            }
        }
    } catch (...) {
        // Best effort: a leftover is reconciled at the next start.
    }
}

void RecordStore::clear() noexcept {
    if (!unusable_.empty())
        return;
    core::Arbiter empty;
    prune(empty);
}

} // namespace promiscd::state
