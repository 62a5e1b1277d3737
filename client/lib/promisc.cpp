// libpromisc's C++ API on the internal client library: promiscd::client's
// D-Bus Client (with its Lease and Capture) and VarlinkClient, the pcapng
// CaptureReader, and the one error table (client/errors.*). Nothing of those
// appears in the installed headers; this file translates.
#include "client/lib/backend.hpp"

#include "client/varlink_client.hpp"
#include "config.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <map>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <system_error>
#include <time.h>
#include <unistd.h>

namespace promisc {

namespace ic = promiscd::client;
using nlohmann::json;
using std::chrono::milliseconds;

// ---------------------------------------------------------------- errors

Error::Error(ErrorCode code, std::string name, const std::string& message)
    : std::runtime_error(message), code_(code), name_(std::move(name)) {}
Error::~Error() = default;

#define PROMISC_ERROR_DTOR(Code) Code##Error::~Code##Error() = default;
PROMISC_ERROR_DTOR(NoSuchInterface)
PROMISC_ERROR_DTOR(InvalidArgument)
PROMISC_ERROR_DTOR(InvalidFilter)
PROMISC_ERROR_DTOR(QuotaExceeded)
PROMISC_ERROR_DTOR(NoSuchLease)
PROMISC_ERROR_DTOR(NoSuchCapture)
PROMISC_ERROR_DTOR(NotOwner)
PROMISC_ERROR_DTOR(AccessDenied)
PROMISC_ERROR_DTOR(InteractiveAuthorizationRequired)
PROMISC_ERROR_DTOR(LimitsExceeded)
PROMISC_ERROR_DTOR(NotSupported)
PROMISC_ERROR_DTOR(DaemonUnreachable)
#undef PROMISC_ERROR_DTOR

const char* to_string(ErrorCode code) noexcept {
    switch (code) {
    case ErrorCode::Failed:
        return "Failed";
    case ErrorCode::NoSuchInterface:
        return "NoSuchInterface";
    case ErrorCode::InvalidArgument:
        return "InvalidArgument";
    case ErrorCode::InvalidFilter:
        return "InvalidFilter";
    case ErrorCode::QuotaExceeded:
        return "QuotaExceeded";
    case ErrorCode::NoSuchLease:
        return "NoSuchLease";
    case ErrorCode::NoSuchCapture:
        return "NoSuchCapture";
    case ErrorCode::NotOwner:
        return "NotOwner";
    case ErrorCode::AccessDenied:
        return "AccessDenied";
    case ErrorCode::InteractiveAuthorizationRequired:
        return "InteractiveAuthorizationRequired";
    case ErrorCode::LimitsExceeded:
        return "LimitsExceeded";
    case ErrorCode::NotSupported:
        return "NotSupported";
    case ErrorCode::DaemonUnreachable:
        return "DaemonUnreachable";
    }
    return "Failed";
}

int errno_of(ErrorCode code) noexcept {
    switch (code) {
    case ErrorCode::Failed:
        return EIO;
    case ErrorCode::NoSuchInterface:
        return ENODEV;
    case ErrorCode::InvalidArgument:
    case ErrorCode::InvalidFilter:
        return EINVAL;
    case ErrorCode::QuotaExceeded:
        return EDQUOT;
    case ErrorCode::NoSuchLease:
    case ErrorCode::NoSuchCapture:
        return ENOENT;
    case ErrorCode::NotOwner:
        return EPERM;
    case ErrorCode::AccessDenied:
    case ErrorCode::InteractiveAuthorizationRequired:
        return EACCES;
    case ErrorCode::LimitsExceeded:
        return EBUSY;
    case ErrorCode::NotSupported:
        return ENOTSUP;
    case ErrorCode::DaemonUnreachable:
        return ECONNREFUSED;
    }
    return EIO;
}

namespace detail {

[[noreturn]] void raise(ErrorCode code, std::string name, const std::string& message) {
    switch (code) {
    case ErrorCode::NoSuchInterface:
        throw NoSuchInterfaceError(std::move(name), message);
    case ErrorCode::InvalidArgument:
        throw InvalidArgumentError(std::move(name), message);
    case ErrorCode::InvalidFilter:
        throw InvalidFilterError(std::move(name), message);
    case ErrorCode::QuotaExceeded:
        throw QuotaExceededError(std::move(name), message);
    case ErrorCode::NoSuchLease:
        throw NoSuchLeaseError(std::move(name), message);
    case ErrorCode::NoSuchCapture:
        throw NoSuchCaptureError(std::move(name), message);
    case ErrorCode::NotOwner:
        throw NotOwnerError(std::move(name), message);
    case ErrorCode::AccessDenied:
        throw AccessDeniedError(std::move(name), message);
    case ErrorCode::InteractiveAuthorizationRequired:
        throw InteractiveAuthorizationRequiredError(std::move(name), message);
    case ErrorCode::LimitsExceeded:
        throw LimitsExceededError(std::move(name), message);
    case ErrorCode::NotSupported:
        throw NotSupportedError(std::move(name), message);
    case ErrorCode::DaemonUnreachable:
        throw DaemonUnreachableError(std::move(name), message);
    case ErrorCode::Failed:
        break;
    }
    throw Error(ErrorCode::Failed, std::move(name), message);
}

ErrorCode code_of(ic::ErrorKind kind) noexcept {
    switch (kind) {
    case ic::ErrorKind::Failed:
        return ErrorCode::Failed;
    case ic::ErrorKind::NoSuchInterface:
        return ErrorCode::NoSuchInterface;
    case ic::ErrorKind::InvalidArgument:
        return ErrorCode::InvalidArgument;
    case ic::ErrorKind::InvalidFilter:
        return ErrorCode::InvalidFilter;
    case ic::ErrorKind::QuotaExceeded:
        return ErrorCode::QuotaExceeded;
    case ic::ErrorKind::NoSuchLease:
        return ErrorCode::NoSuchLease;
    case ic::ErrorKind::NoSuchCapture:
        return ErrorCode::NoSuchCapture;
    case ic::ErrorKind::NotOwner:
        return ErrorCode::NotOwner;
    case ic::ErrorKind::AccessDenied:
        return ErrorCode::AccessDenied;
    case ic::ErrorKind::InteractiveAuthorizationRequired:
        return ErrorCode::InteractiveAuthorizationRequired;
    case ic::ErrorKind::LimitsExceeded:
        return ErrorCode::LimitsExceeded;
    case ic::ErrorKind::NotSupported:
        return ErrorCode::NotSupported;
    case ic::ErrorKind::DaemonUnreachable:
        return ErrorCode::DaemonUnreachable;
    }
    return ErrorCode::Failed;
}

[[noreturn]] void rethrow_current() {
    try {
        throw;
    } catch (const Error&) {
        throw;
    } catch (const ic::Error& e) {
        raise(code_of(e.kind()), e.name(), e.what());
    } catch (const ic::CaptureStreamError& e) {
        raise(ErrorCode::Failed, {}, std::string("malformed capture stream: ") + e.what());
    } catch (const json::exception& e) {
        raise(ErrorCode::Failed, {}, std::string("unexpected answer from promiscd: ") + e.what());
    } catch (const std::system_error& e) {
        raise(ErrorCode::Failed, {}, e.what());
    }
}

Link public_link(const promiscd::client::LinkInfo& l) {
    Link link;
    link.name = l.name;
    link.index = l.index;
    link.admin_flag = l.admin_flag;
    link.promiscuity = l.promiscuity;
    link.promiscuous = l.promiscuous;
    link.origin = l.origin;
    link.leases = l.leases;
    link.policy = l.policy;
    link.external_changes = l.external_changes;
    link.netns = l.netns;
    link.netns_inode = l.netns_inode;
    return link;
}

LeaseInfo public_lease(const promiscd::client::LeaseInfo& l) {
    LeaseInfo info;
    info.id = l.id;
    info.interface = l.interface;
    info.state = parse_state(l.state);
    info.owner = l.owner;
    info.uid = l.uid;
    info.pid = l.pid;
    info.command = l.command;
    info.reason = l.reason;
    info.acquired = from_usec(l.acquired_usec);
    if (l.expires_usec)
        info.expires = from_usec(l.expires_usec);
    info.netns = l.netns;
    info.netns_inode = l.netns_inode;
    return info;
}

Event public_event(const promiscd::client::Event& e) {
    using In = promiscd::client::Event::Type;
    using Out = Event::Type;
    Event out;
    out.time = from_usec(e.timestamp_usec);
    switch (e.type) {
    case In::LinkAdded:
        out.type = Out::LinkAdded;
        break;
    case In::LinkChanged:
        out.type = Out::LinkChanged;
        break;
    case In::LinkRemoved:
        out.type = Out::LinkRemoved;
        break;
    case In::LeaseGranted:
        out.type = Out::LeaseGranted;
        break;
    case In::LeaseChanged:
        out.type = Out::LeaseChanged;
        break;
    case In::LeaseEnded:
        out.type = Out::LeaseEnded;
        break;
    case In::CaptureStarted:
        out.type = Out::CaptureStarted;
        break;
    case In::CaptureChanged:
        out.type = Out::Unknown; // counters: Capture::stats() has them
        break;
    case In::CaptureFinished:
        out.type = Out::CaptureFinished;
        break;
    case In::Conflict:
        out.type = Out::Conflict;
        break;
    case In::FlagChanged:
        out.type = Out::FlagChanged;
        break;
    case In::DaemonStarted:
        out.type = Out::DaemonStarted;
        break;
    case In::DaemonStopped:
        out.type = Out::DaemonStopped;
        break;
    }
    auto capture = [](const promiscd::client::CaptureInfo& c) {
        return CaptureInfo{c.id, c.interface, c.filter, c.format, c.packets, c.bytes, c.drops};
    };
    switch (out.type) {
    case Out::LinkAdded:
    case Out::LinkChanged:
    case Out::LinkRemoved:
        out.link = public_link(e.link);
        if (out.type == Out::LinkChanged)
            out.previous_link = public_link(e.previous_link);
        out.changed = e.changed;
        out.interface = e.link.name;
        break;
    case Out::LeaseGranted:
    case Out::LeaseChanged:
        out.lease = public_lease(e.lease);
        if (out.type == Out::LeaseChanged)
            out.previous_lease = public_lease(e.previous_lease);
        out.changed = e.changed;
        out.interface = e.lease.interface;
        break;
    case Out::LeaseEnded:
        // (As it was: its state is the last it had.)
        out.lease = public_lease(e.lease);
        out.interface = e.lease.interface;
        out.reason = e.reason;
        out.detail = detail_of(e.end);
        out.revoked_by = e.end.revoked_by;
        out.revoked_by_uid = e.end.revoked_by_uid;
        out.message = e.end.message;
        break;
    case Out::CaptureStarted:
    case Out::CaptureFinished:
        out.capture = capture(e.capture);
        out.interface = e.capture.interface;
        out.reason = e.reason;
        break;
    case Out::FlagChanged:
        out.interface = e.interface;
        out.flag = e.flag_on;
        out.by = e.by;
        break;
    case Out::Conflict:
        out.interface = e.interface;
        out.clears = e.clears;
        break;
    case Out::DaemonStopped:
    case Out::DaemonStarted:
    case Out::Unknown:
        break;
    }
    return out;
}

std::string detail_of(const promiscd::client::LeaseEnd& end) {
    std::string who = end.revoked_by;
    if (who.empty() && end.revoked_by_uid)
        who = "uid " + std::to_string(*end.revoked_by_uid);
    if (!end.message.empty())
        who += (who.empty() ? "" : ": ") + end.message;
    return who;
}

LeaseState parse_state(std::string_view s) noexcept {
    if (s == "active")
        return LeaseState::Active;
    if (s == "pending")
        return LeaseState::Pending;
    if (s == "overridden")
        return LeaseState::Overridden;
    return LeaseState::Unknown;
}

std::uint64_t monotonic_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000 +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000;
}

Deadline::Deadline(milliseconds timeout)
    : forever_(timeout.count() < 0),
      end_(forever_ ? 0 : monotonic_usec() + static_cast<std::uint64_t>(timeout.count()) * 1000) {}

int Deadline::left_ms() const {
    if (forever_)
        return -1;
    const std::uint64_t now = monotonic_usec();
    if (now >= end_)
        return 0;
    return static_cast<int>(std::min<std::uint64_t>((end_ - now + 999) / 1000, 1 << 30));
}

int min_timeout(int a, int b) {
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return std::min(a, b);
}

void wait_for(std::vector<pollfd>& fds, int timeout_ms) {
    if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR)
        throw std::system_error(errno, std::system_category(), "poll");
}

