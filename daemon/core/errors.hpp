// The closed set of errors the daemon reports to clients. Front ends map each
// code to its wire name (org.promiscd.Promisc1.Error.<Name> on D-Bus).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace promiscd::core {

enum class ErrorCode {
    NoSuchInterface,
    InvalidArgument,
    InvalidFilter,
    QuotaExceeded,
    NoSuchLease,
    NoSuchCapture,
    NotOwner,
    AccessDenied,
    InteractiveAuthorizationRequired,
    Failed, // the kernel or another component refused; the message says what
    // Too many requests of this caller (or of everyone) are waiting, or a
    // costly read came too often: nothing was done; try again later.
    LimitsExceeded,
};

// "NoSuchInterface", "InvalidArgument", ...
std::string_view error_name(ErrorCode code);

class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const { return code_; }

private:
    ErrorCode code_;
};

} // namespace promiscd::core
