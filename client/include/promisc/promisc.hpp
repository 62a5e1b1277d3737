// libpromisc, C++ API: promiscuous mode and packet capture through promiscd,
// with no privileges in the calling program.
//
// promiscd owns the decision to put a network link in promiscuous mode and
// opens packet sockets on behalf of its clients; polkit decides who may ask.
// A program asks for a Lease (the link stays promiscuous while some lease on
// it is held) or a Capture (promiscd filters the link's frames in the kernel
// and hands over the read end of a pipe carrying them as pcapng).
//
//     promisc::Client client;                      // the system bus
//     promisc::Lease lease = client.acquire("eth0");
//     promisc::CaptureOptions options;
//     options.filter = "arp";
//     promisc::Capture capture = client.capture("eth0", options);
//     while (auto frame = capture.next(std::chrono::seconds(1)))
//         use(frame->data);
//     // ~Capture and ~Lease end both at once.
//
// Threads: a Client and everything it returns are used from one thread at a
// time. Nothing runs behind the caller's back: callbacks run from
// Client::process() (and from Capture::next()/read(), which process the
// client's connection as they go).
//
// Errors: every failure is thrown as promisc::Error or, for the failures a
// caller is expected to handle, one of its subclasses (NoSuchInterfaceError,
// AccessDeniedError, ...). The same failure has the same class whichever
// transport carried it. Requires C++17.
#pragma once

#include <promisc/version.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace promisc {

// ---------------------------------------------------------------- errors

// Every way a request can fail, as a caller needs to tell them apart. Each
// has its exception class below and its errno value in the C API
// (promisc.h); errno_of() gives it.
enum class ErrorCode {
    // Anything else the daemon or the bus said (C: -EIO).
    Failed,
    // The link does not exist (C: -ENODEV).
    NoSuchInterface,
    // An option or value the daemon refuses, with a message naming it (C: -EINVAL).
    InvalidArgument,
    // The capture filter does not compile, or is too costly (C: -EINVAL).
    InvalidFilter,
    // Too many leases or captures for this user or in all (C: -EDQUOT).
    QuotaExceeded,
    // The lease has ended or never existed (C: -ENOENT).
    NoSuchLease,
    // The capture has ended or never existed (C: -ENOENT).
    NoSuchCapture,
    // The lease or capture belongs to someone else (C: -EPERM).
    NotOwner,
    // polkit said no (C: -EACCES).
    AccessDenied,
    // polkit would allow it after authentication, but the request did not
    // allow asking (ClientOptions::interactive) or no agent could ask (C: -EACCES).
    InteractiveAuthorizationRequired,
    // Too many requests in flight: retry later (C: -EBUSY).
    LimitsExceeded,
    // The daemon does not offer this, or not over this transport (C: -ENOTSUP).
    NotSupported,
    // No system bus or varlink socket, promiscd is not running, or the
    // connection to it was lost (C: -ECONNREFUSED).
    DaemonUnreachable,
};

// "NoSuchInterface", ...
PROMISC_API const char* to_string(ErrorCode code) noexcept;
// The positive errno value the C API returns (negated) for code.
PROMISC_API int errno_of(ErrorCode code) noexcept;

// A failed request. what() is a message for a person, naming what was wrong
// ("interface 'eth9' does not exist").
class PROMISC_API Error : public std::runtime_error {
public:
    Error(ErrorCode code, std::string name, const std::string& message);
    ~Error() override;
    ErrorCode code() const noexcept { return code_; }
    // The error name as the daemon or the bus sent it, e.g.
    // "org.promiscd.Promisc1.Error.NoSuchInterface" (D-Bus) or
    // "org.promiscd.promisc.NoSuchInterface" (varlink); empty when the
    // library found the error itself.
    const std::string& name() const noexcept { return name_; }

private:
    ErrorCode code_;
    std::string name_;
};

// One class per code a caller is expected to handle; Failed is Error itself.
#define PROMISC_ERROR_CLASS(Code)                                                                  \
    class PROMISC_API Code##Error : public Error {                                                 \
    public:                                                                                        \
        Code##Error(std::string name, const std::string& message)                                  \
            : Error(ErrorCode::Code, std::move(name), message) {}                                  \
        ~Code##Error() override;                                                                   \
    }