std::chrono::system_clock::time_point from_usec(std::uint64_t usec) {
    return std::chrono::system_clock::time_point(
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
            std::chrono::microseconds(usec)));
}

} // namespace detail

using namespace detail;

const char* to_string(LeaseState state) noexcept {
    switch (state) {
    case LeaseState::Active:
        return "active";
    case LeaseState::Pending:
        return "pending";
    case LeaseState::Overridden:
        return "overridden";
    case LeaseState::Ended:
        return "ended";
    case LeaseState::Unknown:
        break;
    }
    return "unknown";
}

const char* version() noexcept {
    return PROMISC_VERSION;
}

// ---------------------------------------------------------------- Lease

void Lease::Impl::change(LeaseState to) {
    if (to == state)
        return;
    const LeaseState from = state;
    state = to;
    if (callback) {
        // A copy: the callback may replace itself.
        auto cb = callback;
        cb(from, to);
    }
}

void Lease::Impl::update(const LeaseInfo& now) {
    info = now;
    change(now.state);
}

void Lease::Impl::ended(std::string reason, std::string detail) {
    if (state == LeaseState::Ended)
        return;
    end_reason = std::move(reason);
    end_detail = std::move(detail);
    change(LeaseState::Ended);
}

void Lease::Impl::check_held(const char* what) const {
    if (state == LeaseState::Ended)
        raise(ErrorCode::NoSuchLease, {},
              std::string("cannot ") + what + " lease " + std::to_string(id) + " on " + interface +
                  ": it has ended (" + end_reason + ")");
}

