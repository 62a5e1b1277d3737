/* libpromisc, C API: promiscuous mode and packet capture through promiscd,
 * in the shape of Zephyr's promiscuous-mode API (net_promisc_mode_on(),
 * net_promisc_mode_off(), net_promisc_mode_wait_data()).
 *
 *     promisc_ctx *ctx;
 *     struct promisc_frame frame;
 *     if (promisc_ctx_new(&ctx, NULL) < 0) ...
 *     if (promisc_mode_on(ctx, "eth0") < 0) ...          // 0, or -EALREADY
 *     while (promisc_wait_data(ctx, 1000, &frame) == 0)
 *         use(frame.data, frame.caplen);
 *     promisc_mode_off(ctx, "eth0");
 *     promisc_ctx_free(ctx);
 *
 * A context is one connection to promiscd. The promiscuous mode it turns on
 * is a lease that belongs to the context: it ends with promisc_mode_off(),
 * promisc_ctx_free(), or when the program exits or crashes.
 *
 * Return values: 0 (or a documented positive value) on success, a negative
 * errno value on failure. promisc_last_error() then says what happened, as
 * a person should read it. The values, for every function:
 *
 *   -ENODEV        the link does not exist (NoSuchInterface)
 *   -EACCES        polkit refused (AccessDenied), or would allow it only
 *                  after authentication that could not be asked for
 *                  (InteractiveAuthorizationRequired; see
 *                  promisc_options.interactive)
 *   -EINVAL        a bad argument: NULL, an option or name the daemon
 *                  refuses (InvalidArgument), or a capture filter that does
 *                  not compile or is too costly (InvalidFilter)
 *   -EDQUOT        too many leases or captures for this user, or in all
 *                  (QuotaExceeded)
 *   -EBUSY         too many requests in flight: retry later (LimitsExceeded)
 *   -ENOENT        the lease or capture has ended (NoSuchLease, NoSuchCapture)
 *   -EPERM         it belongs to someone else (NotOwner)
 *   -ENOTSUP       not offered by this daemon or transport (NotSupported)
 *   -ECONNREFUSED  no system bus or varlink socket, promiscd not running,
 *                  or the connection to it lost (DaemonUnreachable)
 *   -EIO           anything else the daemon or the bus reported (Failed)
 *   -ENOMEM        out of memory
 *
 * and, where a function says so, -EALREADY, -EAGAIN, -ENOTCONN, -EPIPE.
 *
 * Threads: a context is used by one thread at a time. */
#ifndef PROMISC_H
#define PROMISC_H

#include <promisc/version.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct promisc_ctx promisc_ctx;

enum promisc_transport {
    /* The D-Bus system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured). */
    PROMISC_TRANSPORT_DBUS = 0,
    /* promiscd's varlink socket (promisc_options.varlink_socket). */
    PROMISC_TRANSPORT_VARLINK = 1,
};

struct promisc_options {
    /* sizeof(struct promisc_options), so that later versions can add
     * fields; PROMISC_OPTIONS_INIT sets it. */
    size_t size;
    enum promisc_transport transport;
    /* NULL: /run/promiscd/io.promiscd. */
    const char* varlink_socket;
    /* Non-zero: polkit may ask the person for a password through their
     * authentication agent; calls then wait for the answer. */
    int interactive;
};
#define PROMISC_OPTIONS_INIT                                                                       \
    { sizeof(struct promisc_options), PROMISC_TRANSPORT_DBUS, NULL, 0 }

/* A frame from promisc_wait_data(). Its pointers stay valid until the next
 * call on the same context. */
struct promisc_frame {
    const char* ifname;       /* the link it was captured on (escaped) */
    uint64_t timestamp_ns;    /* CLOCK_REALTIME, nanoseconds since the epoch */
    uint32_t original_length; /* length on the wire */
    uint32_t caplen;          /* bytes in data (fewer when cut at the snaplen) */
    const uint8_t* data;
    uint16_t link_type; /* LINKTYPE_*: 1 Ethernet, 276 LINUX_SLL2 */
};

/* Connects to promiscd; options NULL: D-Bus, not interactive. On success
 * *ctx is set and 0 returned; on failure *ctx is NULL (-ECONNREFUSED when
 * there is no bus or socket, -ENOMEM, -EINVAL). */
PROMISC_API int promisc_ctx_new(promisc_ctx** ctx, const struct promisc_options* options);

/* Ends every lease and capture of the context and closes it. NULL is
 * allowed. */
PROMISC_API void promisc_ctx_free(promisc_ctx* ctx);

/* Puts ifname in promiscuous mode for this context (a lease; polkit action
 * org.promiscd.promisc.acquire). 0, or -EALREADY when this context already
 * holds it; -ENODEV, -EACCES, -EDQUOT, ... as above. */
PROMISC_API int promisc_mode_on(promisc_ctx* ctx, const char* ifname);

/* Ends this context's promiscuous mode on ifname (the link stays
 * promiscuous while others hold it). 0, or -EALREADY when this context
 * does not hold it (never did, released it, or the daemon ended it). */
PROMISC_API int promisc_mode_off(promisc_ctx* ctx, const char* ifname);

/* 1 when this context holds promiscuous mode on ifname, 0 when not. */
PROMISC_API int promisc_mode_is_on(promisc_ctx* ctx, const char* ifname);

/* The capture filter (pcap-filter(7)) for the captures promisc_wait_data()
 * opens from now on; NULL or "": every frame. 0, or -EINVAL, -ENOMEM. The
 * daemon compiles it when a capture opens: a filter it refuses makes that
 * promisc_wait_data() return -EINVAL. */
PROMISC_API int promisc_set_capture_filter(promisc_ctx* ctx, const char* filter);

/* Waits up to timeout_ms (negative: for ever) for a frame received on a
 * link this context holds promiscuous mode on. The first call after a
 * promisc_mode_on() opens a capture of that link (polkit action
 * org.promiscd.capture), which ends with promisc_mode_off().
 *   0          *frame is filled
 *   -EAGAIN    no frame came within timeout_ms
 *   -ENOTCONN  this context holds promiscuous mode on no link
 *   -EPIPE     every capture of this context has ended (link removed,
 *              lease revoked, daemon stopped); promisc_last_error() says why
 * or the errors of opening a capture (-EACCES, -EINVAL, -EDQUOT, ...). */
PROMISC_API int promisc_wait_data(promisc_ctx* ctx, int timeout_ms, struct promisc_frame* frame);

/* What the last failing call on ctx said, for a person ("" when none). The
 * pointer stays valid until the next call on ctx. */
PROMISC_API const char* promisc_last_error(const promisc_ctx* ctx);

/* The daemon's error name of the last failing call
 * ("org.promiscd.Promisc1.Error.InvalidFilter", ...), "" when the library
 * found the error itself or none occurred. */
PROMISC_API const char* promisc_last_error_name(const promisc_ctx* ctx);

/* The library's version, "MAJOR.MINOR.PATCH". */
PROMISC_API const char* promisc_version(void);

#ifdef __cplusplus
}
#endif

#endif
