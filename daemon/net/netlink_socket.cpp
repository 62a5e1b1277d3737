#include "net/netlink_socket.hpp"

#include "net/netlink_error.hpp"

#include <cerrno>
#include <cstring>
#include <linux/netlink.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <string>

namespace promiscd::net {

void NlSockDeleter::operator()(nl_sock* sk) const noexcept {
    // nl_socket_free() also closes the fd.
    nl_socket_free(sk);
}

void NlMsgDeleter::operator()(nl_msg* msg) const noexcept {
    nlmsg_free(msg);
}

void NlCbDeleter::operator()(nl_cb* cb) const noexcept {
    nl_cb_put(cb);
}

int errno_from_nl(int nl_error) noexcept {
    switch (nl_error < 0 ? -nl_error : nl_error) {
    case NLE_NOMEM:
        return ENOMEM;
    case NLE_AGAIN:
        return EAGAIN;
    case NLE_INTR:
        return EINTR;
    case NLE_PERM:
        return EPERM;
    case NLE_NOACCESS:
        return EACCES;
    case NLE_BAD_SOCK:
        return EBADF;
    case NLE_AF_NOSUPPORT:
        return EAFNOSUPPORT;
    case NLE_PROTO_MISMATCH:
        return EPROTONOSUPPORT;
    case NLE_OPNOTSUPP:
        return EOPNOTSUPP;
    case NLE_INVAL:
        return EINVAL;
    case NLE_RANGE:
        return ERANGE;
    case NLE_MSGSIZE:
        return EMSGSIZE;
    case NLE_NODEV:
        return ENODEV;
    case NLE_OBJ_NOTFOUND:
        return ENOENT;
    case NLE_EXIST:
        return EEXIST;
    case NLE_BUSY:
        return EBUSY;
    default:
        return EIO;
    }
}

NlSocket open_route_socket() {
    NlSocket sk(nl_socket_alloc());
    if (!sk)
        throw NetlinkError(ENOMEM, "cannot allocate a netlink socket");
    // libnl 3.7 opens it with SOCK_CLOEXEC (test_net checks): the daemon hands
    // fds to clients and must never let a netlink socket escape into a child.
    if (int err = nl_connect(sk.get(), NETLINK_ROUTE); err < 0)
        throw NetlinkError(errno_from_nl(err), std::string("cannot open an rtnetlink socket (") +
                                                   nl_geterror(err) + ")");
    return sk;
}

namespace {

// Any local process may unicast a datagram to our port id; only the kernel's
// word counts for link state and for acknowledgements.
int drop_unless_from_kernel(nl_msg* msg, void*) {
    const sockaddr_nl* src = nlmsg_get_src(msg);
    return src && src->nl_pid == 0 ? NL_OK : NL_SKIP;
}

// Replaces libnl's own check, which compares with a per-socket counter that an
// exchange cut short (an error half-way through a dump) leaves out of step for
// good; matching the request's own number lets the next exchange skip the rest.
int drop_unless_answer(nl_msg* msg, void* arg) {
    return nlmsg_hdr(msg)->nlmsg_seq == *static_cast<const uint32_t*>(arg) ? NL_OK : NL_SKIP;
}

} // namespace

NlCb reply_callbacks(const uint32_t* seq) {
    NlCb cb(nl_cb_alloc(NL_CB_DEFAULT));
    if (!cb)
        throw NetlinkError(ENOMEM, "cannot allocate netlink callbacks");
    nl_cb_set(cb.get(), NL_CB_MSG_IN, NL_CB_CUSTOM, drop_unless_from_kernel, nullptr);
    nl_cb_set(cb.get(), NL_CB_SEQ_CHECK, NL_CB_CUSTOM, drop_unless_answer,
              const_cast<uint32_t*>(seq));
    return cb;
}

} // namespace promiscd::net