Lease::Lease(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Lease::Lease(Lease&&) noexcept = default;
Lease& Lease::operator=(Lease&&) noexcept = default;
Lease::~Lease() = default;

namespace {
const std::string kEmpty;
}

std::uint64_t Lease::id() const noexcept {
    return impl_ ? impl_->id : 0;
}
const std::string& Lease::interface() const noexcept {
    return impl_ ? impl_->interface : kEmpty;
}
LeaseState Lease::state() const noexcept {
    return impl_ ? impl_->state : LeaseState::Ended;
}
const LeaseInfo& Lease::info() const noexcept {
    static const LeaseInfo none{};
    return impl_ ? impl_->current() : none;
}
const std::string& Lease::end_reason() const noexcept {
    return impl_ ? impl_->end_reason : kEmpty;
}
const std::string& Lease::end_detail() const noexcept {
    return impl_ ? impl_->end_detail : kEmpty;
}
void Lease::on_change(std::function<void(LeaseState, LeaseState)> callback) {
    if (!impl_)
        throw std::logic_error("promisc::Lease used after it was moved from");
    impl_->callback = std::move(callback);
}
void Lease::renew(std::chrono::seconds ttl) {
    if (!impl_)
        throw std::logic_error("promisc::Lease used after it was moved from");
    if (ttl.count() < 0)
        raise(ErrorCode::InvalidArgument, {}, "ttl must not be negative");
    impl_->check_held("renew");
    try {
        impl_->renew(static_cast<std::uint64_t>(ttl.count()));
    } catch (...) {
        rethrow_current();
    }
}
void Lease::release() {
    if (!impl_)
        throw std::logic_error("promisc::Lease used after it was moved from");
    impl_->check_held("release");
    try {
        impl_->release();
    } catch (...) {
        rethrow_current();
    }
    // The caller asked for it: no callback.
    impl_->state = LeaseState::Ended;
    impl_->end_reason = "released";
}

// ---------------------------------------------------------------- Capture

Capture::Impl::Impl(std::uint64_t capture_id, std::string link, const CaptureOptions& opts,
                    ic::UniqueFd stream)
    : id(capture_id), interface(std::move(link)), options(opts), fd(std::move(stream)) {
    ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
    ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
}

Capture::Impl::~Impl() = default;

int Capture::Impl::stream_fd() const noexcept {
    return reader ? reader->fd() : fd.get();
}

bool Capture::Impl::at_end() const noexcept {
    return reader ? reader->eof() : raw_eof;
}

std::optional<Frame> Capture::Impl::next(milliseconds timeout) {
    if (raw)
        throw std::logic_error("promisc::Capture: next() on a capture read with read()");
    if (!options.format.empty() && options.format != "pcapng")
        throw std::logic_error("promisc::Capture: next() reads pcapng; this capture's format is " +
                               options.format + ": use read()");
    if (!reader)
        reader.emplace(fd.release());
    const Deadline deadline(timeout);
    for (;;) {
        auto f = reader->next(milliseconds(0));
        if (f) {
            pump();
            ++frames;
            Frame out;
            out.timestamp = decltype(out.timestamp)(std::chrono::nanoseconds(f->timestamp_ns));
            out.original_length = f->original_length;
            out.data = std::move(f->data);
            out.link_type = f->link_type;
            return out;
        }
        pump();
        if (reader->eof()) {
            settle();
            return std::nullopt;
        }
        const int left = deadline.left_ms();
        if (left == 0)
            return std::nullopt;
        wait(left);
    }
}

std::optional<std::size_t> Capture::Impl::read(void* buffer, std::size_t size,
                                               milliseconds timeout) {
    if (reader)
        throw std::logic_error("promisc::Capture: read() on a capture read with next()");
    raw = true;
    if (raw_eof || size == 0)
        return std::size_t{0};
    const Deadline deadline(timeout);
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, size);
        if (n > 0) {
            pump();
            return static_cast<std::size_t>(n);
        }
        if (n == 0) {
            raw_eof = true;
            pump();
            settle();
            return std::size_t{0};
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            throw std::system_error(errno, std::system_category(), "reading the capture stream");
        pump();
        const int left = deadline.left_ms();
        if (left == 0)
            return std::nullopt;
        wait(left);
    }
}

