#include "net/link_message.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/msg.h>
#include <sys/socket.h>

namespace promiscd::net {

namespace {

const nla_policy* link_policy() {
    static const auto policy = [] {
        std::array<nla_policy, IFLA_MAX + 1> p{};
        p[IFLA_IFNAME].type = NLA_STRING; // validated: NUL-terminated
        p[IFLA_IFNAME].maxlen = IFNAMSIZ;
        p[IFLA_PROMISCUITY].type = NLA_U32;
        p[IFLA_OPERSTATE].type = NLA_U8;
        return p;
    }();
    return policy.data();
}

} // namespace

std::optional<core::LinkInfo> parse_link(nlmsghdr* hdr) {
    if (!nlmsg_valid_hdr(hdr, sizeof(ifinfomsg)))
        return std::nullopt;
    const auto* ifi = static_cast<const ifinfomsg*>(nlmsg_data(hdr));
    // The bridge also reports its ports on RTNLGRP_LINK with family AF_BRIDGE
    // (without IFLA_PROMISCUITY), and an AF_BRIDGE RTM_DELLINK only means "left
    // the bridge": the link itself is described by AF_UNSPEC messages alone.
    if (ifi->ifi_family != AF_UNSPEC)
        return std::nullopt;
    nlattr* tb[IFLA_MAX + 1] = {};
    if (nlmsg_parse(hdr, sizeof(ifinfomsg), tb, IFLA_MAX, link_policy()) < 0 || !tb[IFLA_IFNAME])
        return std::nullopt;
    core::LinkInfo link;
    link.ifindex = ifi->ifi_index;
    link.name = nla_get_string(tb[IFLA_IFNAME]);
    link.flags = ifi->ifi_flags;
    link.type = ifi->ifi_type;
    link.admin_flag = (ifi->ifi_flags & IFF_PROMISC) != 0;
    if (tb[IFLA_PROMISCUITY])
        link.promiscuity = nla_get_u32(tb[IFLA_PROMISCUITY]);
    if (tb[IFLA_OPERSTATE])
        link.operstate = nla_get_u8(tb[IFLA_OPERSTATE]);
    return link;
}

std::vector<LinkMessage> parse_link_messages(void* data, size_t len) {
    std::vector<LinkMessage> out;
    // libnl counts in int; a datagram is far smaller than that.
    int remaining = static_cast<int>(std::min<size_t>(len, INT_MAX));
    for (auto* hdr = static_cast<nlmsghdr*>(data); nlmsg_ok(hdr, remaining);
         hdr = nlmsg_next(hdr, &remaining)) {
        if (hdr->nlmsg_type != RTM_NEWLINK && hdr->nlmsg_type != RTM_DELLINK)
            continue;
        if (auto link = parse_link(hdr))
            out.push_back({hdr->nlmsg_type == RTM_DELLINK, std::move(*link)});
    }
    return out;
}

} // namespace promiscd::net
