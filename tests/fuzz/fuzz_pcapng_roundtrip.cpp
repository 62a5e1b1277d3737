// The capture format both ways: what the daemon's pcapng writer makes of a
// capture (section, interfaces, packets appended whole or gathered from
// pieces, the statistics at the end), read back by the client's parser fed in
// pieces. Every field written must be read back as it was written.

#include "capture/pcapng_writer.hpp"
#include "client/capture_reader.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/uio.h>
#include <vector>

namespace pcapng = promiscd::capture::pcapng;
using promiscd::client::CaptureStreamError;
using promiscd::client::Frame;
using promiscd::client::PcapngParser;

namespace {

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_pcapng_roundtrip: %s\n", what.c_str());
    std::abort();
}

struct Written {
    uint32_t interface_id;
    uint64_t ts_ns;
    uint32_t origlen;
    std::vector<uint8_t> data;
};

template <class B>
void run(FuzzedDataProvider& in) {
    B stream;
    pcapng::SectionInfo section;
    section.hardware = in.ConsumeRandomLengthString(32);
    section.os = in.ConsumeRandomLengthString(32);
    section.application = in.ConsumeRandomLengthString(32);
    pcapng::append_section_header(stream, section);

    std::vector<pcapng::InterfaceDescription> interfaces(in.ConsumeIntegralInRange(1, 4));
    for (auto& idb : interfaces) {
        idb.link_type = in.ConsumeIntegral<uint16_t>();
        idb.snaplen = in.ConsumeIntegral<uint32_t>();
        idb.name = in.ConsumeRandomLengthString(32);
        idb.description = in.ConsumeRandomLengthString(64);
        idb.filter = in.ConsumeRandomLengthString(128);
        pcapng::append_interface_description(stream, idb);
    }

    std::vector<Written> packets(in.ConsumeIntegralInRange(0, 16));
    for (auto& p : packets) {
        p.interface_id = in.ConsumeIntegralInRange<uint32_t>(0, interfaces.size() - 1);
        p.ts_ns = in.ConsumeIntegral<uint64_t>();
        p.origlen = in.ConsumeIntegral<uint32_t>();
        p.data = in.ConsumeBytes<uint8_t>(in.ConsumeIntegralInRange(0, 300));
        if (in.ConsumeBool()) {
            pcapng::append_epb(stream, p.interface_id, p.ts_ns,
                               static_cast<uint32_t>(p.data.size()), p.origlen, p.data.data());
        } else {
            // Gathered, as the relay does from a record layout: up to three pieces.
            const size_t cut1 = in.ConsumeIntegralInRange<size_t>(0, p.data.size());
            const size_t cut2 = in.ConsumeIntegralInRange<size_t>(cut1, p.data.size());
            iovec pieces[3] = {{p.data.data(), cut1},
                               {p.data.data() + cut1, cut2 - cut1},
                               {p.data.data() + cut2, p.data.size() - cut2}};
            pcapng::append_epb(stream, p.interface_id, p.ts_ns, p.origlen,
                               std::span<const iovec>(pieces, 3));
        }
    }

    std::optional<pcapng::InterfaceStatistics> isb;
    if (in.ConsumeBool()) {
        isb.emplace();
        isb->interface_id = in.ConsumeIntegralInRange<uint32_t>(0, interfaces.size() - 1);
        isb->timestamp_ns = in.ConsumeIntegral<uint64_t>();
        auto maybe = [&]() -> std::optional<uint64_t> {
            if (in.ConsumeBool())
                return in.ConsumeIntegral<uint64_t>();
            return std::nullopt;
        };
        isb->start_ns = maybe();
        isb->end_ns = maybe();
        isb->received = maybe();
        isb->interface_dropped = maybe();
        isb->os_dropped = maybe();
        pcapng::append_interface_statistics(stream, *isb);
    }

    // Read back in pieces of every size from 1 byte up.
    const size_t piece = in.ConsumeIntegralInRange<size_t>(1, stream.size());
    PcapngParser parser;
    std::vector<Frame> frames;
    try {
        for (size_t at = 0; at < stream.size(); at += piece) {
            const size_t n = std::min(piece, stream.size() - at);
            parser.feed({reinterpret_cast<const uint8_t*>(stream.data()) + at, n});
            while (auto f = parser.next_frame())
                frames.push_back(std::move(*f));
        }
    } catch (const CaptureStreamError& e) {
        fail(std::string("the reader refused what the writer wrote: ") + e.what());
    }
    if (parser.buffered() != 0)
        fail("bytes left over after the last block");

    if (parser.interfaces().size() != interfaces.size())
        fail("interfaces lost or invented");
    for (size_t i = 0; i < interfaces.size(); ++i) {
        const auto& w = interfaces[i];
        const auto& r = parser.interfaces()[i];
        if (r.link_type != w.link_type || r.snaplen != w.snaplen || r.name != w.name ||
            r.description != w.description || r.filter != w.filter)
            fail("interface " + std::to_string(i) + " read back differently");
    }
    if (frames.size() != packets.size())
        fail("packets lost or invented: wrote " + std::to_string(packets.size()) + ", read " +
             std::to_string(frames.size()));
    for (size_t i = 0; i < packets.size(); ++i) {
        const auto& w = packets[i];
        const auto& r = frames[i];
        if (r.interface_id != w.interface_id || r.timestamp_ns != w.ts_ns ||
            r.original_length != w.origlen || r.data != w.data ||
            r.link_type != interfaces[w.interface_id].link_type)
            fail("packet " + std::to_string(i) + " read back differently");
    }
    const auto& stats = parser.statistics();
    if (stats.has_value() != isb.has_value())
        fail("statistics lost or invented");
    if (isb &&
        (stats->interface_id != isb->interface_id || stats->timestamp_ns != isb->timestamp_ns ||
         stats->start_ns != isb->start_ns || stats->end_ns != isb->end_ns ||
         stats->received != isb->received || stats->interface_dropped != isb->interface_dropped ||
         stats->os_dropped != isb->os_dropped || stats->filter_accepted || stats->delivered))
        fail("statistics read back differently");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    // Both buffer types the writer is instantiated for.
    if (in.ConsumeBool())
        run<std::string>(in);
    else
        run<std::vector<uint8_t>>(in);
    return 0;
}
