#include "errors.hpp"

namespace promiscd::core {

std::string_view error_name(ErrorCode code) {
    switch (code) {
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
    case ErrorCode::Failed:
        return "Failed";
    case ErrorCode::LimitsExceeded:
        return "LimitsExceeded";
    }
    return "Failed";
}

} // namespace promiscd::core
