// libpromisc's C API on its C++ API: a context is a Client with the leases
// it holds by link name (so that a second promisc_mode_on() is -EALREADY,
// as Zephyr's net_promisc_mode_on() says for an interface already in
// promiscuous mode) and the captures promisc_wait_data() opened on them.
#include <promisc/promisc.h>
#include <promisc/promisc.hpp>

#include <cerrno>
#include <cstring>
#include <map>
#include <new>
#include <optional>
#include <poll.h>
#include <set>
#include <string>
#include <vector>

struct promisc_ctx {
    std::optional<promisc::Client> client;
    std::map<std::string, promisc::Lease> leases;
    std::map<std::string, promisc::Capture> captures;
    // Links whose capture ended: not opened again until mode_off/mode_on.
    std::set<std::string> captures_done;
    std::string ended; // why the last capture ended, for -EPIPE
    std::string filter;
    std::string last_error;
    std::string last_error_name;
    // The frame promisc_wait_data() returned last.
    std::string frame_ifname;
    std::vector<std::uint8_t> frame_data;
    std::string next_link; // round robin among the captures
};

namespace {

using std::chrono::milliseconds;

int fail(promisc_ctx* ctx, int err, std::string message, std::string name = {}) {
    ctx->last_error = std::move(message);
    ctx->last_error_name = std::move(name);
    return -err;
}

// Runs f, turning what it throws into a negative errno and the context's
// last error.
template <typename F>
int guarded(promisc_ctx* ctx, F&& f) noexcept {
    try {
        return f();
    } catch (const promisc::Error& e) {
        return fail(ctx, promisc::errno_of(e.code()), e.what(), e.name());
    } catch (const std::bad_alloc&) {
        return fail(ctx, ENOMEM, "out of memory");
    } catch (const std::exception& e) {
        return fail(ctx, EIO, e.what());
    } catch (...) {
        return fail(ctx, EIO, "unknown error");
    }
}

// Takes in what promiscd announced; forgets leases (and their captures)
// that it ended.
void refresh(promisc_ctx* ctx) {
    ctx->client->process(milliseconds(0));
    for (auto it = ctx->leases.begin(); it != ctx->leases.end();) {
        if (it->second.held()) {
            ++it;
            continue;
        }
        ctx->ended = "promiscuous mode on " + it->first + " ended: " + it->second.end_reason();
        ctx->captures.erase(it->first);
        it = ctx->leases.erase(it);
    }
}

int fill(promisc_ctx* ctx, const std::string& link, promisc::Frame&& f,
         struct promisc_frame* frame) {
    ctx->frame_ifname = link;
    ctx->frame_data = std::move(f.data);
    frame->ifname = ctx->frame_ifname.c_str();
    frame->timestamp_ns = static_cast<std::uint64_t>(f.timestamp.time_since_epoch().count());
    frame->original_length = f.original_length;
    frame->caplen = static_cast<std::uint32_t>(ctx->frame_data.size());
    frame->data = ctx->frame_data.data();
    frame->link_type = f.link_type;
    return 0;
}

} // namespace

