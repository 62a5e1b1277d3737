// Names the arbiter speaks in: interface-name validation and the string forms
// of lease states, end reasons, policies and origins (as clients see them).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace promiscd::core {

enum class LeaseState { Active, Pending, Overridden };
enum class EndReason { Released, Expired, OwnerGone, Revoked, DaemonShutdown, NetnsGone };
enum class Policy { Enforce, Yield };
// Who set the admin bit. Unknown: it was on when promiscd started without a
// usable record of its own flags, so promiscd does not know and never clears it.
enum class Origin { None, Daemon, Admin, Unknown };

std::string_view to_string(LeaseState s);
std::string_view to_string(EndReason r);
std::string_view to_string(Policy p);
std::string_view to_string(Origin o);
std::optional<EndReason> parse_end_reason(std::string_view s);
std::optional<LeaseState> parse_lease_state(std::string_view s);
// "enforce" / "yield"; anything else: nullopt.
std::optional<Policy> parse_policy(std::string_view s);

// Throws Error(InvalidArgument) unless `name` is a name the kernel could give a
// link: 1..IFNAMSIZ-1 bytes, not "." or "..", no '/', ':', whitespace or
// control characters. The message quotes the name and says what is wrong.
void validate_interface_name(std::string_view name);

// A link of another network namespace is named "<inode>/<name>" inside
// promiscd: '/' never appears in a kernel's link name, so the qualified name
// of one namespace's link can meet neither a host link nor another
// namespace's. The host's links keep their plain names (netns 0).
std::string qualify(uint64_t netns, std::string_view name);
struct LinkName {
    uint64_t netns = 0;
    std::string_view name;
};
// The two halves of a name qualify() made; a plain name is the host's.
LinkName split_link(std::string_view qualified);
// "'eth0'", or "'eth0' in network namespace 4026532840", for messages.
std::string describe_link(std::string_view qualified);

// The name quoted for a message, with control characters escaped and long
// input shortened, so a hostile name cannot forge log lines.
std::string quote(std::string_view s);

// Link names are bytes; D-Bus strings and JSON must be UTF-8. The display
// form escapes '\' as "\\" and every byte that is not part of valid UTF-8
// as "\xNN" (lower-case hex); everything else is kept. It is what clients
// see and what they send back.
bool valid_utf8(std::string_view s);
std::string display_name(std::string_view raw);
// The raw name of a display form. Throws Error(InvalidArgument) for a '\'
// not followed by '\' or "xNN".
std::string parse_display_name(std::string_view display);

} // namespace promiscd::core
