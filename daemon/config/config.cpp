#include "config.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace promiscd::config {

using nlohmann::json;

namespace {

// What every Reader of one file shares: the file's name for messages, and
// where to note the keys asked for (parse()'s `keys`).
struct Context {
    const std::string& origin;
    std::vector<std::string>* keys;
};

// Reads one JSON object, remembering the path of keys for messages, and
// refusing keys nobody asked for.
class Reader {
public:
    Reader(const json& j, std::string where, const Context& ctx)
        : j_(j), where_(std::move(where)), ctx_(ctx) {
        if (!j_.is_object())
            fail(where_.empty() ? "the top level must be a JSON object"
                                : "'" + where_ + "' must be an object");
    }

    [[noreturn]] void fail(const std::string& what) const {
        throw ConfigError(ctx_.origin + ": " + what);
    }
    std::string key_path(const std::string& key) const {
        return where_.empty() ? key : where_ + "." + key;
    }
    const json* get(const std::string& key) {
        seen_.insert(key);
        if (ctx_.keys)
            ctx_.keys->push_back(key_path(key));
        auto it = j_.find(key);
        return it == j_.end() ? nullptr : &*it;
    }
    template <typename T>
    void number(const std::string& key, T& out, uint64_t min, uint64_t max) {
        const json* v = get(key);
        if (!v)
            return;
        if (!v->is_number_unsigned())
            fail("'" + key_path(key) + "' must be a non-negative integer");
        auto n = v->get<uint64_t>();
        if (n < min || n > max)
            fail("'" + key_path(key) + "' must be between " + std::to_string(min) + " and " +
                 std::to_string(max));
        out = static_cast<T>(n);
    }
    void boolean(const std::string& key, bool& out) {
        const json* v = get(key);
        if (!v)
            return;
        if (!v->is_boolean())
            fail("'" + key_path(key) + "' must be true or false");
        out = v->get<bool>();
    }
    void string(const std::string& key, std::string& out) {
        const json* v = get(key);
        if (!v)
            return;
        if (!v->is_string())
            fail("'" + key_path(key) + "' must be a string");
        out = v->get<std::string>();
    }
    const json* array(const std::string& key) {
        const json* v = get(key);
        if (v && !v->is_array())
            fail("'" + key_path(key) + "' must be an array");
        return v;
    }
    const json* object(const std::string& key) {
        const json* v = get(key);
        if (v && !v->is_object())
            fail("'" + key_path(key) + "' must be an object");
        return v;
    }
    // Call last: every key must have been asked for.
    void finish() const {
        for (const auto& [k, v] : j_.items())
            if (!seen_.count(k))
                fail("unknown key '" + key_path(k) + "'");
    }

private:
    const json& j_;
    std::string where_;
    const Context& ctx_;
    std::set<std::string> seen_;
};

std::string validated_name(Reader& r, const std::string& key, const std::string& name) {
    try {
        core::validate_interface_name(name);
    } catch (const core::Error& e) {
        r.fail("'" + key + "': " + e.what());
    }
    return name;
}

} // namespace