PROMISC_ERROR_CLASS(NoSuchInterface);
PROMISC_ERROR_CLASS(InvalidArgument);
PROMISC_ERROR_CLASS(InvalidFilter);
PROMISC_ERROR_CLASS(QuotaExceeded);
PROMISC_ERROR_CLASS(NoSuchLease);
PROMISC_ERROR_CLASS(NoSuchCapture);
PROMISC_ERROR_CLASS(NotOwner);
PROMISC_ERROR_CLASS(AccessDenied);
PROMISC_ERROR_CLASS(InteractiveAuthorizationRequired);
PROMISC_ERROR_CLASS(LimitsExceeded);
PROMISC_ERROR_CLASS(NotSupported);
PROMISC_ERROR_CLASS(DaemonUnreachable);
#undef PROMISC_ERROR_CLASS

// ---------------------------------------------------------------- state

// Link names: the kernel's names are bytes. The daemon shows them escaped
// ("\\" for a backslash, "\xNN" for a byte that is not valid UTF-8) and
// accepts the escaped form wherever a name is asked for; so does this library.

// A link as the daemon sees it.
struct Link {
    std::string name; // escaped, see above
    int index = 0;
    bool admin_flag = false;       // IFF_PROMISC, the administrative bit
    std::uint32_t promiscuity = 0; // the kernel's count (packet sockets count too)
    bool promiscuous = false;      // promiscuity > 0: the NIC really is promiscuous
    std::string origin;            // who set the admin bit: "none", "daemon", "admin"
    std::uint32_t leases = 0;      // leases held on it
    std::string policy;            // "enforce" or "yield"
    // How often another agent changed the admin flag, when the daemon says.
    std::optional<std::uint64_t> external_changes;
    // A link of another network namespace (while promiscd watches it: a
    // lease or capture uses it): the namespace as first named, and its
    // inode; index is then the kernel's index inside that namespace.
    std::string netns;
    std::uint64_t netns_inode = 0;
};

enum class LeaseState {
    // Held, and the link is promiscuous.
    Active,
    // Held, the link is absent; applied when a link of that name appears.
    Pending,
    // Held, but another agent cleared the flag and the daemon stopped
    // fighting it (policy "yield", or a conflict).
    Overridden,
    // No longer held; Lease::end_reason() says why.
    Ended,
    // A state this library does not know (a newer daemon).
    Unknown,
};
PROMISC_API const char* to_string(LeaseState state) noexcept;

// Any lease on the host, as Client::leases() lists them.
struct LeaseInfo {
    std::uint64_t id = 0;
    std::string interface; // escaped
    LeaseState state = LeaseState::Unknown;
    // A D-Bus unique name (":1.42"), "varlink:<n>", "config:static" or "config:hold".
    std::string owner;
    std::uint32_t uid = 0;
    std::uint32_t pid = 0;
    std::string command; // of the owner's process, when known
    std::string reason;  // as given when acquired; a capture's is "capture <id>"
    std::chrono::system_clock::time_point acquired{};
    std::optional<std::chrono::system_clock::time_point> expires; // none: no expiry
    // On a link of another network namespace: as its client named it, and
    // its inode (0: promiscd's own).
    std::string netns;
    std::uint64_t netns_inode = 0;
};

struct LeaseOptions {
    // 0: no expiry. Otherwise the lease ends unless renew()ed within ttl.
    std::chrono::seconds ttl{0};
    // Shown to administrators and in the audit log.
    std::string reason;
    // When the link is absent: a Pending lease instead of NoSuchInterfaceError.
    bool wait = false;
    // The link is in another network namespace (a container's): a name
    // under /run/netns, "pid:N" (process N's namespace) or an absolute path
    // to a namespace file. Needs the polkit action org.promiscd.netns.
    std::string netns;
};

// A lease this program holds. RAII: the destructor releases it if still
// held; it also ends when the program's connection to promiscd closes
// (exit, crash). Movable, not copyable. May outlive its Client.
class PROMISC_API Lease {
public:
    Lease(Lease&&) noexcept;
    Lease& operator=(Lease&&) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();

