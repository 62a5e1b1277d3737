// What the daemon knows of one network link, as rtnetlink reports it. The net
// adapters produce it; the arbiter consumes it.
#pragma once

#include <cstdint>
#include <string>

namespace promiscd::core {

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

    bool operator==(const LinkInfo&) const = default;
};

} // namespace promiscd::core
