// The D-Bus options dictionaries of AcquireLease and OpenCapture -> operation
// requests: an a{sv} built from the input (known and unknown keys, values of
// every basic D-Bus type and a few containers) -> bus::options_from ->
// ops::decode_acquire / ops::decode_capture, with the interface argument's
// display form (core::parse_display_name, validate_interface_name).
//
// Checked besides the sanitizers: decoding fails only with core::Error; what
// it accepts holds what was sent; and a raw link name survives the display
// form both ways (display_name is valid UTF-8 and parses back to the bytes).

#include "bus/bus_options.hpp"
#include "core/errors.hpp"
#include "core/names.hpp"
#include "ops/requests.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <sdbus-c++/Error.h>
#include <sdbus-c++/Types.h>
#include <string>
#include <vector>

using namespace promiscd;

namespace {

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_bus_options: %s\n", what.c_str());
    std::abort();
}

const char* const known_keys[] = {"ttl",     "reason", "wait",        "filter", "snaplen",
                                  "promisc", "format", "buffer_size", "count"};

sdbus::Variant value(FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange(0, 14)) {
    case 0:
        return sdbus::Variant(in.ConsumeRandomLengthString(64));
    case 1:
        return sdbus::Variant(in.ConsumeBool());
    case 2:
        return sdbus::Variant(in.ConsumeIntegral<uint8_t>());
    case 3:
        return sdbus::Variant(in.ConsumeIntegral<uint16_t>());
    case 4:
        return sdbus::Variant(in.ConsumeIntegral<uint32_t>());
    case 5:
        return sdbus::Variant(in.ConsumeIntegral<uint64_t>());
    case 6:
        return sdbus::Variant(in.ConsumeIntegral<int16_t>());
    case 7:
        return sdbus::Variant(in.ConsumeIntegral<int32_t>());
    case 8:
        return sdbus::Variant(in.ConsumeIntegral<int64_t>());
    case 9:
        return sdbus::Variant(in.ConsumeFloatingPoint<double>());
    case 10:
        return sdbus::Variant(std::vector<std::string>{in.ConsumeRandomLengthString(16)});
    case 11:
        return sdbus::Variant(sdbus::ObjectPath("/org/promiscd/x"));
    case 12:
        return sdbus::Variant(sdbus::Signature("a{sv}"));
    case 13:
        return sdbus::Variant(std::map<std::string, sdbus::Variant>{
            {in.ConsumeRandomLengthString(8), sdbus::Variant(in.ConsumeIntegral<uint32_t>())}});
    default:
        return sdbus::Variant(
            sdbus::Struct<uint32_t, std::string>(in.ConsumeIntegral<uint32_t>(), "x"));
    }
}

void check_display_round_trip(const std::string& raw) {
    const std::string shown = core::display_name(raw);
    if (!core::valid_utf8(shown))
        fail("display_name made invalid UTF-8");
    if (core::parse_display_name(shown) != raw)
        fail("display_name does not parse back to the raw name");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    const bool capture = in.ConsumeBool();
    const std::string interface = in.ConsumeRandomLengthString(32);
    std::map<std::string, sdbus::Variant> options;
    for (int n = 0; n < 12 && in.remaining_bytes() > 0; ++n) {
        std::string key =
            in.ConsumeBool()
                ? known_keys[in.ConsumeIntegralInRange<size_t>(0, std::size(known_keys) - 1)]
                : in.ConsumeRandomLengthString(16);
        try {
            options.insert_or_assign(std::move(key), value(in));
        } catch (const sdbus::Error&) {
            // Not UTF-8: sd-bus refuses to send it, so it never arrives.
        }
    }
    check_display_round_trip(interface);

    ops::Options decoded;
    try {
        decoded = bus::options_from(options);
    } catch (const std::exception& e) {
        fail(std::string("options_from threw: ") + e.what());
    }
    if (decoded.size() != options.size())
        fail("options_from lost an option");

    try {
        if (capture) {
            service::CaptureRequest r = ops::decode_capture(interface, decoded);
            if (r.interface != service::kAnyInterface)
                core::validate_interface_name(r.interface); // accepted means valid
            if (auto it = options.find("filter"); it != options.end())
                if (it->second.get<std::string>() != r.filter)
                    fail("the filter changed on the way");
        } else {
            core::LeaseRequest r = ops::decode_acquire(interface, decoded);
            core::validate_interface_name(r.interface);
            if (core::parse_display_name(interface) != r.interface)
                fail("the interface changed on the way");
            if (auto it = options.find("reason"); it != options.end())
                if (it->second.get<std::string>() != r.reason)
                    fail("the reason changed on the way");
            if (auto it = options.find("ttl"); it != options.end()) {
                const ops::Value& v = decoded.at("ttl");
                const uint64_t seconds =
                    v.kind == ops::Value::Kind::Signed ? static_cast<uint64_t>(v.i) : v.u;
                if (!r.ttl || *r.ttl != ops::decode_ttl(seconds))
                    fail("the ttl changed on the way");
            }
        }
    } catch (const core::Error& e) {
        if (e.code() != core::ErrorCode::InvalidArgument)
            fail(std::string("a bad request is not InvalidArgument: ") + e.what());
    } catch (const std::exception& e) {
        fail(std::string("decoding threw something other than core::Error: ") + e.what());
    }
    return 0;
}