    std::uint64_t id() const noexcept;
    const std::string& interface() const noexcept;
    // As last seen: Client::process() takes in changes the daemon announced.
    LeaseState state() const noexcept;
    // The whole record as last seen (state, expiry, owner, ...).
    const LeaseInfo& info() const noexcept;
    bool held() const noexcept { return state() != LeaseState::Ended; }
    // Why it ended: "released", "expired", "owner-gone", "revoked",
    // "daemon-shutdown", "connection-lost" (the connection to promiscd
    // closed without saying), or "lost-in-restart" (promiscd came back
    // without it, see Client::on_daemon()); empty while held.
    const std::string& end_reason() const noexcept;
    // For a revocation: who revoked it and their message, as the daemon
    // describes it ("uid 0 (pid 42, promiscctl): maintenance"); else empty.
    const std::string& end_detail() const noexcept;

    // Called from Client::process() when the state changes, including to
    // Ended when the daemon ends the lease (TTL, revocation, shutdown). Not
    // called for release() or the destructor.
    void on_change(std::function<void(LeaseState from, LeaseState to)> callback);

    // Sets a new TTL from now (0: no expiry). Throws NoSuchLeaseError when
    // the lease has ended.
    void renew(std::chrono::seconds ttl);
    // Ends the lease now. Throws NoSuchLeaseError when it has ended already.
    void release();

    struct Impl;

private:
    friend class Client;
    PROMISC_LOCAL explicit Lease(std::unique_ptr<Impl> impl) noexcept;
    std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- capture

struct CaptureOptions {
    // pcap-filter(7) expression, compiled by the daemon into a kernel BPF
    // filter that is locked onto the socket; empty: every frame.
    std::string filter;
    // Bytes kept of each frame; 0: the daemon's default (262144).
    std::uint32_t snaplen = 0;
    // Hold promiscuous mode (a lease, reason "capture <id>") while capturing.
    // Ignored for the interface "any", which is never promiscuous.
    bool promisc = true;
    // Kernel ring size in bytes; 0: the daemon's default.
    std::uint32_t buffer_size = 0;
    // End after this many frames; 0: no limit.
    std::uint64_t count = 0;
    // The stream's file format: "pcapng" (empty: the default) or "pcap"
    // (tcpdump's classic format, for read() only: next() reads pcapng).
    std::string format;
    // As LeaseOptions::netns: capture inside another network namespace.
    std::string netns;
};

// A capture as the daemon describes it (Monitor events).
struct CaptureInfo {
    std::uint64_t id = 0;
    std::string interface; // escaped
    std::string filter;
    std::string format;
    // Counters, where the daemon publishes them (D-Bus).
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t drops = 0;
};

// One frame of a capture.
struct Frame {
    std::chrono::time_point<std::chrono::system_clock, std::chrono::nanoseconds> timestamp{};
    // The frame's length on the wire; data may hold fewer bytes (snaplen).
    std::uint32_t original_length = 0;
    std::vector<std::uint8_t> data;
    // LINKTYPE_* of the data: 1 (Ethernet) for Ethernet links, 276
    // (LINUX_SLL2) for "any" and links without an Ethernet header.
    std::uint16_t link_type = 0;
};

struct CaptureStats {
    // Frames next() has returned so far.
    std::uint64_t frames = 0;
    // The daemon's counters: frames and bytes it passed on, frames lost
    // (kernel ring full, or this reader too slow). Over D-Bus they are
    // updated about once a second while the capture runs; over varlink they
    // are known only at the end. Once the stream has ended, both transports
    // give the stream's closing statistics and final is true.
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
    std::uint64_t drops = 0;
    bool final = false;
};

// A capture this program opened: the daemon's filtered stream of a link's
// frames. RAII: the destructor stops it (and its lease). Movable, not
// copyable. May outlive its Client.
class PROMISC_API Capture {
public:
    Capture(Capture&&) noexcept;
    Capture& operator=(Capture&&) noexcept;
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;
    ~Capture();

    std::uint64_t id() const noexcept;
    const std::string& interface() const noexcept;

    // The next frame, waiting up to timeout for one (negative: for ever).
    // Nothing when the timeout passes first, or when the capture has ended
    // and every frame has been returned (then ended() is true).
    std::optional<Frame> next(std::chrono::milliseconds timeout);

    // The stream itself, for programs that pass it on unchanged (the
    // Wireshark extcap writes it into Wireshark's fifo): up to size bytes of
    // pcapng, waiting up to timeout (negative: for ever). The number of
    // bytes read, 0 at the end of the stream, nothing when the timeout
    // passes first. A capture is read with next() or with read(), not both
    // (std::logic_error).
    std::optional<std::size_t> read(void* buffer, std::size_t size,
                                    std::chrono::milliseconds timeout);

