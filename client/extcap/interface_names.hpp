// How promiscd's links appear to Wireshark: interface values that are safe
// wherever Wireshark puts them (extcap sentences, command lines, fifo file
// names, preference keys), and display names that cannot break an extcap
// sentence. Link names are bytes; the daemon shows them escaped ("\\",
// "\xNN"), and the value carries that escaped form, percent-encoded.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace promiscd::extcap {

inline constexpr std::string_view kValuePrefix = "promiscd-";
// The daemon's name for a capture of every link.
inline constexpr std::string_view kAnyLink = "any";

// "promiscd-" + the name with every byte outside [A-Za-z0-9._-] as %XX:
// "eth0" -> "promiscd-eth0", "v\\xff" -> "promiscd-v%5Cxff".
std::string interface_value(std::string_view link);
// The link name (as the daemon shows and accepts it) of an interface
// value; nothing when value is not one interface_value() makes.
std::optional<std::string> link_of_value(std::string_view value);
// "<name> via promiscd", with '{', '}', '\' kept unambiguous and control
// characters escaped as "\xNN".
std::string display_name(std::string_view link);

} // namespace promiscd::extcap
