// What the daemon knows of one network link, as rtnetlink reports it. The net
// adapters produce it; the arbiter consumes it.
#pragma once

#include <cstdint>
#include <string>

namespace promiscd::core {

// promiscd's own indexes for links of other namespaces start here; a kernel
// hands out indexes from 1 up, one link creation at a time.
inline constexpr int kFirstNamespaceIndex = 1 << 30;

struct LinkInfo {
    int ifindex = 0;
    std::string name;
    // IFF_PROMISC as RTM_NEWLINK reports it: the single admin bit (gflags) that
    // RTM_SETLINK and `ip link set promisc` set. Packet sockets do not show here.
    bool admin_flag = false;
    // IFLA_PROMISCUITY: the kernel's count (admin bit + packet sockets + bridges...).
    uint32_t promiscuity = 0;
    // IFLA_OPERSTATE (IF_OPER_*).
    uint8_t operstate = 0;
    // All ifi_flags, for display.
    uint32_t flags = 0;
    // ifi_type (ARPHRD_*): whether captures see Ethernet frames or cooked ones.
    uint16_t type = 1;
    // Links of another network namespace (docs/DESIGN.md, "Other network
    // namespaces"): the namespace's inode (0: promiscd's own) and the index
    // the kernel gave the link there. Inside promiscd such a link is known by
    // an index of its own (ifindex, from kFirstNamespaceIndex up, so it never
    // meets a kernel's) and by its qualified name ("<inode>/<name>").
    uint64_t netns = 0;
    int netns_ifindex = 0;

    bool operator==(const LinkInfo&) const = default;
};

} // namespace promiscd::core
