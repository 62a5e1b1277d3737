#include "state_store.hpp"

#include "config.h"
#include "log.hpp"

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace promiscd::state {

using nlohmann::json;

namespace {

constexpr int format_version = 1;

json lease_to_json(const core::Lease& l) {
    json j = {{"id", l.id},
              {"interface", l.interface},
              {"owner",
               {{"transport", l.owner.transport},
                {"id", l.owner.id},
                {"uid", l.owner.uid},
                {"pid", l.owner.pid},
                {"command", l.owner.command}}},
              {"reason", l.reason},
              {"acquired", l.acquired}};
    if (l.expires)
        j["expires"] = *l.expires;
    return j;
}

template <typename T>
T field(const json& j, const char* key, const char* where) {
    if (!j.is_object() || !j.contains(key))
        throw StateError(std::string("missing '") + key + "' in " + where);
    try {
        return j.at(key).get<T>();
    } catch (const json::exception&) {
        throw StateError(std::string("'") + key + "' in " + where + " has the wrong type");
    }
}

core::Lease lease_from_json(const json& j) {
    core::Lease l;
    l.id = field<uint64_t>(j, "id", "a lease");
    l.interface = field<std::string>(j, "interface", "a lease");
    const json& o = j.contains("owner") ? j.at("owner") : json();
    l.owner.transport = field<std::string>(o, "transport", "a lease owner");
    l.owner.id = field<std::string>(o, "id", "a lease owner");
    l.owner.uid = field<uint32_t>(o, "uid", "a lease owner");
    l.owner.pid = field<uint32_t>(o, "pid", "a lease owner");
    l.owner.command = field<std::string>(o, "command", "a lease owner");
    l.reason = field<std::string>(j, "reason", "a lease");
    l.acquired = field<uint64_t>(j, "acquired", "a lease");
    if (j.contains("expires"))
        l.expires = field<uint64_t>(j, "expires", "a lease");
    if (l.id == 0)
        throw StateError("a lease has id 0");
    try {
        core::validate_interface_name(l.interface);
    } catch (const core::Error& e) {
        throw StateError(std::string("lease ") + std::to_string(l.id) + ": " + e.what());
    }
    return l;
}

} // namespace

SavedState snapshot(const core::Arbiter& arbiter, bool clean) {
    SavedState s;
    s.next_id = arbiter.next_id();
    s.leases = arbiter.leases();
    for (int idx : arbiter.daemon_set_links())
        if (auto v = arbiter.link(idx))
            s.daemon_flags.emplace_back(idx, v->info.name);
    s.clean = clean;
    return s;
}

std::string to_json(const SavedState& s) {
    json leases = json::array();
    for (const auto& l : s.leases)
        leases.push_back(lease_to_json(l));
    json flags = json::array();
    for (const auto& [idx, name] : s.daemon_flags)
        flags.push_back({{"ifindex", idx}, {"name", name}});
    json j = {{"version", format_version},
              {"next_id", s.next_id},
              {"clean", s.clean},
              {"leases", leases},
              {"daemon_set", flags}};
    return j.dump(2) + "\n";
}

SavedState from_json(const std::string& text) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        throw StateError(std::string("not valid JSON: ") + e.what());
    }
    if (!j.is_object())
        throw StateError("not a JSON object");
    if (field<int>(j, "version", "the file") != format_version)
        throw StateError("unknown format version " + j.at("version").dump());
    SavedState s;
    s.next_id = field<uint64_t>(j, "next_id", "the file");
    s.clean = field<bool>(j, "clean", "the file");
    const json& leases = j.contains("leases") ? j.at("leases") : json();
    if (!leases.is_array())
        throw StateError("'leases' is not an array");
    for (const auto& l : leases)
        s.leases.push_back(lease_from_json(l));
    const json& flags = j.contains("daemon_set") ? j.at("daemon_set") : json();
    if (!flags.is_array())
        throw StateError("'daemon_set' is not an array");
    for (const auto& f : flags)
        s.daemon_flags.emplace_back(field<int>(f, "ifindex", "a daemon_set entry"),
                                    field<std::string>(f, "name", "a daemon_set entry"));
    return s;
}

