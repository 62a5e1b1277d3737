#include "net/link_control.hpp"

#include <cerrno>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

namespace promiscd::net {

namespace {

struct AckState {
    bool acked = false;
    int error = 0; // positive errno from the kernel's NLMSG_ERROR
};

int on_ack(nl_msg*, void* arg) {
    static_cast<AckState*>(arg)->acked = true;
    return NL_STOP;
}

int on_error(sockaddr_nl*, nlmsgerr* err, void* arg) {
    // libnl would translate the errno into its own, coarser NLE_* code (ENODEV
    // becomes "Object not found"); keep the kernel's own.
    static_cast<AckState*>(arg)->error = -err->error;
    return NL_STOP;
}

} // namespace

LinkControl::LinkControl() : sock_(open_route_socket()) {}

void LinkControl::set_promisc(int ifindex, const std::string& name, bool on) {
    const std::string context = std::string("cannot ") + (on ? "set" : "clear") +
                                " promiscuous mode on '" + name + "' (index " +
                                std::to_string(ifindex) + ")";

    NlMsg msg(nlmsg_alloc_simple(RTM_SETLINK, NLM_F_REQUEST | NLM_F_ACK));
    if (!msg)
        throw NetlinkError(ENOMEM, context);
    // ifi_change limits the request to IFF_PROMISC: with ifi_change 0 the kernel
    // would take ifi_flags as the new value of *every* flag (downing the link,
    // clearing allmulti...). No attribute is added: IFLA_IFNAME next to an index
    // means "rename", and rtnl_link_change() may add others or send RTM_NEWLINK.
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_index = ifindex;
    ifi.ifi_flags = on ? IFF_PROMISC : 0;
    ifi.ifi_change = IFF_PROMISC;
    if (int err = nlmsg_append(msg.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO); err < 0)
        throw NetlinkError(errno_from_nl(err), context);

    if (int err = nl_send_auto(sock_.get(), msg.get()); err < 0)
        throw NetlinkError(errno_from_nl(err), context);

    // The kernel handles RTM_SETLINK inside sendmsg(), so its answer is already
    // queued: this blocking read never waits on anything else.
    const uint32_t seq = nlmsg_hdr(msg.get())->nlmsg_seq;
    NlCb cb = reply_callbacks(&seq);
    AckState state;
    nl_cb_set(cb.get(), NL_CB_ACK, NL_CB_CUSTOM, on_ack, &state);
    nl_cb_err(cb.get(), NL_CB_CUSTOM, on_error, &state);
    while (!state.acked && state.error == 0) {
        int err = nl_recvmsgs(sock_.get(), cb.get());
        if (state.error != 0)
            break;
        if (err < 0) {
            if (err == -NLE_INTR || err == -NLE_AGAIN)
                continue;
            throw NetlinkError(errno_from_nl(err), context);
        }
    }
    if (state.error != 0)
        throw NetlinkError(state.error, context);
}

} // namespace promiscd::net