void Capture::Impl::wait(int timeout_ms) {
    std::vector<pollfd> fds{{stream_fd(), POLLIN, 0}};
    const PollInfo t = transport_poll();
    if (t.fd >= 0)
        fds.push_back({t.fd, t.events, 0});
    wait_for(fds, min_timeout(timeout_ms, t.timeout_ms));
}

void Capture::Impl::settle() {
    // The daemon says why a capture finished just after the stream's end.
    if (!daemon_reason().empty() || stop_requested)
        return;
    const Deadline deadline(milliseconds(500));
    while (daemon_reason().empty()) {
        const PollInfo t = transport_poll();
        const int left = deadline.left_ms();
        if (t.fd < 0 || left == 0)
            return;
        std::vector<pollfd> fds{{t.fd, t.events, 0}};
        wait_for(fds, min_timeout(left, t.timeout_ms));
        pump();
    }
}

const std::string& Capture::Impl::reason() const {
    if (!at_end())
        return kEmpty;
    reason_ = daemon_reason();
    if (reason_.empty()) {
        if (stop_requested)
            reason_ = "stopped";
        else if (options.count && frames >= options.count)
            reason_ = "count-reached";
    }
    return reason_;
}

CaptureStats Capture::Impl::stats() const {
    CaptureStats s;
    s.frames = frames;
    daemon_counters(s);
    if (reader && reader->eof() && reader->statistics()) {
        const auto& isb = *reader->statistics();
        const std::uint64_t drops = isb.os_dropped.value_or(0) + isb.interface_dropped.value_or(0);
        s.drops = drops;
        if (isb.received)
            s.packets = *isb.received >= drops ? *isb.received - drops : 0;
        s.final = true;
    }
    return s;
}

