// The client library's one error table: every name either transport uses
// maps to the kind a caller handles, and the two transports agree.
#include "client/errors.hpp"

#include <gtest/gtest.h>
#include <string>
#include <vector>

namespace {

using promiscd::client::dbus_error_name;
using promiscd::client::error_kind;
using promiscd::client::ErrorKind;
using promiscd::client::to_string;
using promiscd::client::varlink_error_name;

struct Case {
    const char* name;
    ErrorKind kind;
};

TEST(ClientErrors, EveryNameOfBothTransports) {
    const std::vector<Case> cases = {
        // promiscd's own errors, D-Bus then varlink
        {"org.promiscd.Promisc1.Error.NoSuchInterface", ErrorKind::NoSuchInterface},
        {"org.promiscd.promisc.NoSuchInterface", ErrorKind::NoSuchInterface},
        {"org.promiscd.Promisc1.Error.InvalidArgument", ErrorKind::InvalidArgument},
        {"org.promiscd.promisc.InvalidArgument", ErrorKind::InvalidArgument},
        {"org.promiscd.Promisc1.Error.InvalidFilter", ErrorKind::InvalidFilter},
        {"org.promiscd.promisc.InvalidFilter", ErrorKind::InvalidFilter},
        {"org.promiscd.Promisc1.Error.QuotaExceeded", ErrorKind::QuotaExceeded},
        {"org.promiscd.promisc.QuotaExceeded", ErrorKind::QuotaExceeded},
        {"org.promiscd.Promisc1.Error.NoSuchLease", ErrorKind::NoSuchLease},
        {"org.promiscd.promisc.NoSuchLease", ErrorKind::NoSuchLease},
        {"org.promiscd.Promisc1.Error.NoSuchCapture", ErrorKind::NoSuchCapture},
        {"org.promiscd.promisc.NoSuchCapture", ErrorKind::NoSuchCapture},
        {"org.promiscd.Promisc1.Error.NotOwner", ErrorKind::NotOwner},
        {"org.promiscd.promisc.NotOwner", ErrorKind::NotOwner},
        // polkit's answers and the bus's standard errors
        {"org.freedesktop.DBus.Error.AccessDenied", ErrorKind::AccessDenied},
        {"org.promiscd.promisc.AccessDenied", ErrorKind::AccessDenied},
        {"org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
         ErrorKind::InteractiveAuthorizationRequired},
        {"org.promiscd.promisc.InteractiveAuthorizationRequired",
         ErrorKind::InteractiveAuthorizationRequired},
        {"org.freedesktop.DBus.Error.LimitsExceeded", ErrorKind::LimitsExceeded},
        {"org.promiscd.promisc.LimitsExceeded", ErrorKind::LimitsExceeded},
        {"org.freedesktop.DBus.Error.Failed", ErrorKind::Failed},
        {"org.promiscd.promisc.Failed", ErrorKind::Failed},
        {"org.freedesktop.DBus.Error.NotSupported", ErrorKind::NotSupported},
        // the varlink service's own errors
        {"org.varlink.service.InvalidParameter", ErrorKind::InvalidArgument},
        {"org.varlink.service.MethodNotFound", ErrorKind::NotSupported},
        {"org.varlink.service.InterfaceNotFound", ErrorKind::NotSupported},
        {"org.varlink.service.MethodNotImplemented", ErrorKind::NotSupported},
        // nobody there
        {"org.freedesktop.DBus.Error.ServiceUnknown", ErrorKind::DaemonUnreachable},
        {"org.freedesktop.DBus.Error.NameHasNoOwner", ErrorKind::DaemonUnreachable},
        {"org.freedesktop.DBus.Error.NoReply", ErrorKind::DaemonUnreachable},
        {"org.freedesktop.DBus.Error.Spawn.ExecFailed", ErrorKind::DaemonUnreachable},
        {"System.Error.ECONNREFUSED", ErrorKind::DaemonUnreachable},
        // anything else is a plain failure, never a kind it is not
        {"org.promiscd.Promisc1.Error.Frobnicated", ErrorKind::Failed},
        {"org.promiscd.promisc.Frobnicated", ErrorKind::Failed},
        {"org.promiscd.Promisc1.Error.", ErrorKind::Failed},
        {"org.promiscd.Promisc1.Error.NoSuchInterfaceX", ErrorKind::Failed},
        {"NoSuchInterface", ErrorKind::Failed},
        {"org.freedesktop.DBus.Error.UnknownMethod", ErrorKind::Failed},
        {"", ErrorKind::Failed},
    };
    for (const auto& c : cases)
        EXPECT_EQ(to_string(error_kind(c.name)), to_string(c.kind)) << c.name;
}

TEST(ClientErrors, BothTransportsNameEveryKindTheDaemonSends) {
    for (ErrorKind k : {ErrorKind::Failed, ErrorKind::NoSuchInterface, ErrorKind::InvalidArgument,
                        ErrorKind::InvalidFilter, ErrorKind::QuotaExceeded, ErrorKind::NoSuchLease,
                        ErrorKind::NoSuchCapture, ErrorKind::NotOwner, ErrorKind::AccessDenied,
                        ErrorKind::InteractiveAuthorizationRequired, ErrorKind::LimitsExceeded}) {
        SCOPED_TRACE(std::string(to_string(k)));
        ASSERT_FALSE(dbus_error_name(k).empty());
        ASSERT_FALSE(varlink_error_name(k).empty());
        EXPECT_EQ(to_string(error_kind(dbus_error_name(k))), to_string(k));
        EXPECT_EQ(to_string(error_kind(varlink_error_name(k))), to_string(k));
    }
    // Found locally, never sent.
    EXPECT_TRUE(dbus_error_name(ErrorKind::DaemonUnreachable).empty());
    EXPECT_TRUE(varlink_error_name(ErrorKind::DaemonUnreachable).empty());
}

TEST(ClientErrors, KindNames) {
    EXPECT_EQ(to_string(ErrorKind::LimitsExceeded), "LimitsExceeded");
    EXPECT_EQ(to_string(ErrorKind::InteractiveAuthorizationRequired),
              "InteractiveAuthorizationRequired");
    EXPECT_EQ(to_string(ErrorKind::DaemonUnreachable), "DaemonUnreachable");
}

} // namespace