    // The stream has ended and everything in it has been returned.
    bool ended() const noexcept;
    // Why it ended: "stopped", "count-reached", "reader-closed",
    // "link-removed", "owner-gone", "error", "daemon-shutdown"; empty while
    // it runs or when the daemon did not say (varlink says nothing but
    // "stopped" after stop() and "count-reached" when count frames came).
    const std::string& end_reason() const noexcept;
    CaptureStats stats() const;

    // Asks the daemon to end the capture: it writes the closing statistics
    // and ends the stream; keep calling next() for the frames still in it.
    // Does nothing once the capture has ended.
    void stop();

    // The read end of the stream (non-blocking), for a poll loop of the
    // caller's own: readable means next()/read() with timeout 0 may return
    // something. Owned by the Capture.
    int fd() const noexcept;

    struct Impl;

private:
    friend class Client;
    PROMISC_LOCAL explicit Capture(std::unique_ptr<Impl> impl) noexcept;
    std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- monitor

// Something that happened in promiscd, as Client::monitor() reports it.
struct Event {
    enum class Type {
        // Links appeared, changed or went (D-Bus only; over varlink only
        // FlagChanged tells of links).
        LinkAdded,
        LinkChanged,
        LinkRemoved,
        // Someone's lease: granted, changed (state, expiry), ended.
        LeaseGranted,
        LeaseChanged,
        LeaseEnded,
        // Someone's capture started or finished.
        CaptureStarted,
        CaptureFinished,
        // A link's IFF_PROMISC changed; by says who changed it.
        FlagChanged,
        // Another agent keeps clearing the flag of a leased link.
        Conflict,
        // promiscd stopped, or is back (D-Bus follows it across restarts;
        // over varlink the stream ends with DaemonStopped).
        DaemonStopped,
        DaemonStarted,
        // A type this library does not know (a newer daemon).
        Unknown,
    };
    Type type = Type::Unknown;
    // When the daemon said it (varlink) or the library received it (D-Bus).
    std::chrono::system_clock::time_point time{};
    // Link*: the link after the change, and before it (LinkChanged).
    std::optional<Link> link;
    std::optional<Link> previous_link;
    // Lease*: the lease after the change (LeaseEnded: as it was), and
    // before it (LeaseChanged).
    std::optional<LeaseInfo> lease;
    std::optional<LeaseInfo> previous_lease;
    // LinkChanged, LeaseChanged: what changed, by D-Bus property name
    // ("AdminFlag", "Promiscuity", "State", "Expires", ...).
    std::vector<std::string> changed;
    // Capture*: the capture.
    std::optional<CaptureInfo> capture;
    // The link's name (escaped), whatever the type.
    std::string interface;
    // LeaseEnded, CaptureFinished: why ("released", "revoked", "stopped", ...).
    std::string reason;
    // LeaseEnded by a revocation: who and their message, as
    // Lease::end_detail() gives it, and the parts it is made of.
    std::string detail;
    std::string revoked_by;
    std::optional<std::uint32_t> revoked_by_uid;
    std::string message;
    // FlagChanged: the flag after the change, and "promiscd" or "another agent".
    bool flag = false;
    std::string by;
    // Conflict: how many times the other agent cleared the flag.
    std::uint32_t clears = 0;
};
PROMISC_API const char* to_string(Event::Type type) noexcept;

// promiscd's stream of events, from Client::monitor(): every lease,
// capture and flag change on the host as it happens, with the links and
// leases there were when it began. Reading it needs no authorization.
// Callbacks run from Client::process(). Movable, not copyable; events stop
// when it is destroyed. Must not outlive its Client.
class PROMISC_API Monitor {
public:
    Monitor(Monitor&&) noexcept;
    Monitor& operator=(Monitor&&) noexcept;
    Monitor(const Monitor&) = delete;
    Monitor& operator=(const Monitor&) = delete;
    ~Monitor();

    // The links and leases there were when the monitor began.
    const std::vector<Link>& links() const noexcept;
    const std::vector<LeaseInfo>& leases() const noexcept;
    void on_event(std::function<void(const Event&)> callback);
    // Whether every change of a link's flag comes as FlagChanged (with who
    // made it), so that a LinkChanged's AdminFlag needs no explaining.
    bool reports_flag_changes() const noexcept;

