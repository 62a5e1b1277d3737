// Follows the kernel's view of every link in one network namespace: an initial
// RTM_GETLINK dump, then RTNLGRP_LINK notifications, and a fresh dump whenever
// notifications were lost.
#pragma once

#include "core/link_info.hpp"
#include "net/netlink_error.hpp"
#include "net/netlink_socket.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <systemd/sd-event.h>
#include <vector>

namespace promiscd::net {

class LinkWatcher {
public:
    struct Callbacks {
        // RTM_NEWLINK: a link appeared, changed (flags, promiscuity...) or was renamed.
        std::function<void(const core::LinkInfo&)> changed;
        // RTM_DELLINK: the link is gone.
        std::function<void(int ifindex, const std::string& name)> removed;
        // Notifications were lost (ENOBUFS): the complete, current list of links.
        std::function<void(const std::vector<core::LinkInfo>&)> resynced;
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
    // Reads pending notifications (at most kReadsPerDispatch datagrams; the
    // rest stays queued for the next call) and calls the callbacks. After an
    // overrun it drops what is queued, dumps and calls resynced. Throws
    // NetlinkError, and passes on what a callback throws.
    static constexpr unsigned kReadsPerDispatch = 64;
    void process();
    // Calls process() from an sd-event io source whenever fd() is readable. The
    // source lives as long as this object (or until the next attach()).
    void attach(sd_event* event);
    // How many times notifications were lost and a full dump replaced them.
    uint64_t resync_count() const { return resyncs_; }

private:
    struct SourceDeleter {
        void operator()(sd_event_source* s) const noexcept;
    };
    static int on_readable(sd_event_source* s, int fd, uint32_t revents, void* userdata);
    void dispatch(void* data, size_t len);
    void resync();

    Callbacks cb_;
    NlSocket notify_sock_;
    NlSocket dump_sock_;
    std::vector<unsigned char> buf_;
    uint64_t resyncs_ = 0;
    bool resync_pending_ = false; // an overrun was seen; survives a failed dump
    // Declared last so it is destroyed first: the io source must leave the epoll
    // set before its fd is closed.
    std::unique_ptr<sd_event_source, SourceDeleter> source_;
};

} // namespace promiscd::net
