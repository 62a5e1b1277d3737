// The errors of promiscd's client library: one closed set of kinds, and one
// table that maps the names both transports use (D-Bus error names and
// varlink error names) to them, so that a caller handles a failure the same
// way whichever transport carried it.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace promiscd::client {

// Every way a request can fail, as a caller needs to tell them apart.
enum class ErrorKind {
    Failed,                           // anything else the daemon or the bus said
    NoSuchInterface,                  // the link does not exist
    InvalidArgument,                  // a bad option, parameter or value
    InvalidFilter,                    // the pcap-filter expression does not compile
    QuotaExceeded,                    // too many leases or captures
    NoSuchLease,                      // no such lease (also: no object at that lease path)
    NoSuchCapture,                    // no such capture
    NotOwner,                         // the lease belongs to someone else
    AccessDenied,                     // polkit said no
    InteractiveAuthorizationRequired, // polkit wants a password and the call did not allow asking
    LimitsExceeded,                   // too many requests in flight: retry later
    NotSupported,                     // the daemon does not offer this (yet)
    DaemonUnreachable,                // no bus or socket, or promiscd not there
};

std::string_view to_string(ErrorKind kind) noexcept;

// The kind an error name stands for, whichever transport sent it:
// "org.promiscd.Promisc1.Error.NoSuchInterface" (D-Bus) and
// "org.promiscd.promisc.NoSuchInterface" (varlink) are both NoSuchInterface.
// Failed for a name that is none of the table's.
ErrorKind error_kind(std::string_view error_name) noexcept;
// The same table; kept for callers that name the transport.
inline ErrorKind varlink_error_kind(std::string_view varlink_error_name) noexcept {
    return error_kind(varlink_error_name);
}

// The names promiscd uses for kind on each transport (empty where the
// transport has none, e.g. DaemonUnreachable, which is found locally).
std::string_view dbus_error_name(ErrorKind kind) noexcept;
std::string_view varlink_error_name(ErrorKind kind) noexcept;

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, std::string name, const std::string& message)
        : std::runtime_error(message), kind_(kind), name_(std::move(name)) {}
    ErrorKind kind() const noexcept { return kind_; }
    // The error name as received (a D-Bus or a varlink error name); empty
    // when the error was found locally.
    const std::string& name() const noexcept { return name_; }
    // The same; the name predates varlink.
    const std::string& dbus_name() const noexcept { return name_; }

private:
    ErrorKind kind_;
    std::string name_;
};

} // namespace promiscd::client
