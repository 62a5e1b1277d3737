// Turns a link's administrative IFF_PROMISC bit on or off with RTM_SETLINK,
// touching no other flag or attribute of the link.
#pragma once

#include "net/netlink_error.hpp"
#include "net/netlink_socket.hpp"

#include <string>

namespace promiscd::net {

class LinkControl {
public:
    // Opens an rtnetlink socket in the calling thread's network namespace; every
    // later call acts on that namespace. Throws NetlinkError.
    LinkControl();
    LinkControl(const LinkControl&) = delete;
    LinkControl& operator=(const LinkControl&) = delete;

    // Sets (on) or clears the IFF_PROMISC bit of ifindex and waits for the kernel's
    // answer. name is used only in the error message. Throws NetlinkError, e.g.
    // "cannot set promiscuous mode on 'eth0' (index 3): No such device".
    void set_promisc(int ifindex, const std::string& name, bool on);

private:
    NlSocket sock_;
};

} // namespace promiscd::net