extern "C" {

int promisc_ctx_new(promisc_ctx** ctx, const struct promisc_options* options) {
    if (!ctx)
        return -EINVAL;
    *ctx = nullptr;
    // Fields a caller built with older headers does not have keep their defaults.
    struct promisc_options o = PROMISC_OPTIONS_INIT;
    if (options) {
        if (options->size < sizeof(size_t) || options->size > sizeof o)
            return -EINVAL;
        std::memcpy(&o, options, options->size);
    }
    promisc_ctx* c = new (std::nothrow) promisc_ctx;
    if (!c)
        return -ENOMEM;
    promisc::ClientOptions co;
    co.transport = o.transport == PROMISC_TRANSPORT_VARLINK ? promisc::Transport::Varlink
                                                            : promisc::Transport::DBus;
    if (o.varlink_socket)
        co.varlink_socket = o.varlink_socket;
    co.interactive = o.interactive != 0;
    int r = guarded(c, [&] {
        c->client.emplace(co);
        return 0;
    });
    if (r < 0) {
        delete c;
        return r;
    }
    *ctx = c;
    return 0;
}

void promisc_ctx_free(promisc_ctx* ctx) {
    if (!ctx)
        return;
    try {
        // Captures first (each holds no lease of its own), then leases.
        ctx->captures.clear();
        ctx->leases.clear();
    } catch (...) {
        // Destructors do not throw; closing the connection ends what is left.
    }
    delete ctx;
}

int promisc_mode_on(promisc_ctx* ctx, const char* ifname) {
    if (!ctx || !ifname)
        return -EINVAL;
    return guarded(ctx, [&] {
        refresh(ctx);
        if (ctx->leases.count(ifname))
            return fail(ctx, EALREADY,
                        std::string("this context already holds promiscuous mode on ") + ifname);
        promisc::LeaseOptions o;
        o.reason = "libpromisc";
        ctx->leases.emplace(ifname, ctx->client->acquire(ifname, o));
        ctx->captures_done.erase(ifname);
        ctx->ended.clear();
        return 0;
    });
}

int promisc_mode_off(promisc_ctx* ctx, const char* ifname) {
    if (!ctx || !ifname)
        return -EINVAL;
    return guarded(ctx, [&] {
        refresh(ctx);
        ctx->captures.erase(ifname);
        ctx->captures_done.erase(ifname);
        ctx->ended.clear();
        auto it = ctx->leases.find(ifname);
        if (it == ctx->leases.end())
            return fail(ctx, EALREADY,
                        std::string("this context does not hold promiscuous mode on ") + ifname);
        promisc::Lease lease = std::move(it->second);
        ctx->leases.erase(it);
        try {
            lease.release();
        } catch (const promisc::NoSuchLeaseError&) {
            // The daemon ended it just now: off already.
            return fail(ctx, EALREADY,
                        std::string("promiscuous mode on ") + ifname + " had already ended");
        }
        return 0;
    });
}

int promisc_mode_is_on(promisc_ctx* ctx, const char* ifname) {
    if (!ctx || !ifname)
        return -EINVAL;
    return guarded(ctx, [&] {
        refresh(ctx);
        return ctx->leases.count(ifname) ? 1 : 0;
    });
}

int promisc_set_capture_filter(promisc_ctx* ctx, const char* filter) {
    if (!ctx)
        return -EINVAL;
    return guarded(ctx, [&] {
        ctx->filter = filter ? filter : "";
        return 0;
    });
}

int promisc_wait_data(promisc_ctx* ctx, int timeout_ms, struct promisc_frame* frame) {
    if (!ctx || !frame)
        return -EINVAL;
    return guarded(ctx, [&]() -> int {
        refresh(ctx);
        // A capture for every link this context holds that has none yet;
        // its lease is the context's, so the capture holds none itself.
        for (const auto& [link, lease] : ctx->leases) {
            if (ctx->captures.count(link) || ctx->captures_done.count(link))
                continue;
            promisc::CaptureOptions o;
            o.filter = ctx->filter;
            o.promisc = false;
            ctx->captures.emplace(link, ctx->client->capture(link, o));
        }
        if (ctx->captures.empty()) {
            if (ctx->leases.empty() && ctx->ended.empty())
                return fail(ctx, ENOTCONN,
                            "this context holds promiscuous mode on no link "
                            "(promisc_mode_on() first)");
            return fail(ctx, EPIPE, ctx->ended.empty() ? "the capture ended" : ctx->ended);
        }
        const int forever = timeout_ms < 0;
        const auto end = std::chrono::steady_clock::now() + milliseconds(forever ? 0 : timeout_ms);
        for (;;) {
            // Round robin: start after the link of the last frame.
            auto start = ctx->captures.upper_bound(ctx->next_link);
            for (size_t i = 0; i < ctx->captures.size(); ++i, ++start) {
                if (start == ctx->captures.end())
                    start = ctx->captures.begin();
                auto f = start->second.next(milliseconds(0));
                if (f) {
                    ctx->next_link = start->first;
                    return fill(ctx, start->first, std::move(*f), frame);
                }
            }
            for (auto it = ctx->captures.begin(); it != ctx->captures.end();) {
                if (!it->second.ended()) {
                    ++it;
                    continue;
                }
                ctx->ended = "the capture of " + it->first + " ended: " +
                             (it->second.end_reason().empty() ? std::string("reason unknown")
                                                              : it->second.end_reason());
                ctx->captures_done.insert(it->first);
                it = ctx->captures.erase(it);
            }
            if (ctx->captures.empty())
                return fail(ctx, EPIPE, ctx->ended);
            int left = -1;
            if (!forever) {
                const auto ms =
                    std::chrono::ceil<milliseconds>(end - std::chrono::steady_clock::now());
                if (ms.count() <= 0)
                    return fail(ctx, EAGAIN, "no frame within the timeout");
                left = static_cast<int>(ms.count());
            }
            std::vector<pollfd> fds;
            for (const auto& [link, capture] : ctx->captures)
                fds.push_back({capture.fd(), POLLIN, 0});
            const promisc::PollInfo p = ctx->client->poll_info();
            if (p.fd >= 0) {
                fds.push_back({p.fd, p.events, 0});
                if (p.timeout_ms >= 0 && (left < 0 || p.timeout_ms < left))
                    left = p.timeout_ms;
            }
            if (::poll(fds.data(), fds.size(), left) < 0 && errno != EINTR)
                return fail(ctx, errno, std::string("poll: ") + std::strerror(errno));
            refresh(ctx);
            if (ctx->captures.empty())
                return fail(ctx, EPIPE, ctx->ended);
        }
    });
}

const char* promisc_last_error(const promisc_ctx* ctx) {
    return ctx ? ctx->last_error.c_str() : "";
}

const char* promisc_last_error_name(const promisc_ctx* ctx) {
    return ctx ? ctx->last_error_name.c_str() : "";
}

const char* promisc_version(void) {
    return promisc::version();
}

} // extern "C"
