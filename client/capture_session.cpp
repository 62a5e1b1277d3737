#include "client/capture_session.hpp"

#include "client/promisc_client.hpp"
#include "config.h"
#include "promisc1_proxy.h"

#include <fcntl.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <map>
#include <sdbus-c++/sdbus-c++.h>
#include <utility>

namespace promiscd::client {

namespace gen = ::org::promiscd::Promisc1;

namespace {

const std::string kBusName = PROMISCD_BUS_NAME;
const std::string kRootPath = PROMISCD_OBJECT_PATH;
const std::string kCaptureInterface = kBusName + ".Capture";

Error to_error(const sdbus::Error& e) {
    return Error(error_kind(e.getName()), e.getName(), e.getMessage());
}

class ManagerProxy final : public sdbus::ProxyInterfaces<gen::Manager_proxy> {
public:
    explicit ManagerProxy(sdbus::IConnection& c) : ProxyInterfaces(c, kBusName, kRootPath) {
        registerProxy();
    }
    ~ManagerProxy() { unregisterProxy(); }
    ManagerProxy(const ManagerProxy&) = delete;
    ManagerProxy& operator=(const ManagerProxy&) = delete;

private:
    void onConflict(const std::string&, const uint32_t&) override {}
    void onFlagChanged(const std::string&, const bool&, const std::string&) override {}
};

class CaptureProxy final : public sdbus::ProxyInterfaces<gen::Capture_proxy> {
public:
    CaptureProxy(sdbus::IConnection& c, std::string path, std::optional<std::string>& reason)
        : ProxyInterfaces(c, kBusName, std::move(path)), reason_(reason) {
        registerProxy();
    }
    ~CaptureProxy() { unregisterProxy(); }
    CaptureProxy(const CaptureProxy&) = delete;
    CaptureProxy& operator=(const CaptureProxy&) = delete;

private:
    void onFinished(const std::string& reason) override { reason_ = reason; }
    std::optional<std::string>& reason_;
};

std::chrono::milliseconds until(std::uint64_t deadline_usec) {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const std::uint64_t now = static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
                              static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
    return std::chrono::milliseconds(deadline_usec > now ? (deadline_usec - now + 999) / 1000 : 0);
}

std::uint64_t deadline(std::chrono::milliseconds timeout) {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000 +
           static_cast<std::uint64_t>(timeout.count()) * 1000;
}

} // namespace

struct CaptureSession::Impl {
    // Declared first, destroyed last: proxies and the match use it.
    std::unique_ptr<sdbus::IConnection> connection;
    std::optional<std::string> finished;
    std::string path;
    sdbus::Slot finished_match;
    std::unique_ptr<CaptureProxy> capture;
    std::optional<CaptureReader> reader;

    void process_bus() {
        if (!connection) {
            return;
        }
        try {
            while (connection->processPendingRequest()) {
            }
        } catch (const sdbus::Error&) {
            // A lost bus ends nothing here: the stream's end of file says it.
        }
    }
};

CaptureSession::CaptureSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CaptureSession::CaptureSession(const std::string& interface, const CaptureSessionOptions& options)
    : impl_(std::make_unique<Impl>()) {
    Impl& d = *impl_;
    try {
        d.connection = sdbus::createSystemBusConnection();
    } catch (const sdbus::Error& e) {
        throw Error(ErrorKind::DaemonUnreachable, e.getName(),
                    "cannot connect to the system bus: " + e.getMessage());
    }
    std::map<std::string, sdbus::Variant> opts;
    if (!options.filter.empty()) {
        opts["filter"] = sdbus::Variant(options.filter);
    }
    if (options.snaplen != 0) {
        opts["snaplen"] = sdbus::Variant(options.snaplen);
    }
    opts["promisc"] = sdbus::Variant(options.promisc);
    opts["format"] = sdbus::Variant(std::string("pcapng"));
    if (options.buffer_size != 0) {
        opts["buffer_size"] = sdbus::Variant(options.buffer_size);
    }
    if (options.count != 0) {
        opts["count"] = sdbus::Variant(options.count);
    }
    // Subscribed before asking: a short capture may finish before the
    // reply has been read.
    d.finished_match =
        d.connection->addMatch("type='signal',sender='" + kBusName + "',interface='" +
                                   kCaptureInterface + "',member='Finished'",
                               [&d](sdbus::Message& msg) {
                                   // Dispatched only by process_bus(), when the path is known.
                                   if (msg.getPath() == d.path) {
                                       std::string reason;
                                       msg >> reason;
                                       d.finished = reason;
                                   }
                               });
    sdbus::UnixFd fd;
    sdbus::ObjectPath path;
    try {
        ManagerProxy manager(*d.connection);
        std::tie(fd, path) = manager.OpenCapture(interface, opts);
    } catch (const sdbus::Error& e) {
        throw to_error(e);
    }
    d.path = path;
    d.capture = std::make_unique<CaptureProxy>(*d.connection, d.path, d.finished);
    // The reader owns the fd from here on; sdbus-c++ dups received fds
    // without FD_CLOEXEC, and programs that start others must not leak it.
    const int raw = fd.release();
    (void)::fcntl(raw, F_SETFD, FD_CLOEXEC);
    d.reader.emplace(raw);
}

CaptureSession CaptureSession::from_stream(int fd) {
    auto impl = std::make_unique<Impl>();
    impl->reader.emplace(fd);
    return CaptureSession(std::move(impl));
}

CaptureSession::CaptureSession(CaptureSession&&) noexcept = default;
CaptureSession& CaptureSession::operator=(CaptureSession&&) noexcept = default;
CaptureSession::~CaptureSession() = default;

std::optional<Frame> CaptureSession::next(std::chrono::milliseconds timeout) {
    auto frame = impl_->reader->next(timeout);
    impl_->process_bus();
    return frame;
}

bool CaptureSession::eof() const noexcept {
    return impl_->reader->eof();
}

void CaptureSession::stop() {
    if (!impl_->capture) {
        return;
    }
    try {
        impl_->capture->Stop();
    } catch (const sdbus::Error& e) {
        throw to_error(e);
    }
}

std::optional<std::string> CaptureSession::wait_finished(std::chrono::milliseconds timeout) {
    Impl& d = *impl_;
    if (!d.connection) {
        return std::nullopt;
    }
    const std::uint64_t end = deadline(timeout);
    for (;;) {
        d.process_bus();
        if (d.finished) {
            return d.finished;
        }
        const auto left = until(end);
        if (left.count() == 0) {
            return std::nullopt;
        }
        const auto poll_data = d.connection->getEventLoopPollData();
        pollfd pfd{poll_data.fd, poll_data.events, 0};
        (void)::poll(&pfd, 1, static_cast<int>(std::min<long long>(left.count(), 1000)));
    }
}

const std::string& CaptureSession::path() const noexcept {
    return impl_->path;
}

const std::vector<InterfaceInfo>& CaptureSession::interfaces() const noexcept {
    return impl_->reader->interfaces();
}

const std::optional<CaptureStatistics>& CaptureSession::statistics() const noexcept {
    return impl_->reader->statistics();
}

int CaptureSession::fd() const noexcept {
    return impl_->reader->fd();
}

} // namespace promiscd::client
