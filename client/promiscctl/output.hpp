// How promiscctl shows things: aligned tables with an optional legend,
// colour only where a person reads it, JSON with stable field names,
// relative times and user names.
#pragma once

#include <promisc/promisc.hpp>

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace promiscd::ctl {

enum class JsonMode { Off, Short, Pretty };

// Whether output on fd should be coloured: a terminal, NO_COLOR unset or
// empty (https://no-color.org), and TERM not "dumb".
bool colour_wanted(int fd);

class Style {
public:
    Style() = default;
    explicit Style(bool on) : on_(on) {}
    bool on() const noexcept { return on_; }
    std::string bold(std::string_view s) const { return wrap("1", s); }
    std::string green(std::string_view s) const { return wrap("32", s); }
    std::string yellow(std::string_view s) const { return wrap("33", s); }
    std::string red(std::string_view s) const { return wrap("31", s); }
    std::string grey(std::string_view s) const { return wrap("90", s); }
    std::string header(std::string_view s) const { return wrap("1;4", s); }
    // The colour a lease state or a yes/no deserves.
    std::string state(std::string_view s) const;

private:
    std::string wrap(const char* code, std::string_view s) const;
    bool on_ = false;
};

// Columns aligned on the visible width of their cells (colour codes and
// UTF-8 continuation bytes do not count); the last column is not padded.
class Table {
public:
    explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
    // Cells are (visible text, text to print): the second may carry colour.
    struct Cell {
        std::string text;
        std::string shown;
    };
    void add_row(std::vector<Cell> row) { rows_.push_back(std::move(row)); }
    static Cell plain(std::string s) { return {s, s}; }
    size_t size() const noexcept { return rows_.size(); }
    void print(std::ostream& out, const Style& style, bool header) const;

private:
    std::vector<std::string> header_;
    std::vector<std::vector<Cell>> rows_;
};

void print_json(std::ostream& out, const nlohmann::json& j, JsonMode mode);

// CLOCK_REALTIME, microseconds since the epoch.
std::uint64_t now_usec();
// "3min ago", "in 25s", "now" (relative to now_usec()); "never" for 0.
std::string format_relative(std::uint64_t when_usec, std::uint64_t now);
// "25s", "3min 10s", "2h 5min", "4d 3h".
std::string format_timespan(std::uint64_t usec);
// Local time "2024-05-03 12:00:01.123".
std::string format_timestamp(std::uint64_t usec);
// "1.5 MiB".
std::string format_bytes(std::uint64_t bytes);
// The user name of uid, if the user database has one.
std::optional<std::string> user_name(std::uint32_t uid);
// The user name, or the uid as a number.
std::string user_label(std::uint32_t uid);
// 'text', for messages.
std::string quote(std::string_view s);

// The JSON objects of promiscctl's output; the field names are documented
// in docs/PROMISCCTL.md and promiscctl(1) and do not change.
nlohmann::json to_json(const promisc::Link& l);
nlohmann::json to_json(const promisc::LeaseInfo& l);
nlohmann::json to_json(const promisc::CaptureInfo& c);

// The D-Bus object paths promiscctl shows and takes, whatever the transport.
std::string link_path(int index);
std::string lease_path(std::uint64_t id);
std::string capture_path(std::uint64_t id);
// A lease id from its path ("/org/promiscd/Promisc1/lease/3" -> 3).
std::optional<std::uint64_t> lease_id_of(std::string_view path);

// A lease's state as promiscctl shows it ("active", ...).
std::string state_of(const promisc::LeaseInfo& l);
// CLOCK_REALTIME microseconds of a time (0 for none).
std::uint64_t usec_of(std::chrono::system_clock::time_point t);
std::uint64_t usec_of(const std::optional<std::chrono::system_clock::time_point>& t);

} // namespace promiscd::ctl
