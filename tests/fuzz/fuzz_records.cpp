// The state records reader: a lease record as the daemon finds it under its
// runtime directory after a crash (RecordStore::lease_from_text), and the
// writer -> reader round trip (lease_to_text -> lease_from_text), for a record
// that parsed and for a lease built from the input with any bytes in its
// strings.
//
// Checked besides the sanitizers: reading fails only with RecordError; a
// number is read as written or not at all; what was read is written and read
// back unchanged; what the daemon writes always
// reads back, unchanged when its strings are UTF-8.

#include "core/errors.hpp"
#include "core/names.hpp"
#include "service/recorder.hpp"
#include "state/record_store.hpp"

#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

using namespace promiscd;
using state::RecordStore;

namespace {

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_records: %s\n", what.c_str());
    std::abort();
}

std::optional<core::Lease> read(const std::string& text) {
    try {
        return RecordStore::lease_from_text(text);
    } catch (const service::RecordError&) {
        return std::nullopt;
    } catch (const std::exception& e) {
        fail(std::string("lease_from_text threw something other than RecordError: ") + e.what());
    }
}

core::Lease built(FuzzedDataProvider& in) {
    core::Lease l;
    l.id = in.ConsumeIntegralInRange<core::LeaseId>(1, UINT64_MAX);
    l.interface = in.ConsumeRandomLengthString(15);
    if (l.interface.empty())
        l.interface = "eth0";
    l.owner.transport = in.ConsumeRandomLengthString(8);
    l.owner.id = in.ConsumeRandomLengthString(16);
    l.owner.uid = in.ConsumeIntegral<uint32_t>();
    l.owner.pid = in.ConsumeIntegral<uint32_t>();
    l.owner.command = in.ConsumeRandomLengthString(16);
    l.reason = in.ConsumeRandomLengthString(64);
    l.acquired = in.ConsumeIntegral<uint64_t>();
    if (in.ConsumeBool())
        l.expires = in.ConsumeIntegral<uint64_t>();
    l.capture = in.ConsumeBool();
    return l;
}

// A number read from a record is the number written there: no sign, no
// fraction, no bits cut off.
void check_number(const nlohmann::json& j, uint64_t read, uint64_t max, const char* key) {
    if (!j.is_number_unsigned() || j.get<uint64_t>() != read || read > max)
        fail(std::string("'") + key + "' was read as " + std::to_string(read) + " from " +
             j.dump());
}

void check_numbers(const std::string& text, const core::Lease& l) {
    const auto j = nlohmann::json::parse(text);
    check_number(j.at("id"), l.id, UINT64_MAX, "id");
    check_number(j.at("acquired"), l.acquired, UINT64_MAX, "acquired");
    if (l.expires)
        check_number(j.at("expires"), *l.expires, UINT64_MAX, "expires");
    check_number(j.at("owner").at("uid"), l.owner.uid, UINT32_MAX, "uid");
    check_number(j.at("owner").at("pid"), l.owner.pid, UINT32_MAX, "pid");
}

bool utf8(const core::Lease& l) {
    return core::valid_utf8(l.owner.transport) && core::valid_utf8(l.owner.id) &&
           core::valid_utf8(l.owner.command) && core::valid_utf8(l.reason);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    if (auto l = read(text)) {
        check_numbers(text, *l);
        auto again = read(RecordStore::lease_to_text(*l));
        if (!again)
            fail("a lease that was read cannot be read back after writing it");
        if (!(*again == *l))
            fail("a lease changed on its way through lease_to_text");
    }

    FuzzedDataProvider in(data, size);
    core::Lease l = built(in);
    bool valid_name = true;
    try {
        core::validate_interface_name(l.interface);
    } catch (const core::Error&) {
        valid_name = false; // the arbiter never holds such a lease
    }
    if (!valid_name)
        return 0;
    const std::string written = RecordStore::lease_to_text(l);
    auto back = read(written);
    if (!back)
        fail("a record the daemon wrote does not read back: " + written);
    if (utf8(l) && !(*back == l))
        fail("a lease changed on its way through its record: " + written);
    if (back->interface != l.interface)
        fail("the interface changed on its way through its record: " + written);
    return 0;
}
