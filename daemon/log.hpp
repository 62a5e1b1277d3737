// Logging: plain levels for the daemon's own messages, and audit records with
// structured fields and stable MESSAGE_IDs for who changed what. Goes to the
// journal when one is running, else to stderr.
#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace promiscd::log {

enum class Level { Error = 3, Warning = 4, Notice = 5, Info = 6, Debug = 7 };

void set_level(Level level);
Level level();
std::optional<Level>
parse_level(std::string_view name); // "error", "warning", "notice", "info", "debug"
// Force stderr even when a journal is present (tests, --log-target=console).
void set_console(bool console);

void write(Level level, std::string_view text);
inline void error(std::string_view t) {
    write(Level::Error, t);
}
inline void warning(std::string_view t) {
    write(Level::Warning, t);
}
inline void notice(std::string_view t) {
    write(Level::Notice, t);
}
inline void info(std::string_view t) {
    write(Level::Info, t);
}
inline void debug(std::string_view t) {
    write(Level::Debug, t);
}

// Stable ids (journalctl MESSAGE_ID=...) for audit records.
namespace id {
inline constexpr std::string_view flag_set = "6f1f2b3c9d3a4e0b8f6d5a1c2e7b9a01";
inline constexpr std::string_view flag_cleared = "6f1f2b3c9d3a4e0b8f6d5a1c2e7b9a02";
inline constexpr std::string_view lease_granted = "6f1f2b3c9d3a4e0b8f6d5a1c2e7b9a03";
inline constexpr std::string_view lease_ended = "6f1f2b3c9d3a4e0b8f6d5a1c2e7b9a04";
// Any refused request (acquire, revoke, open-capture, ...): PROMISCD_OPERATION says which.
inline constexpr std::string_view request_denied = "6f1f2b3c9d3a4e0b8f6d5a1c2e7b9a05";
inline constexpr std::string_view conflict = "6f1f2b3c9d3a4e0b8f6d5a1c2e7b9a06";
inline constexpr std::string_view lease_state = "6f1f2b3c9d3a4e0b8f6d5a1c2e7b9a07";
} // namespace id

struct Field {
    std::string_view key; // journal field name, upper case, e.g. "PROMISCD_LINK"
    std::string value;
};

// An audit record: MESSAGE plus MESSAGE_ID plus fields.
void audit(Level level, std::string_view message_id, std::string_view text,
           std::initializer_list<Field> fields);
void audit(Level level, std::string_view message_id, std::string_view text,
           const std::vector<Field>& fields);

} // namespace promiscd::log