void Capture::Impl::stop() {
    if (at_end() || stop_requested)
        return;
    stop_requested = true;
    request_stop();
}

Capture::Capture(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Capture::Capture(Capture&&) noexcept = default;
Capture& Capture::operator=(Capture&&) noexcept = default;
Capture::~Capture() = default;

std::uint64_t Capture::id() const noexcept {
    return impl_ ? impl_->id : 0;
}
const std::string& Capture::interface() const noexcept {
    return impl_ ? impl_->interface : kEmpty;
}
std::optional<Frame> Capture::next(milliseconds timeout) {
    if (!impl_)
        throw std::logic_error("promisc::Capture used after it was moved from");
    try {
        return impl_->next(timeout);
    } catch (const std::logic_error&) {
        throw;
    } catch (...) {
        rethrow_current();
    }
    return std::nullopt;
}
std::optional<std::size_t> Capture::read(void* buffer, std::size_t size, milliseconds timeout) {
    if (!impl_)
        throw std::logic_error("promisc::Capture used after it was moved from");
    try {
        return impl_->read(buffer, size, timeout);
    } catch (const std::logic_error&) {
        throw;
    } catch (...) {
        rethrow_current();
    }
    return std::nullopt;
}
bool Capture::ended() const noexcept {
    return !impl_ || impl_->at_end();
}
const std::string& Capture::end_reason() const noexcept {
    return impl_ ? impl_->reason() : kEmpty;
}
CaptureStats Capture::stats() const {
    return impl_ ? impl_->stats() : CaptureStats{};
}
void Capture::stop() {
    if (!impl_)
        return;
    try {
        impl_->stop();
    } catch (...) {
        rethrow_current();
    }
}
int Capture::fd() const noexcept {
    return impl_ ? impl_->stream_fd() : -1;
}

// ---------------------------------------------------------------- Monitor

const char* to_string(Event::Type type) noexcept {
    switch (type) {
    case Event::Type::LinkAdded:
        return "link-added";
    case Event::Type::LinkChanged:
        return "link-changed";
    case Event::Type::LinkRemoved:
        return "link-removed";
    case Event::Type::LeaseGranted:
        return "lease-granted";
    case Event::Type::LeaseChanged:
        return "lease-changed";
    case Event::Type::LeaseEnded:
        return "lease-ended";
    case Event::Type::CaptureStarted:
        return "capture-started";
    case Event::Type::CaptureFinished:
        return "capture-finished";
    case Event::Type::FlagChanged:
        return "flag-changed";
    case Event::Type::Conflict:
        return "conflict";
    case Event::Type::DaemonStopped:
        return "daemon-stopped";
    case Event::Type::DaemonStarted:
        return "daemon-started";
    case Event::Type::Unknown:
        break;
    }
    return "unknown";
}

Monitor::Monitor(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
Monitor::Monitor(Monitor&&) noexcept = default;
Monitor& Monitor::operator=(Monitor&&) noexcept = default;
Monitor::~Monitor() = default;

namespace {
const std::vector<Link> kNoLinks;
const std::vector<LeaseInfo> kNoLeases;
} // namespace

const std::vector<Link>& Monitor::links() const noexcept {
    return impl_ ? impl_->links : kNoLinks;
}
const std::vector<LeaseInfo>& Monitor::leases() const noexcept {
    return impl_ ? impl_->leases : kNoLeases;
}
bool Monitor::reports_flag_changes() const noexcept {
    return impl_ && impl_->flag_events;
}
void Monitor::on_event(std::function<void(const Event&)> callback) {
    if (!impl_)
        throw std::logic_error("promisc::Monitor used after it was moved from");
    impl_->callback = std::move(callback);
}

// ---------------------------------------------------------------- Client

Client::Impl::~Impl() = default;

Client::Client() : Client(ClientOptions{}) {}

Client::Client(const ClientOptions& options) {
    try {
        if (options.transport == Transport::Varlink)
            impl_ = make_varlink_backend(options);
        else
            impl_ = make_dbus_backend(options);
    } catch (...) {
        rethrow_current();
    }
}

Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

namespace {
Client::Impl& checked(const std::shared_ptr<Client::Impl>& impl) {
    if (!impl)
        throw std::logic_error("promisc::Client used after it was moved from");
    return *impl;
}
} // namespace

Transport Client::transport() const noexcept {
    return impl_ ? impl_->transport() : Transport::DBus;
}

std::vector<Link> Client::links() {
    auto& impl = checked(impl_);
    try {
        return impl.links();
    } catch (...) {
        rethrow_current();
    }
    return {};
}

std::vector<LeaseInfo> Client::leases() {
    auto& impl = checked(impl_);
    try {
        return impl.leases();
    } catch (...) {
        rethrow_current();
    }
    return {};
}

Lease Client::acquire(const std::string& interface, const LeaseOptions& options) {
    auto& impl = checked(impl_);
    if (options.ttl.count() < 0)
        raise(ErrorCode::InvalidArgument, {}, "ttl must not be negative");
    try {
        return Lease(impl.acquire(impl_, interface, options));
    } catch (...) {
        rethrow_current();
    }
    throw std::logic_error("unreachable");
}

Capture Client::capture(const std::string& interface, const CaptureOptions& options) {
    auto& impl = checked(impl_);
    if (!options.format.empty() && options.format != "pcapng" && options.format != "pcap")
        raise(ErrorCode::InvalidArgument, {},
              "unknown capture format '" + options.format + "' (pcapng or pcap)");
    try {
        return Capture(impl.capture(impl_, interface, options));
    } catch (...) {
        rethrow_current();
    }
    throw std::logic_error("unreachable");
}

void Client::release(std::uint64_t lease_id) {
    auto& impl = checked(impl_);
    try {
        impl.release(lease_id);
    } catch (...) {
        rethrow_current();
    }
}

void Client::on_daemon(std::function<void(bool running)> callback) {
    auto& impl = checked(impl_);
    try {
        impl.on_daemon(std::move(callback));
    } catch (...) {
        rethrow_current();
    }
}

void Client::revoke(std::uint64_t lease_id, const std::string& reason) {
    auto& impl = checked(impl_);
    try {
        impl.revoke(lease_id, reason);
    } catch (...) {
        rethrow_current();
    }
}

void Client::set_policy(const std::string& interface, const std::string& policy) {
    auto& impl = checked(impl_);
    try {
        impl.set_policy(interface, policy);
    } catch (...) {
        rethrow_current();
    }
}

Monitor Client::monitor() {
    auto& impl = checked(impl_);
    try {
        return Monitor(impl.monitor(impl_));
    } catch (...) {
        rethrow_current();
    }
    throw std::logic_error("unreachable");
}

void Client::process(milliseconds timeout) {
    auto& impl = checked(impl_);
    try {
        impl.process(timeout);
    } catch (...) {
        rethrow_current();
    }
}

PollInfo Client::poll_info() const {
    auto& impl = checked(impl_);
    try {
        return impl.poll_info();
    } catch (...) {
        rethrow_current();
    }
    return {};
}

} // namespace promisc