std::string default_state_dir() {
    if (const char* rd = ::getenv("RUNTIME_DIRECTORY"); rd && *rd) {
        // systemd may list several, separated by ':'; ours is the first.
        std::string dirs = rd;
        return dirs.substr(0, dirs.find(':'));
    }
    return PROMISCD_DEFAULT_STATE_DIR;
}

StateStore::StateStore(std::string dir) : dir_(std::move(dir)), path_(dir_ + "/state.json") {
    if (::mkdir(dir_.c_str(), 0755) < 0 && errno != EEXIST)
        throw StateError("cannot create state directory " + dir_ + ": " + std::strerror(errno));
}

std::optional<SavedState> StateStore::load() const {
    std::ifstream f(path_, std::ios::binary);
    if (!f) {
        if (errno == ENOENT)
            return std::nullopt;
        throw StateError("cannot read " + path_ + ": " + std::strerror(errno));
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return from_json(ss.str());
}

std::string StateStore::move_aside() const {
    std::string aside = path_ + ".corrupt-" + std::to_string(::time(nullptr));
    if (::rename(path_.c_str(), aside.c_str()) < 0)
        throw StateError("cannot move " + path_ + " aside: " + std::strerror(errno));
    return aside;
}

void StateStore::save(const SavedState& state) {
    std::string text = to_json(state);
    if (text == last_written_)
        return;
    std::string tmp = path_ + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        throw StateError("cannot write " + tmp + ": " + std::strerror(errno));
    const char* p = text.data();
    size_t left = text.size();
    while (left > 0) {
        ssize_t n = ::write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            throw StateError("cannot write " + tmp + ": " + std::strerror(err));
        }
        p += n;
        left -= static_cast<size_t>(n);
    }
    int synced = ::fsync(fd);
    int err = errno;
    if (::close(fd) < 0 && synced == 0) {
        synced = -1;
        err = errno;
    }
    if (synced < 0) {
        ::unlink(tmp.c_str());
        throw StateError("cannot write " + tmp + ": " + std::strerror(err));
    }
    if (::rename(tmp.c_str(), path_.c_str()) < 0) {
        err = errno;
        ::unlink(tmp.c_str());
        throw StateError("cannot replace " + path_ + ": " + std::strerror(err));
    }
    last_written_ = std::move(text);
}

} // namespace promiscd::state

namespace promiscd::state {

core::Commands recover(core::Arbiter& arbiter, const SavedState& saved,
                       const std::function<bool(const core::Lease&)>& keep, Recovery& report) {
    arbiter.set_next_id(saved.next_id);
    for (const auto& lease : saved.leases) {
        arbiter.set_next_id(lease.id + 1);
        if (!saved.clean && keep(lease)) {
            arbiter.adopt(lease);
            ++report.adopted;
            log::info("adopted lease " + std::to_string(lease.id) + " on " + lease.interface +
                      " held by " + core::describe(lease.owner));
        } else {
            ++report.ended;
            log::audit(log::Level::Info, log::id::lease_ended,
                       "lease " + std::to_string(lease.id) + " on " + lease.interface +
                           " held by " + core::describe(lease.owner) +
                           " ended: owner-gone (while promiscd was not running)",
                       {{"PROMISCD_LINK", lease.interface},
                        {"PROMISCD_LEASE", std::to_string(lease.id)},
                        {"PROMISCD_OWNER", lease.owner.id},
                        {"PROMISCD_OWNER_UID", std::to_string(lease.owner.uid)},
                        {"PROMISCD_REASON", "owner-gone"}});
        }
    }
    for (const auto& [ifindex, name] : saved.daemon_flags)
        arbiter.adopt_daemon_flag(ifindex, name);
    return arbiter.finish_adoption();
}

} // namespace promiscd::state