Config parse(const std::string& text, const std::string& origin, std::vector<std::string>* keys) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        // parse_error, and out_of_range for a number too large for a double
        // ("1e400"), which escaped reload() and ended the daemon (found by
        // fuzz_config).
        throw ConfigError(origin + ": not valid JSON: " + e.what());
    }
    Config c;
    const Context ctx{origin, keys};
    Reader top(j, "", ctx);
    constexpr uint64_t big = 1'000'000;

    if (const json* q = top.object("quotas")) {
        Reader r(*q, "quotas", ctx);
        r.number("leases_per_uid", c.limits.leases_per_uid, 1, big);
        r.number("leases_total", c.limits.leases_total, 1, big);
        r.number("captures_per_uid", c.limits.captures_per_uid, 0, 4096);
        r.number("captures_total", c.limits.captures_total, 0, 4096);
        r.number("namespaces_total", c.limits.namespaces_total, 1, 1024);
        r.finish();
    }
    if (const json* n = top.object("namespaces")) {
        Reader r(*n, "namespaces", ctx);
        r.boolean("enabled", c.namespaces_enabled);
        r.finish();
    }
    if (const json* q = top.object("conflict")) {
        Reader r(*q, "conflict", ctx);
        r.number("max_clears", c.limits.conflict_max_clears, 1, 1000);
        uint64_t window = c.limits.conflict_window / core::usec_per_sec;
        r.number("window_seconds", window, 1, 3600);
        c.limits.conflict_window = window * core::usec_per_sec;
        r.finish();
    }
    if (const json* ps = top.array("policies")) {
        for (size_t i = 0; i < ps->size(); ++i) {
            Reader r((*ps)[i], "policies[" + std::to_string(i) + "]", ctx);
            std::string match, policy;
            r.string("match", match);
            r.string("policy", policy);
            r.finish();
            if (match.empty())
                r.fail("'policies[" + std::to_string(i) + "].match' is missing or empty");
            auto p = core::parse_policy(policy);
            if (!p)
                r.fail("'policies[" + std::to_string(i) + "].policy' must be \"enforce\" or " +
                       "\"yield\", not \"" + policy + "\"");
            c.policies.emplace_back(match, *p);
        }
    }
    if (const json* gs = top.array("allowed_groups")) {
        for (size_t i = 0; i < gs->size(); ++i) {
            if (!(*gs)[i].is_string() || (*gs)[i].get<std::string>().empty())
                top.fail("'allowed_groups[" + std::to_string(i) + "]' must be a group name");
            c.allowed_groups.push_back((*gs)[i].get<std::string>());
        }
    }
    if (const json* ls = top.array("static_leases")) {
        for (size_t i = 0; i < ls->size(); ++i) {
            const std::string where = "static_leases[" + std::to_string(i) + "]";
            Reader r((*ls)[i], where, ctx);
            StaticLease s;
            r.string("interface", s.interface);
            r.string("reason", s.reason);
            r.finish();
            s.interface = validated_name(r, where + ".interface", s.interface);
            c.static_leases.push_back(std::move(s));
        }
    }
    top.number("idle_exit_seconds", c.idle_exit_seconds, 0, 7 * 24 * 3600);
    top.number("max_capture_buffer", c.limits.max_capture_buffer, 64 * 1024, size_t{1} << 31);
    top.number("capture_memory_total", c.limits.capture_memory_total, 64 * 1024, size_t{1} << 40);
    if (const json* a = top.object("authorization")) {
        Reader r(*a, "authorization", ctx);
        r.number("checks_in_flight", c.authorization.in_flight_total, 1, 100);
        r.number("checks_in_flight_per_uid", c.authorization.in_flight_per_caller, 1, 100);
        r.number("checks_waiting_per_uid", c.authorization.queued_per_caller, 0, 100000);
        r.number("checks_waiting", c.authorization.queued_total, 0, 1000000);
        r.finish();
    }
    if (const json* f = top.object("filters")) {
        Reader r(*f, "filters", ctx);
        r.number("max_terms", c.filters.max_terms, 1, 1000);
        r.number("cpu_ms", c.filters.cpu_ms, 10, 600000);
        r.number("compilations_in_flight", c.filters.queue.in_flight_total, 1, 64);
        r.number("compilations_waiting", c.filters.queue.queued_total, 0, 100000);
        r.finish();
    }
    if (const json* v = top.object("varlink")) {
        Reader r(*v, "varlink", ctx);
        r.number("max_message_bytes", c.varlink_max_message_bytes, 1024, 16 * 1024 * 1024);
        r.number("max_connections_per_uid", c.varlink_max_connections_per_uid, 1, 4096);
        r.number("max_connections", c.varlink_max_connections, 1, 65536);
        r.number("max_backlog_bytes", c.varlink_max_backlog_bytes, 64 * 1024, size_t{1} << 30);
        r.number("max_total_backlog_bytes", c.varlink_max_total_backlog_bytes, 64 * 1024,
                 size_t{1} << 34);
        r.number("idle_timeout_seconds", c.varlink_idle_timeout_seconds, 0, 7 * 24 * 3600);
        r.finish();
    }
    if (const json* v = top.object("dbus")) {
        Reader r(*v, "dbus", ctx);
        r.number("max_queued_messages", c.dbus_max_queued_messages, 64, uint64_t{1} << 22);
        r.finish();
    }
    if (const json* v = top.object("reads")) {
        Reader r(*v, "reads", ctx);
        r.number("items_burst", c.reads_items_burst, 1, uint64_t{1} << 32);
        r.number("items_per_second", c.reads_items_per_second, 1, uint64_t{1} << 32);
        r.finish();
    }
    top.finish();
    return c;
}

Config load(const std::string& path, bool must_exist) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        if (errno == ENOENT && !must_exist)
            return Config{};
        throw ConfigError(path + ": cannot read: " + std::strerror(errno));
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return parse(ss.str(), path);
}

} // namespace promiscd::config
