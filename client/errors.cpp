#include "client/errors.hpp"

#include "config.h"

#include <array>

namespace promiscd::client {

namespace {

#define DAEMON_DBUS_ERROR(name) PROMISCD_BUS_NAME ".Error." name
#define DAEMON_VARLINK_ERROR(name) PROMISCD_VARLINK_INTERFACE "." name
#define BUS_ERROR(name) "org.freedesktop.DBus.Error." name

// The one table: what each kind is called on each transport. The daemon
// answers the same request with the same kind on both (its own errors, and
// polkit's answers, which D-Bus names with the bus's standard errors).
struct Row {
    ErrorKind kind;
    std::string_view dbus;
    std::string_view varlink;
};
constexpr std::array kTable = {
    Row{ErrorKind::NoSuchInterface, DAEMON_DBUS_ERROR("NoSuchInterface"),
        DAEMON_VARLINK_ERROR("NoSuchInterface")},
    Row{ErrorKind::InvalidArgument, DAEMON_DBUS_ERROR("InvalidArgument"),
        DAEMON_VARLINK_ERROR("InvalidArgument")},
    Row{ErrorKind::InvalidFilter, DAEMON_DBUS_ERROR("InvalidFilter"),
        DAEMON_VARLINK_ERROR("InvalidFilter")},
    Row{ErrorKind::QuotaExceeded, DAEMON_DBUS_ERROR("QuotaExceeded"),
        DAEMON_VARLINK_ERROR("QuotaExceeded")},
    Row{ErrorKind::NoSuchLease, DAEMON_DBUS_ERROR("NoSuchLease"),
        DAEMON_VARLINK_ERROR("NoSuchLease")},
    Row{ErrorKind::NoSuchCapture, DAEMON_DBUS_ERROR("NoSuchCapture"),
        DAEMON_VARLINK_ERROR("NoSuchCapture")},
    Row{ErrorKind::NotOwner, DAEMON_DBUS_ERROR("NotOwner"), DAEMON_VARLINK_ERROR("NotOwner")},
    Row{ErrorKind::AccessDenied, BUS_ERROR("AccessDenied"), DAEMON_VARLINK_ERROR("AccessDenied")},
    Row{ErrorKind::InteractiveAuthorizationRequired, BUS_ERROR("InteractiveAuthorizationRequired"),
        DAEMON_VARLINK_ERROR("InteractiveAuthorizationRequired")},
    Row{ErrorKind::LimitsExceeded, BUS_ERROR("LimitsExceeded"),
        DAEMON_VARLINK_ERROR("LimitsExceeded")},
    Row{ErrorKind::NotSupported, BUS_ERROR("NotSupported"),
        "org.varlink.service.MethodNotImplemented"},
    Row{ErrorKind::Failed, BUS_ERROR("Failed"), DAEMON_VARLINK_ERROR("Failed")},
};

// Names that only one side uses for a kind of the table.
struct Alias {
    std::string_view name;
    ErrorKind kind;
};
constexpr std::array kAliases = {
    // The varlink service's own errors, from a daemon that predates its
    // InvalidArgument for unknown parameters, or an older interface.
    Alias{"org.varlink.service.InvalidParameter", ErrorKind::InvalidArgument},
    Alias{"org.varlink.service.MethodNotFound", ErrorKind::NotSupported},
    Alias{"org.varlink.service.InterfaceNotFound", ErrorKind::NotSupported},
    // The bus's own answers when the name has no owner and cannot be
    // activated, or when the connection itself failed (sd-bus names errno
    // errors "System.Error.E…").
    Alias{BUS_ERROR("ServiceUnknown"), ErrorKind::DaemonUnreachable},
    Alias{BUS_ERROR("NameHasNoOwner"), ErrorKind::DaemonUnreachable},
    Alias{BUS_ERROR("NoServer"), ErrorKind::DaemonUnreachable},
    Alias{BUS_ERROR("Disconnected"), ErrorKind::DaemonUnreachable},
    Alias{BUS_ERROR("NoReply"), ErrorKind::DaemonUnreachable},
    Alias{BUS_ERROR("Timeout"), ErrorKind::DaemonUnreachable},
    Alias{BUS_ERROR("TimedOut"), ErrorKind::DaemonUnreachable},
    Alias{"System.Error.ECONNRESET", ErrorKind::DaemonUnreachable},
    Alias{"System.Error.ENOTCONN", ErrorKind::DaemonUnreachable},
    Alias{"System.Error.ECONNREFUSED", ErrorKind::DaemonUnreachable},
    Alias{"System.Error.ETIMEDOUT", ErrorKind::DaemonUnreachable},
    Alias{"System.Error.EPIPE", ErrorKind::DaemonUnreachable},
    Alias{"System.Error.ENOENT", ErrorKind::DaemonUnreachable},
};

// dbus-daemon's activation failures: "org.freedesktop.DBus.Error.Spawn.ExecFailed", ...
constexpr std::string_view kSpawnPrefix = BUS_ERROR("Spawn.");

#undef DAEMON_DBUS_ERROR
#undef DAEMON_VARLINK_ERROR
#undef BUS_ERROR

} // namespace

std::string_view to_string(ErrorKind kind) noexcept {
    switch (kind) {
    case ErrorKind::Failed:
        return "Failed";
    case ErrorKind::NoSuchInterface:
        return "NoSuchInterface";
    case ErrorKind::InvalidArgument:
        return "InvalidArgument";
    case ErrorKind::InvalidFilter:
        return "InvalidFilter";
    case ErrorKind::QuotaExceeded:
        return "QuotaExceeded";
    case ErrorKind::NoSuchLease:
        return "NoSuchLease";
    case ErrorKind::NoSuchCapture:
        return "NoSuchCapture";
    case ErrorKind::NotOwner:
        return "NotOwner";
    case ErrorKind::AccessDenied:
        return "AccessDenied";
    case ErrorKind::InteractiveAuthorizationRequired:
        return "InteractiveAuthorizationRequired";
    case ErrorKind::LimitsExceeded:
        return "LimitsExceeded";
    case ErrorKind::NotSupported:
        return "NotSupported";
    case ErrorKind::DaemonUnreachable:
        return "DaemonUnreachable";
    }
    return "Failed";
}

ErrorKind error_kind(std::string_view name) noexcept {
    for (const auto& row : kTable)
        if (name == row.dbus || name == row.varlink)
            return row.kind;
    for (const auto& alias : kAliases)
        if (name == alias.name)
            return alias.kind;
    if (name.substr(0, kSpawnPrefix.size()) == kSpawnPrefix)
        return ErrorKind::DaemonUnreachable;
    return ErrorKind::Failed;
}

std::string_view dbus_error_name(ErrorKind kind) noexcept {
    for (const auto& row : kTable)
        if (row.kind == kind)
            return row.dbus;
    return {};
}

std::string_view varlink_error_name(ErrorKind kind) noexcept {
    for (const auto& row : kTable)
        if (row.kind == kind)
            return row.varlink;
    return {};
}

} // namespace promiscd::client
