// RAII owners for libnl sockets, messages and callback sets, and the plumbing of
// one request/answer exchange, shared by the link watcher and the link control.
#pragma once

#include <cstdint>
#include <memory>

struct nl_sock;
struct nl_msg;
struct nl_cb;

namespace promiscd::net {

struct NlSockDeleter {
    void operator()(nl_sock* sk) const noexcept;
};
struct NlMsgDeleter {
    void operator()(nl_msg* msg) const noexcept;
};
struct NlCbDeleter {
    void operator()(nl_cb* cb) const noexcept;
};
using NlSocket = std::unique_ptr<nl_sock, NlSockDeleter>;
using NlMsg = std::unique_ptr<nl_msg, NlMsgDeleter>;
using NlCb = std::unique_ptr<nl_cb, NlCbDeleter>;

// A connected NETLINK_ROUTE socket in the calling thread's network namespace.
// Throws NetlinkError.
NlSocket open_route_socket();

// A fresh callback set (NL_CB_DEFAULT) for one request/answer exchange: it drops
// every message that did not come from the kernel or that answers another request
// (sequence number != *seq; e.g. what an earlier, failed exchange left queued).
// *seq must outlive the callbacks. Throws NetlinkError.
NlCb reply_callbacks(const uint32_t* seq);

// libnl reports its own NLE_* codes; map the common ones back to an errno for
// NetlinkError (EIO when there is no faithful equivalent).
int errno_from_nl(int nl_error) noexcept;

} // namespace promiscd::net
