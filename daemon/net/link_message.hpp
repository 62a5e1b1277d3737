// RTM_NEWLINK/RTM_DELLINK messages as the kernel sends them -> LinkInfo. No
// I/O: the watcher hands it what it read, the fuzzer hands it anything.
#pragma once

#include "core/link_info.hpp"

#include <cstddef>
#include <optional>
#include <vector>

struct nlmsghdr;

namespace promiscd::net {

// One link message (the header's length already checked against the buffer,
// as nlmsg_ok() does); nullopt for what does not describe a link: too short,
// a family other than AF_UNSPEC, malformed attributes, no IFLA_IFNAME.
std::optional<core::LinkInfo> parse_link(nlmsghdr* hdr);

struct LinkMessage {
    bool removed = false; // RTM_DELLINK
    core::LinkInfo link;
};

// Every link message in one datagram, in order; other message types and
// messages that do not parse are skipped. data must be 4-byte aligned.
std::vector<LinkMessage> parse_link_messages(void* data, size_t len);

} // namespace promiscd::net
