// Where the lease service writes what it must not forget across a crash: every
// lease, and every link whose flag promiscd set. Written ahead: a lease is
// recorded before it is granted, a daemon-set flag before the RTM_SETLINK
// that sets it; they are removed after the lease ended and the flag was
// cleared. Each call costs the same whatever the number of leases.
#pragma once

#include "core/arbiter.hpp"

#include <stdexcept>
#include <string>

namespace promiscd::service {

class RecordError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class Recorder {
public:
    virtual ~Recorder() = default;
    // Throw RecordError naming what failed; nothing is granted then.
    virtual void save_lease(const core::Lease& lease) = 0;
    virtual void save_flag(int ifindex, const std::string& name) = 0;
    // Best effort (a leftover record is reconciled at the next start).
    virtual void remove_lease(core::LeaseId id) noexcept = 0;
    virtual void remove_flag(int ifindex) noexcept = 0;
    // Why records cannot be written now (empty when they can), for start-up.
    virtual std::string unusable() const = 0;
    virtual const std::string& where() const = 0;
};

} // namespace promiscd::service
