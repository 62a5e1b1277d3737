#include "net/link_watcher.hpp"

#include "net/link_message.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <linux/if.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <optional>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>

namespace promiscd::net {

namespace {

constexpr int default_rcvbuf = 1 << 20;
// One notification is one datagram. Link messages are a few KiB; a device with
// many VFs can make one larger, and a truncated one is treated as a lost one.
constexpr size_t notification_buf_size = 64 * 1024;
// A dump that raced with a change (NLM_F_DUMP_INTR) may miss or repeat a link.
constexpr int dump_attempts = 10;

struct DumpState {
    std::vector<core::LinkInfo>* links;
    bool done = false;
    bool interrupted = false;
    bool out_of_memory = false;
};

int on_dump_link(nl_msg* msg, void* arg) {
    auto* st = static_cast<DumpState*>(arg);
    if (nlmsg_hdr(msg)->nlmsg_type != RTM_NEWLINK)
        return NL_OK;
    try {
        if (auto link = parse_link(nlmsg_hdr(msg)))
            st->links->push_back(std::move(*link));
    } catch (const std::bad_alloc&) {
        // No exception may cross libnl's C frames; read on so that the dump is
        // consumed, and fail afterwards.
        st->out_of_memory = true;
    }
    return NL_OK;
}

int on_dump_done(nl_msg*, void* arg) {
    static_cast<DumpState*>(arg)->done = true;
    return NL_STOP;
}

int on_dump_intr(nl_msg*, void* arg) {
    static_cast<DumpState*>(arg)->interrupted = true;
    return NL_OK;
}

void set_rcvbuf(int fd, int bytes) {
    // SO_RCVBUFFORCE (CAP_NET_ADMIN, which the daemon has) ignores rmem_max;
    // without the capability fall back to SO_RCVBUF, which the kernel caps.
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes) == 0)
        return;
    if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof bytes) < 0)
        throw NetlinkError(errno, "cannot size the link notification socket");
}

} // namespace

void LinkWatcher::SourceDeleter::operator()(sd_event_source* s) const noexcept {
    sd_event_source_disable_unref(s);
}

LinkWatcher::LinkWatcher(Callbacks cb, int rcvbuf_bytes)
    : cb_(std::move(cb)), notify_sock_(open_route_socket()), dump_sock_(open_route_socket()),
      buf_(notification_buf_size) {
    // Notifications carry sequence number 0 and answer no request of ours.
    nl_socket_disable_seq_check(notify_sock_.get());
    if (int err = nl_socket_set_nonblocking(notify_sock_.get()); err < 0)
        throw NetlinkError(errno_from_nl(err), "cannot make the link notification socket "
                                               "non-blocking");
    // After nl_connect(), which sets libnl's 32 KiB default: that holds a few
    // dozen link notifications, so any burst (a bridge or a VM host starting)
    // would force a resync.
    set_rcvbuf(fd(), rcvbuf_bytes > 0 ? rcvbuf_bytes : default_rcvbuf);
}

LinkWatcher::~LinkWatcher() = default;

int LinkWatcher::fd() const {
    return nl_socket_get_fd(notify_sock_.get());
}

std::vector<core::LinkInfo> LinkWatcher::start() {
    // Subscribe before dumping: a change made during the dump then shows up as
    // a notification afterwards (at worst telling us again what the dump said),
    // instead of falling into the gap between the two.
    if (int err = nl_socket_add_membership(notify_sock_.get(), RTNLGRP_LINK); err < 0)
        throw NetlinkError(errno_from_nl(err), "cannot subscribe to link notifications");
    return dump();
}

std::vector<core::LinkInfo> LinkWatcher::dump() {
    for (int attempt = 1;; ++attempt) {
        NlMsg msg(nlmsg_alloc_simple(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP));
        if (!msg)
            throw NetlinkError(ENOMEM, "cannot list links");
        ifinfomsg ifi{};
        ifi.ifi_family = AF_UNSPEC;
        int err = nlmsg_append(msg.get(), &ifi, sizeof ifi, NLMSG_ALIGNTO);
        // Statistics are a large part of each link message and are never read here.
        if (err >= 0)
            err = nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        if (err >= 0)
            err = nl_send_auto(dump_sock_.get(), msg.get());
        if (err < 0)
            throw NetlinkError(errno_from_nl(err),
                               std::string("cannot list links (") + nl_geterror(err) + ")");

        std::vector<core::LinkInfo> links;
        DumpState st{&links};
        const uint32_t seq = nlmsg_hdr(msg.get())->nlmsg_seq;
        NlCb cb = reply_callbacks(&seq);
        nl_cb_set(cb.get(), NL_CB_VALID, NL_CB_CUSTOM, on_dump_link, &st);
        nl_cb_set(cb.get(), NL_CB_FINISH, NL_CB_CUSTOM, on_dump_done, &st);
        nl_cb_set(cb.get(), NL_CB_DUMP_INTR, NL_CB_CUSTOM, on_dump_intr, &st);
        // The kernel fills the dump as we read it; these reads wait on nothing else.
        while (!st.done) {
            err = nl_recvmsgs(dump_sock_.get(), cb.get());
            if (err < 0 && err != -NLE_INTR)
                throw NetlinkError(errno_from_nl(err),
                                   std::string("cannot list links (") + nl_geterror(err) + ")");
        }
        if (st.out_of_memory)
            throw NetlinkError(ENOMEM, "cannot list links");
        if (!st.interrupted)
            return links;
        if (attempt == dump_attempts)
            throw NetlinkError(EAGAIN, "cannot list links: every dump raced with a change");
    }
}

