// Follows the kernel's view of every link in one network namespace: an initial
// RTM_GETLINK dump, then RTNLGRP_LINK notifications, and a fresh dump whenever
// notifications were lost.
#pragma once

#include "core/link_info.hpp"
#include "net/netlink_error.hpp"
#include "net/netlink_socket.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <systemd/sd-event.h>
#include <vector>

namespace promiscd::net {

class LinkWatcher {
public:
    struct Callbacks {
        // RTM_NEWLINK: a link appeared, changed (flags, promiscuity...) or was
        // renamed. superseded: the notification was queued before a flag change
        // of ours that settled() recorded (or is its echo), so its admin bit
        // is history; the rest of it is the link as it was then.
        std::function<void(const core::LinkInfo&, bool superseded)> changed;
        // RTM_DELLINK: the link is gone.
        std::function<void(int ifindex, const std::string& name)> removed;
        // Notifications were lost (ENOBUFS): the complete, current list of links.
        std::function<void(const std::vector<core::LinkInfo>&)> resynced;
        // The watcher could not go on (e.g. a resync that never completed).
        // Unset: the loop ends (the host's watcher: stale state is worse
        // than a restart). Set: this runs, and the watcher stops reading;
        // the owner must not destroy it from inside the call.
        std::function<void(const std::string& why)> failed{};
    };

    // Opens the notification socket and the dump socket in the calling thread's
    // network namespace. rcvbuf_bytes sizes the notification socket's receive
    // buffer; 0 picks a generous default (1 MiB). Throws NetlinkError.
    explicit LinkWatcher(Callbacks cb, int rcvbuf_bytes = 0);
    ~LinkWatcher();
    LinkWatcher(const LinkWatcher&) = delete;
    LinkWatcher& operator=(const LinkWatcher&) = delete;

    // Subscribes to RTNLGRP_LINK, then dumps: no change can fall between the two.
    // Returns the dump. Throws NetlinkError.
    std::vector<core::LinkInfo> start();
    // A fresh RTM_GETLINK dump from the kernel (on its own socket, so pending
    // notifications are left alone). Throws NetlinkError.
    std::vector<core::LinkInfo> dump();
    // The non-blocking notification socket, for a poll loop.
    int fd() const;
    // Reads pending notifications (at most kReadsPerDispatch of them; the
    // rest stays queued for the next call) and calls the callbacks. After an
    // overrun it drops what is queued, dumps and calls resynced. Throws
    // NetlinkError, and passes on what a callback throws.
    static constexpr unsigned kReadsPerDispatch = 64;
    void process();
    // The kernel acknowledged our RTM_SETLINK of the admin bit on ifindex to
    // `on`. By then its echo is queued on the notification socket, behind
    // whatever was waiting: reads them all ahead (the socket's receive buffer
    // bounds how many) and marks this link's notifications up to the echo as
    // superseded. Without it, a burst of our own changes read late looks like
    // another agent flipping the bit. The callbacks run later, from process();
    // a read that fails here schedules a resync instead of throwing.
    void settled(int ifindex, bool on);
    // Notifications read ahead by settled() and not yet dispatched.
    bool busy() const { return !pending_.empty() || resync_pending_; }
    // Calls process() from an sd-event io source whenever fd() is readable. The
    // source lives as long as this object (or until the next attach()).
    void attach(sd_event* event);
    // How many times notifications were lost and a full dump replaced them.
    uint64_t resync_count() const { return resyncs_; }

private:
    struct SourceDeleter {
        void operator()(sd_event_source* s) const noexcept;
    };
    struct Event {
        bool removed = false;
        bool superseded = false;
        core::LinkInfo link;
    };
    static int on_readable(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    static int on_deferred(sd_event_source* s, void* userdata);
    static int run(sd_event_source* s, LinkWatcher* self);
    // Reads one datagram into pending_; false when nothing was waiting.
    bool read_one();
    void queue(void* data, size_t len);
    void deliver(const Event& e);
    void wake();
    void resync();

    Callbacks cb_;
    NlSocket notify_sock_;
    NlSocket dump_sock_;
    std::vector<unsigned char> buf_;
    // Read, not yet dispatched: in the kernel's order.
    std::deque<Event> pending_;
    uint64_t resyncs_ = 0;
    bool resync_pending_ = false; // an overrun was seen; survives a failed dump
    // Declared last so it is destroyed first: the io source must leave the epoll
    // set before its fd is closed.
    std::unique_ptr<sd_event_source, SourceDeleter> source_;
    // Dispatches what settled() read ahead, which no readable fd announces.
    std::unique_ptr<sd_event_source, SourceDeleter> defer_;
};

} // namespace promiscd::net
