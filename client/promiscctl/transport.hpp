// The seam between the commands and the way they reach promiscd: D-Bus
// (libpromisc) or the varlink socket. Commands see links, leases, a held
// lease and an event stream; which transport carries them is decided once,
// from --transport, in Context.
#pragma once

#include "client/promisc_client.hpp"
#include "client/varlink_client.hpp"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace promiscd::ctl {

class EventLoop;

enum class TransportKind { Auto, DBus, Varlink };

// A lease this promiscctl holds. Callbacks run from the EventLoop.
class HeldLease {
public:
    virtual ~HeldLease() = default;
    virtual const client::LeaseInfo& info() const = 0;
    std::uint64_t id() const { return info().id; }
    virtual bool ended() const = 0;
    virtual void on_state_changed(std::function<void(const std::string&, const std::string&)>) = 0;
    virtual void on_ended(std::function<void(const std::string& reason)>) = 0;
    // How it ended (for a revocation: who and why), once ended() is true.
    virtual const client::LeaseEnd& end() const = 0;
    // Ends the lease (over varlink: closes its connection).
    virtual void release() = 0;
    // Re-reads it after promiscd came back (D-Bus); false when it is gone.
    virtual bool refresh() = 0;
};

// A capture promiscctl opened: the stream's fd and how the capture ends.
class OpenedCapture {
public:
    virtual ~OpenedCapture() = default;
    virtual std::uint64_t id() const = 0;
    // The read end of the pipe carrying the stream.
    virtual client::UniqueFd take_fd() = 0;
    // Counters as the daemon last published them (D-Bus); over varlink
    // nothing is published and the stream's closing statistics tell.
    virtual const client::CaptureInfo& info() const = 0;
    // Whether the daemon says why a capture finished (D-Bus's Finished);
    // over varlink the end of the stream is all there is.
    virtual bool reports_finish() const = 0;
    // Called with the reason once the capture has finished (D-Bus), or with
    // "stopped" once stop() has ended it (varlink).
    virtual void on_finished(std::function<void(const std::string& reason)>) = 0;
    // Ends the capture: the daemon writes the closing statistics, then the
    // stream ends. Over varlink this closes the capture's connection.
    virtual void stop() = 0;
};

// The daemon's event stream, with the links and leases it started from.
class EventStream {
public:
    virtual ~EventStream() = default;
    virtual void on_event(std::function<void(const client::Event&)> cb) = 0;
    // Whether FlagChanged events tell every change of a link's admin flag.
    virtual bool reports_flag_changes() const = 0;
    virtual std::size_t link_count() const = 0;
    virtual std::size_t lease_count() const = 0;
};

class Transport {
public:
    virtual ~Transport() = default;
    virtual TransportKind kind() const = 0;

    virtual std::vector<client::LinkInfo> list_links() = 0;
    virtual std::vector<client::LeaseInfo> list_leases() = 0;
    // lease_path as lease_path_of() returns it.
    virtual void release(const std::string& lease_path) = 0;
    virtual void revoke(const std::string& lease_path, const std::string& reason) = 0;
    virtual void set_policy(const std::string& interface, const std::string& policy) = 0;
    virtual std::unique_ptr<HeldLease> acquire(const std::string& interface,
                                               const client::LeaseOptions& options) = 0;
    virtual std::unique_ptr<EventStream> watch() = 0;
    virtual std::unique_ptr<OpenedCapture> open_capture(const std::string& interface,
                                                        const client::CaptureOptions& options) = 0;

    // Runs the transport's connections from loop. on_lost runs once if the
    // daemon becomes unreachable; without it loop.run() throws the error.
    virtual void attach(EventLoop& loop,
                        std::function<void(const client::Error&)> on_lost = nullptr) = 0;
    // promiscd left the bus (false) or came back (true); D-Bus only (over
    // varlink a lost connection is reported through attach()).
    virtual void on_daemon_presence(std::function<void(bool running)> cb) = 0;
};

// D-Bus on client (owned by the caller, who keeps it alive).
std::unique_ptr<Transport> dbus_transport(client::Client& client);
// The varlink socket at path; connected is a connection to it already made
// (used for the first plain calls), or null. interactive: calls that may ask
// polkit say allowInteractiveAuthentication (an agent can answer).
std::unique_ptr<Transport> varlink_transport(const std::string& path,
                                             std::unique_ptr<client::VarlinkClient> connected,
                                             bool interactive);
// Whether the system bus is reachable and promiscd is on it or activatable.
bool dbus_available();
// Whether polkitd is on the system bus (or can be started there).
bool polkit_available();

} // namespace promiscd::ctl