void LinkWatcher::process() {
    // A bounded slice per dispatch: a storm of link changes must not keep
    // the loop from everything else. The io source is level-triggered, and
    // the defer source covers what settled() read ahead, so what is left is
    // handled on the next turn.
    for (unsigned n = 0; n < kReadsPerDispatch; ++n) {
        if (pending_.empty() && !read_one()) {
            if (!resync_pending_)
                return;
            resync();
            continue; // read what arrived during the dump
        }
        if (pending_.empty())
            continue; // a datagram without a link message in it
        // Popped before the callback, which may call settled() and queue more.
        Event e = std::move(pending_.front());
        pending_.pop_front();
        deliver(e);
    }
    if (busy())
        wake();
}

bool LinkWatcher::read_one() {
    const int sock = fd();
    for (;;) {
        sockaddr_nl from{};
        iovec iov{buf_.data(), buf_.size()};
        msghdr mh{};
        mh.msg_name = &from;
        mh.msg_namelen = sizeof from;
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        // Not nl_recvmsgs(): libnl 3.7 turns ENOBUFS into -NLE_NOMEM, the same
        // code as a failed malloc, and the overrun is the one error we must know.
        ssize_t n = ::recvmsg(sock, &mh, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOBUFS) {
                // The kernel reports the overrun before what is still queued. All
                // of that, and what was read ahead, is older than the
                // notifications that were lost: read and dropped, as the dump
                // supersedes it.
                resync_pending_ = true;
                pending_.clear();
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return false;
            throw NetlinkError(errno, "cannot read link notifications");
        }
        if (resync_pending_)
            return true;
        if (mh.msg_flags & MSG_TRUNC) {
            resync_pending_ = true;
            pending_.clear();
            return true;
        }
        // Any local process may unicast to our port id; only the kernel's word counts.
        if (from.nl_pid != 0)
            return true;
        queue(buf_.data(), static_cast<size_t>(n));
        return true;
    }
}

void LinkWatcher::queue(void* data, size_t len) {
    for (auto& m : parse_link_messages(data, len))
        pending_.push_back({m.removed, false, std::move(m.link)});
}

void LinkWatcher::deliver(const Event& e) {
    if (e.removed) {
        if (cb_.removed)
            cb_.removed(e.link.ifindex, e.link.name);
    } else if (cb_.changed) {
        cb_.changed(e.link, e.superseded);
    }
}

void LinkWatcher::settled(int ifindex, bool on) {
    // The receive buffer bounds what is queued, but others keep adding to it
    // while we read: past this many, give up on sorting and re-read the table.
    constexpr unsigned max_read_ahead = 8192;
    unsigned reads = 0;
    try {
        while (read_one()) {
            if (++reads == max_read_ahead)
                throw NetlinkError(EAGAIN, "too many link notifications to sort");
        }
    } catch (const NetlinkError&) {
        // Our change stands either way; a fresh dump tells the rest.
        resync_pending_ = true;
        pending_.clear();
    }
    // Up to the last notification showing the bit as we set it: that is our
    // echo (or, when our change found the bit already so and the kernel sent
    // none, the change that made it so). Later ones are news.
    auto echo = std::find_if(pending_.rbegin(), pending_.rend(), [&](const Event& e) {
        return !e.removed && e.link.ifindex == ifindex && e.link.admin_flag == on;
    });
    for (auto it = echo; it != pending_.rend(); ++it)
        if (!it->removed && it->link.ifindex == ifindex)
            it->superseded = true;
    if (busy())
        wake();
}

void LinkWatcher::wake() {
    if (defer_)
        sd_event_source_set_enabled(defer_.get(), SD_EVENT_ONESHOT);
}

void LinkWatcher::resync() {
    auto links = dump();
    resync_pending_ = false;
    ++resyncs_;
    if (cb_.resynced)
        cb_.resynced(links);
}

void LinkWatcher::attach(sd_event* event) {
    sd_event_source* s = nullptr;
    if (int r = sd_event_add_io(event, &s, fd(), EPOLLIN, &LinkWatcher::on_readable, this); r < 0)
        throw NetlinkError(-r, "cannot watch link notifications");
    source_.reset(s);
    s = nullptr;
    if (int r = sd_event_add_defer(event, &s, &LinkWatcher::on_deferred, this); r < 0)
        throw NetlinkError(-r, "cannot watch link notifications");
    defer_.reset(s);
    sd_event_source_set_enabled(s, busy() ? SD_EVENT_ONESHOT : SD_EVENT_OFF);
}

int LinkWatcher::on_readable(sd_event_source* s, int, uint32_t, void* userdata) {
    return run(s, static_cast<LinkWatcher*>(userdata));
}

int LinkWatcher::on_deferred(sd_event_source* s, void* userdata) {
    return run(s, static_cast<LinkWatcher*>(userdata));
}

int LinkWatcher::run(sd_event_source* s, LinkWatcher* self) {
    // No exception may unwind through sd-event's C frames. A watcher that stopped
    // reading would leave the daemon acting on stale link state, so a failure
    // ends the loop (the service manager restarts the daemon, which recovers).
    std::string why = "unknown error";
    try {
        self->process();
        return 0;
    } catch (const std::exception& e) {
        why = e.what();
    } catch (...) {
    }
    if (self->cb_.failed) {
        // Another namespace's watcher: its owner lets that namespace go.
        if (self->source_)
            sd_event_source_set_enabled(self->source_.get(), SD_EVENT_OFF);
        if (self->defer_)
            sd_event_source_set_enabled(self->defer_.get(), SD_EVENT_OFF);
        try {
            self->cb_.failed(why);
        } catch (...) {
        }
        return 0;
    }
    std::fprintf(stderr, SD_ERR "link watcher failed: %s\n", why.c_str());
    sd_event_exit(sd_event_source_get_event(s), -EIO);
    return 0;
}

} // namespace promiscd::net
