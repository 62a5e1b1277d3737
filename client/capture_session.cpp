#include "client/capture_session.hpp"

#include <poll.h>
#include <time.h>

#include <algorithm>
#include <utility>

namespace promiscd::client {

namespace {

std::uint64_t monotonic_usec() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

} // namespace

struct CaptureSession::Impl {
    // Declared first, destroyed last: the capture belongs to its connection.
    std::unique_ptr<Client> owned;
    Client* client = nullptr;
    std::unique_ptr<Capture> capture;
    std::optional<std::string> finished;
    bool bus_lost = false;
    std::optional<CaptureReader> reader;

    void open(const std::string& interface, const CaptureSessionOptions& o) {
        CaptureOptions opts;
        opts.filter = o.filter;
        opts.snaplen = o.snaplen;
        opts.promisc = o.promisc;
        opts.format = "pcapng"; // what CaptureReader reads
        opts.buffer_size = o.buffer_size;
        opts.count = o.count;
        capture = client->open_capture(interface, opts);
        capture->on_finished([this](const std::string& reason) { finished = reason; });
        reader.emplace(capture->take_fd().release());
    }

    // Runs the callbacks of what the connection has queued (Finished).
    void process_bus() {
        if (!client || bus_lost)
            return;
        try {
            client->dispatch();
        } catch (const Error&) {
            // A lost bus ends nothing here: the stream's end of file says it.
            bus_lost = true;
        }
    }
};

CaptureSession::CaptureSession(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

CaptureSession::CaptureSession(const std::string& interface, const CaptureSessionOptions& options)
    : impl_(std::make_unique<Impl>()) {
    impl_->owned = std::make_unique<Client>();
    impl_->client = impl_->owned.get();
    impl_->open(interface, options);
}

CaptureSession::CaptureSession(Client& client, const std::string& interface,
                               const CaptureSessionOptions& options)
    : impl_(std::make_unique<Impl>()) {
    impl_->client = &client;
    impl_->open(interface, options);
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
    if (impl_->capture)
        impl_->capture->stop();
}

std::optional<std::string> CaptureSession::wait_finished(std::chrono::milliseconds timeout) {
    Impl& d = *impl_;
    if (!d.capture)
        return std::nullopt;
    const std::uint64_t end = monotonic_usec() + static_cast<std::uint64_t>(timeout.count()) * 1000;
    for (;;) {
        d.process_bus();
        if (d.finished)
            return d.finished;
        const std::uint64_t now = monotonic_usec();
        if (d.bus_lost || now >= end)
            return std::nullopt;
        const auto p = d.client->poll_data();
        std::uint64_t wait_usec = end - now;
        if (p.timeout_usec != UINT64_MAX)
            wait_usec = std::min(wait_usec, p.timeout_usec > now ? p.timeout_usec - now : 0);
        pollfd pfd{p.fd, p.events, 0};
        (void)::poll(&pfd, 1,
                     static_cast<int>(std::min<std::uint64_t>(wait_usec / 1000 + 1, 1000)));
    }
}

const std::string& CaptureSession::path() const noexcept {
    static const std::string none;
    return impl_->capture ? impl_->capture->path() : none;
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
