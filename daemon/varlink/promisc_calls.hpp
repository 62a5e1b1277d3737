// The calls of org.promiscd.promisc decoded into what each operation takes:
// parameter names and types, and the operation's options (ops/requests). No
// I/O and no state, so the varlink handler only dispatches what comes out, and
// the fuzzer and the tests can reach every check without a daemon.
#pragma once

#include "core/arbiter.hpp"
#include "service/capture_service.hpp"
#include "varlink/varlink_server.hpp"

#include <optional>
#include <string>
#include <variant>

namespace promiscd::varlink {

namespace calls {
struct ListLinks {};
struct ListLeases {};
struct Acquire {
    core::LeaseRequest request;
};
struct Release {
    core::LeaseId id = 0;
};
struct Renew {
    core::LeaseId id = 0;
    core::Usec ttl = 0;
};
struct Revoke {
    core::LeaseId id = 0;
    std::string reason;
};
struct SetLinkPolicy {
    std::string interface; // raw bytes
    core::Policy policy = core::Policy::Enforce;
};
struct Monitor {};
struct OpenCapture {
    service::CaptureRequest request;
};
struct StopCapture {
    service::CaptureId id = 0;
};
} // namespace calls

using Request = std::variant<calls::ListLinks, calls::ListLeases, calls::Acquire, calls::Release,
                             calls::Renew, calls::Revoke, calls::SetLinkPolicy, calls::Monitor,
                             calls::OpenCapture, calls::StopCapture>;

struct DecodedCall {
    Request request;
    // allowInteractiveAuthentication (absent or null: false).
    bool interactive = false;
};

// nullopt when the method is not one of org.promiscd.promisc's. Throws
// core::Error (InvalidArgument) naming the parameter or option at fault.
std::optional<DecodedCall> decode_call(const Call& call);

} // namespace promiscd::varlink