    struct Impl;

private:
    friend class Client;
    PROMISC_LOCAL explicit Monitor(std::unique_ptr<Impl> impl) noexcept;
    std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------- client

enum class Transport {
    // The D-Bus system bus (DBUS_SYSTEM_BUS_ADDRESS is honoured): the
    // desktop's way, with polkit agents for passwords.
    DBus,
    // promiscd's varlink socket, for hosts without a system bus. Each lease
    // and each capture has a connection of its own (promiscd allows 16 per
    // user by default).
    Varlink,
};

struct ClientOptions {
    Transport transport = Transport::DBus;
    // For Transport::Varlink.
    std::string varlink_socket = "/run/promiscd/io.promiscd";
    // Let polkit ask the person for a password through their authentication
    // agent (D-Bus: ALLOW_INTERACTIVE_AUTHORIZATION; varlink:
    // allowInteractiveAuthentication). Calls may then take as long as the
    // person takes.
    bool interactive = false;
};

// For a poll loop of the caller's own: wait for `events` (poll(2) bits) on
// fd or until timeout_ms passes (-1: no timeout of the client's own), then
// call Client::process(0).
struct PollInfo {
    int fd = -1;
    short events = 0;
    int timeout_ms = -1;
};

// A connection to promiscd. Throws DaemonUnreachableError when the bus or
// socket cannot be reached.
class PROMISC_API Client {
public:
    Client();
    explicit Client(const ClientOptions& options);
    Client(Client&&) noexcept;
    Client& operator=(Client&&) noexcept;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;
    ~Client();

    Transport transport() const noexcept;

    // Reading state needs no authorization.
    std::vector<Link> links();
    std::vector<LeaseInfo> leases();

    // Puts interface in promiscuous mode for as long as the lease is held
    // (polkit action org.promiscd.promisc.acquire). Throws
    // NoSuchInterfaceError, AccessDeniedError,
    // InteractiveAuthorizationRequiredError, QuotaExceededError,
    // InvalidArgumentError, DaemonUnreachableError, Error.
    Lease acquire(const std::string& interface, const LeaseOptions& options = {});

    // Opens a capture on interface, or "any" for every link (polkit action
    // org.promiscd.capture). Throws as acquire(), and InvalidFilterError.
    Capture capture(const std::string& interface, const CaptureOptions& options = {});

    // Ends a lease by id: this process's own (as Lease::release()), or,
    // with org.promiscd.manage, anyone's (a revocation without a reason).
    // Throws NoSuchLeaseError, NotOwnerError, AccessDeniedError, ...
    void release(std::uint64_t lease_id);

    // Administration (polkit action org.promiscd.manage).
    //
    // Ends anyone's lease (its owner sees reason "revoked", and who and
    // why). Throws NoSuchLeaseError, AccessDeniedError,
    // InteractiveAuthorizationRequiredError, DaemonUnreachableError, Error.
    void revoke(std::uint64_t lease_id, const std::string& reason = {});
    // What promiscd does when another agent clears the promiscuous flag of
    // a leased link: "enforce" (set it again) or "yield" (leave it; the
    // leases become Overridden). The policy a link has already changes
    // nothing and needs no authorization. Throws NoSuchInterfaceError,
    // InvalidArgumentError, and as revoke().
    void set_policy(const std::string& interface, const std::string& policy);

    // Follows what happens in promiscd from now on (see Monitor).
    Monitor monitor();

    // D-Bus: called from process() with false when promiscd leaves the
    // bus, and with true when it is back (it adopts the leases it had; those
    // it did not keep end with reason "lost-in-restart" before the call).
    // Over varlink a stopped daemon ends the connection instead: process()
    // throws DaemonUnreachableError.
    void on_daemon(std::function<void(bool running)> callback);

    // Takes in what the daemon has announced (lease changes and ends,
    // capture counters) and runs the callbacks, waiting up to timeout for
    // the first announcement (0: only what has arrived; negative: for ever).
    void process(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
    PollInfo poll_info() const;

    struct Impl;

private:
    std::shared_ptr<Impl> impl_;
};

// The library's version, "MAJOR.MINOR.PATCH" (PROMISC_VERSION is the
// headers').
PROMISC_API const char* version() noexcept;

} // namespace promisc
