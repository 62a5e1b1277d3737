// The audit journal: who turned promiscuous mode on or off, on which link,
// why; every lease granted and ended (with the revoker and their reason);
// every request refused, with who asked. Records carry structured fields and
// stable MESSAGE_IDs. Changes come from the change stream (a projection);
// refusals from the operations layer. Refusals are rate-limited per uid, so a
// flood of bad requests cannot flood the journal: what is suppressed is
// counted and reported.
#pragma once

#include "core/errors.hpp"
#include "ops/caller.hpp"
#include "service/changes.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

namespace promiscd::ops {

// What a refused request was about, for its record.
struct Target {
    std::string link;                   // raw name, when the request named one
    std::optional<core::LeaseId> lease; // when it named a lease
    std::optional<uint64_t> capture;    // when it named a capture
};

class Audit final : public service::ChangeListener {
public:
    // now: CLOCK_MONOTONIC microseconds, for the rate limit.
    explicit Audit(std::function<uint64_t()> now);

    void on_change(const service::Change& change) override;
    // A refused request: `operation` is "acquire", "release", "renew",
    // "revoke", "set-link-policy", "open-capture" or "stop-capture".
    void denied(const std::string& operation, const Caller& caller, const Target& target,
                const core::Error& error);

    uint64_t suppressed() const { return suppressed_total_; }

private:
    struct Bucket {
        double tokens = 0;
        uint64_t last = 0;
        uint64_t suppressed = 0;
    };
    bool admit(uint32_t uid, uint64_t& suppressed_before);

    std::function<uint64_t()> now_;
    std::unordered_map<uint32_t, Bucket> buckets_;
    uint64_t suppressed_total_ = 0;
};

} // namespace promiscd::ops
