// The configuration file parser (config::parse): any text, as if it were
// /etc/promiscd/promiscd.json. It fails only with ConfigError; what it
// accepts is within the bounds it documents.

#include "config/config.hpp"
#include "core/errors.hpp"
#include "core/names.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

using namespace promiscd;

namespace {

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_config: %s\n", what.c_str());
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    config::Config c;
    try {
        c = config::parse(text, "fuzz.json");
    } catch (const config::ConfigError& e) {
        // Messages name the file.
        if (std::string(e.what()).rfind("fuzz.json: ", 0) != 0)
            fail(std::string("a message that does not name the file: ") + e.what());
        return 0;
    } catch (const std::exception& e) {
        fail(std::string("parse threw something other than ConfigError: ") + e.what());
    }
    if (c.limits.leases_per_uid == 0 || c.limits.leases_total == 0 ||
        c.limits.conflict_max_clears == 0 || c.limits.conflict_window == 0 ||
        c.varlink_max_message_bytes < 1024 || c.authorization.in_flight_total == 0)
        fail("a limit of 0 was accepted");
    for (const auto& s : c.static_leases) {
        try {
            core::validate_interface_name(s.interface);
        } catch (const core::Error&) {
            fail("a static lease on an invalid name was accepted");
        }
    }
    for (const auto& [match, policy] : c.policies)
        if (match.empty())
            fail("an empty policy pattern was accepted");
    return 0;
}
