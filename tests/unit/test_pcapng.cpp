// The pcapng and pcap writers: block layout checked byte by byte, and files
// checked by readers nobody here wrote (tshark, capinfos, tcpdump).
#include "capture/bytes.hpp"
#include "capture/pcap_writer.hpp"
#include "capture/pcapng_writer.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>
#include <string>
#include <vector>

// Counts allocations so a test can show that appending a packet to a buffer
// with room does not allocate.
namespace {
std::atomic<long> g_allocations{0};
} // namespace

// noinline: keeps GCC from pairing the malloc and free across call sites
// (-Wmismatched-new-delete).
__attribute__((noinline)) void* operator new(std::size_t size) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) {
        return p;
    }
    throw std::bad_alloc();
}
__attribute__((noinline)) void operator delete(void* p) noexcept {
    std::free(p);
}
__attribute__((noinline)) void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

namespace {

using namespace promiscd::capture;
namespace fs = std::filesystem;

using Bytes = std::vector<std::uint8_t>;

std::uint32_t u32(const Bytes& b, std::size_t at) {
    std::uint32_t v;
    std::memcpy(&v, b.data() + at, 4);
    return v;
}

std::uint16_t u16(const Bytes& b, std::size_t at) {
    std::uint16_t v;
    std::memcpy(&v, b.data() + at, 2);
    return v;
}

std::uint64_t u64(const Bytes& b, std::size_t at) {
    std::uint64_t v;
    std::memcpy(&v, b.data() + at, 8);
    return v;
}

// An Ethernet frame of `size` bytes; with a VLAN id, 802.1Q-tagged.
Bytes make_frame(std::size_t size, int vlan = -1, std::uint8_t seed = 0) {
    Bytes f(size);
    for (std::size_t i = 0; i < size; ++i) {
        f[i] = static_cast<std::uint8_t>(seed + i * 7);
    }
    if (size < 18) {
        return f; // too short for a header: a pattern is enough
    }
    const std::uint8_t dst[6] = {0x02, 0, 0, 0, 0, 1};
    const std::uint8_t src[6] = {0x02, 0, 0, 0, 0, 2};
    std::memcpy(f.data(), dst, 6);
    std::memcpy(f.data() + 6, src, 6);
    std::size_t at = 12;
    if (vlan >= 0) {
        f[at++] = 0x81;
        f[at++] = 0x00;
        f[at++] = static_cast<std::uint8_t>((vlan >> 8) & 0x0f);
        f[at++] = static_cast<std::uint8_t>(vlan);
    }
    f[at++] = 0x88; // local experimental ethertype: no dissector guesses
    f[at++] = 0xb5;
    return f;
}

struct Options {
    std::size_t next = 0; // offset after the last option
    std::vector<std::pair<std::uint16_t, Bytes>> list;
};

// Walks options from `at` to the block's trailing length, checking alignment.
Options parse_options(const Bytes& b, std::size_t at, std::size_t block_end) {
    Options o;
    while (at + 4 <= block_end - 4) {
        const std::uint16_t code = u16(b, at);
        const std::uint16_t len = u16(b, at + 2);
        at += 4;
        if (code == 0) {
            EXPECT_EQ(len, 0);
            break;
        }
        o.list.emplace_back(code, Bytes(b.data() + at, b.data() + at + len));
        at += (len + 3u) & ~3u;
    }
    o.next = at;
    return o;
}

Bytes option(const Options& o, std::uint16_t code) {
    for (const auto& [c, v] : o.list) {
        if (c == code) {
            return v;
        }
    }
    ADD_FAILURE() << "option " << code << " missing";
    return {};
}

Bytes text(std::string_view s) {
    return Bytes(s.begin(), s.end());
}

struct Command {
    int status = -1;
    std::string out;
};

// Runs a shell command line; stderr goes to the test's log.
Command run(const std::string& cmdline) {
    Command result;
    FILE* pipe = popen(cmdline.c_str(), "r");
    if (pipe == nullptr) {
        ADD_FAILURE() << "cannot run: " << cmdline;
        return result;
    }
    char chunk[4096];
    std::size_t n = 0;
    while ((n = fread(chunk, 1, sizeof chunk, pipe)) > 0) {
        result.out.append(chunk, n);
    }
    const int status = pclose(pipe);
    result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string line; std::getline(in, line);) {
        out.push_back(line);
    }
    return out;
}

class TempDir : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/promiscd-pcapng-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    std::string write(const std::string& name, const Bytes& bytes) {
        const fs::path path = dir_ / name;
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()),
                   static_cast<std::streamsize>(bytes.size()));
        return path.string();
    }
    fs::path dir_;
};

TEST(PcapngWriter, SectionHeaderBlock) {
    Bytes b;
    pcapng::append_section_header(b, {.hardware = "x86_64", .os = "Linux", .application = "t"});
    ASSERT_GE(b.size(), 28u);
    EXPECT_EQ(u32(b, 0), 0x0A0D0D0Au);
    EXPECT_EQ(u32(b, 4), b.size());
    EXPECT_EQ(u32(b, b.size() - 4), b.size());
    EXPECT_EQ(b.size() % 4, 0u);
    EXPECT_EQ(u32(b, 8), 0x1A2B3C4Du);
    EXPECT_EQ(u16(b, 12), 1);
    EXPECT_EQ(u16(b, 14), 0);
    EXPECT_EQ(static_cast<std::int64_t>(u64(b, 16)), -1);
    const Options o = parse_options(b, 24, b.size());
    EXPECT_EQ(option(o, 2), text("x86_64"));
    EXPECT_EQ(option(o, 3), text("Linux"));
    EXPECT_EQ(option(o, 4), text("t"));
    EXPECT_EQ(o.next, b.size() - 4); // opt_endofopt, then the trailing length
}

TEST(PcapngWriter, SectionHeaderWithoutOptionsIsMinimal) {
    Bytes b;
    pcapng::append_section_header(b);
    EXPECT_EQ(b.size(), 32u); // 28 + opt_endofopt
    EXPECT_EQ(u32(b, 4), 32u);
}

TEST(PcapngWriter, InterfaceDescriptionBlock) {
    Bytes b;
    pcapng::append_interface_description(b, {.link_type = kLinkTypeLinuxSll2,
                                             .snaplen = 1500,
                                             .name = "eth0",
                                             .description = "uplink",
                                             .filter = "udp port 9"});
    EXPECT_EQ(u32(b, 0), 1u);
    EXPECT_EQ(u32(b, 4), b.size());
    EXPECT_EQ(u32(b, b.size() - 4), b.size());
    EXPECT_EQ(u16(b, 8), 276);
    EXPECT_EQ(u16(b, 10), 0);
    EXPECT_EQ(u32(b, 12), 1500u);
    const Options o = parse_options(b, 16, b.size());
    EXPECT_EQ(option(o, 2), text("eth0"));
    EXPECT_EQ(option(o, 3), text("uplink"));
    EXPECT_EQ(option(o, 9), Bytes{9});
    Bytes filter{0};
    const Bytes expr = text("udp port 9");
    filter.insert(filter.end(), expr.begin(), expr.end());
    EXPECT_EQ(option(o, 11), filter);
    EXPECT_EQ(o.next, b.size() - 4);
}

TEST(PcapngWriter, InterfaceDescriptionOmitsEmptyStrings) {
    Bytes b;
    pcapng::append_interface_description(b, {.link_type = kLinkTypeEthernet, .snaplen = 0});
    const Options o = parse_options(b, 16, b.size());
    ASSERT_EQ(o.list.size(), 1u);
    EXPECT_EQ(o.list[0].first, 9);
}

TEST(PcapngWriter, EnhancedPacketBlockPadsTo32Bits) {
    for (std::uint32_t caplen : {0u, 1u, 2u, 3u, 4u, 5u, 60u, 61u, 1514u}) {
        const Bytes data = make_frame(caplen);
        Bytes b;
        const std::uint64_t ts = 0x0001'0203'0405'0607;
        pcapng::append_epb(b, 3, ts, caplen, caplen + 100, data.data());
        SCOPED_TRACE(caplen);
        ASSERT_EQ(b.size(), pcapng::epb_size(caplen));
        EXPECT_EQ(b.size() % 4, 0u);
        EXPECT_EQ(b.size(), 32 + ((caplen + 3) & ~3u));
        EXPECT_EQ(u32(b, 0), 6u);
        EXPECT_EQ(u32(b, 4), b.size());
        EXPECT_EQ(u32(b, 8), 3u);
        EXPECT_EQ(u32(b, 12), 0x00010203u); // high word first
        EXPECT_EQ(u32(b, 16), 0x04050607u);
        EXPECT_EQ(u32(b, 20), caplen);
        EXPECT_EQ(u32(b, 24), caplen + 100);
        EXPECT_TRUE(std::equal(data.begin(), data.end(), b.begin() + 28));
        for (std::size_t i = 28 + caplen; i < b.size() - 4; ++i) {
            EXPECT_EQ(b[i], 0) << "padding byte " << i;
        }
        EXPECT_EQ(u32(b, b.size() - 4), b.size());
    }
}

TEST(PcapngWriter, GatherAndFramingProduceTheSameBlock) {
    const Bytes data = make_frame(123, 5);
    Bytes plain;
    pcapng::append_epb(plain, 1, 42, 123, 200, data.data());

    const std::array<iovec, 2> pieces{
        iovec{const_cast<std::uint8_t*>(data.data()), 20},
        iovec{const_cast<std::uint8_t*>(data.data() + 20), 103},
    };
    std::string gathered;
    pcapng::append_epb(gathered, 1, 42, 200, pieces);
    EXPECT_EQ(Bytes(gathered.begin(), gathered.end()), plain);

    pcapng::EpbFraming framing(1, 42, 123, 200);
    const iovec header = framing.header();
    const iovec trailer = framing.trailer();
    EXPECT_EQ(header.iov_len, pcapng::kEpbHeaderSize);
    EXPECT_EQ(trailer.iov_len, 1u + 4u);
    Bytes framed(static_cast<std::uint8_t*>(header.iov_base),
                 static_cast<std::uint8_t*>(header.iov_base) + header.iov_len);
    framed.insert(framed.end(), data.begin(), data.end());
    framed.insert(framed.end(), static_cast<std::uint8_t*>(trailer.iov_base),
                  static_cast<std::uint8_t*>(trailer.iov_base) + trailer.iov_len);
    EXPECT_EQ(framed, plain);
}

TEST(PcapngWriter, AppendingPacketsToAReservedBufferDoesNotAllocate) {
    const Bytes data = make_frame(1514);
    Bytes vec;
    std::string str;
    vec.reserve(std::size_t{64} << 10);
    str.reserve(std::size_t{64} << 10);
    const std::array<iovec, 1> pieces{iovec{const_cast<std::uint8_t*>(data.data()), 1514}};
    const auto* before = vec.data();
    const long allocations = g_allocations.load();
    for (int i = 0; i < 20; ++i) {
        pcapng::append_epb(vec, 0, 1000u + i, 1514, 1514, data.data());
        pcapng::append_epb(str, 0, 1000u + i, 1514, pieces);
        pcap::append_record(vec, 1000u + i, 1514, 1514, data.data());
    }
    EXPECT_EQ(g_allocations.load(), allocations);
    EXPECT_EQ(vec.data(), before);
}

TEST(PcapngWriter, InterfaceStatisticsBlock) {
    Bytes b;
    pcapng::append_interface_statistics(b, {.interface_id = 2,
                                            .timestamp_ns = 0x1'0000'0002,
                                            .start_ns = 0x3'0000'0004,
                                            .end_ns = 0x5'0000'0006,
                                            .received = 1000,
                                            .interface_dropped = 7,
                                            .os_dropped = 3});
    EXPECT_EQ(u32(b, 0), 5u);
    EXPECT_EQ(u32(b, 4), b.size());
    EXPECT_EQ(u32(b, b.size() - 4), b.size());
    EXPECT_EQ(u32(b, 8), 2u);
    EXPECT_EQ(u32(b, 12), 1u);
    EXPECT_EQ(u32(b, 16), 2u);
    const Options o = parse_options(b, 20, b.size());
    const Bytes start = option(o, 2);
    ASSERT_EQ(start.size(), 8u);
    EXPECT_EQ(u32(start, 0), 3u); // high word, then low word
    EXPECT_EQ(u32(start, 4), 4u);
    const Bytes end = option(o, 3);
    ASSERT_EQ(end.size(), 8u);
    EXPECT_EQ(u32(end, 0), 5u);
    EXPECT_EQ(u32(end, 4), 6u);
    EXPECT_EQ(u64(option(o, 4), 0), 1000u);
    EXPECT_EQ(u64(option(o, 5), 0), 7u);
    EXPECT_EQ(u64(option(o, 7), 0), 3u);
    EXPECT_EQ(o.next, b.size() - 4);
}

TEST(PcapngWriter, OversizedOptionIsRefusedByName) {
    Bytes b;
    try {
        pcapng::append_interface_description(b, {.filter = std::string(70000, 'x')});
        FAIL() << "no exception";
    } catch (const std::length_error& e) {
        EXPECT_NE(std::string(e.what()).find("if_filter"), std::string::npos) << e.what();
    }
}

TEST(PcapWriter, HeaderAndRecords) {
    Bytes b;
    pcap::append_file_header(b, kLinkTypeEthernet, 65535);
    ASSERT_EQ(b.size(), 24u);
    EXPECT_EQ(u32(b, 0), 0xa1b23c4du);
    EXPECT_EQ(u16(b, 4), 2);
    EXPECT_EQ(u16(b, 6), 4);
    EXPECT_EQ(u32(b, 8), 0u);
    EXPECT_EQ(u32(b, 12), 0u);
    EXPECT_EQ(u32(b, 16), 65535u);
    EXPECT_EQ(u32(b, 20), 1u);
    const Bytes data = make_frame(61);
    pcap::append_record(b, 1'700'000'000'123'456'789, 61, 1000, data.data());
    ASSERT_EQ(b.size(), 24u + 16 + 61); // no padding in pcap
    EXPECT_EQ(u32(b, 24), 1'700'000'000u);
    EXPECT_EQ(u32(b, 28), 123'456'789u);
    EXPECT_EQ(u32(b, 32), 61u);
    EXPECT_EQ(u32(b, 36), 1000u);
    pcap::RecordHeader header(1'700'000'000'123'456'789, 61, 1000);
    const iovec iov = header.iov();
    EXPECT_EQ(Bytes(static_cast<std::uint8_t*>(iov.iov_base),
                    static_cast<std::uint8_t*>(iov.iov_base) + iov.iov_len),
              Bytes(b.begin() + 24, b.begin() + 40));
}

struct Written {
    std::uint64_t ts_ns;
    Bytes frame;
    std::uint32_t origlen;
};

std::vector<Written> sample_frames() {
    std::vector<Written> frames;
    std::uint64_t ts = 1'700'000'000'000'000'001;
    std::uint8_t seed = 0;
    for (std::size_t size : {60, 61, 62, 63, 64, 128, 577, 1000, 1513, 1514}) {
        frames.push_back({ts, make_frame(size, -1, seed++), static_cast<std::uint32_t>(size)});
        ts += 1'234'567'891;
    }
    frames.push_back({ts + 7, make_frame(64, 100, seed++), 64});
    frames.push_back({ts + 999'999'999, make_frame(1518, 4094, seed++), 1518});
    return frames;
}

// "1700000000.000000001" from nanoseconds, as tshark prints frame.time_epoch.
std::string epoch(std::uint64_t ns) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%llu.%09llu",
                  static_cast<unsigned long long>(ns / 1'000'000'000),
                  static_cast<unsigned long long>(ns % 1'000'000'000));
    return buf;
}

using ToolsRead = TempDir;

TEST_F(ToolsRead, TsharkReadsThePcapngWriterOutput) {
    Bytes b;
    pcapng::append_section_header(b, {.os = "Linux", .application = "promiscd test"});
    pcapng::append_interface_description(b, {.link_type = kLinkTypeEthernet,
                                             .snaplen = 262144,
                                             .name = "veth-t",
                                             .description = "test link",
                                             .filter = "udp port 9"});
    const auto frames = sample_frames();
    for (const Written& w : frames) {
        pcapng::append_epb(b, 0, w.ts_ns, static_cast<std::uint32_t>(w.frame.size()), w.origlen,
                           w.frame.data());
    }
    pcapng::append_interface_statistics(b, {.interface_id = 0,
                                            .timestamp_ns = frames.back().ts_ns + 1,
                                            .start_ns = frames.front().ts_ns,
                                            .end_ns = frames.back().ts_ns + 1,
                                            .received = 12,
                                            .interface_dropped = 0,
                                            .os_dropped = 0});
    const std::string path = write("w.pcapng", b);

    const Command fields =
        run("tshark -r " + path +
            " -T fields -E separator=, -e frame.len -e frame.cap_len -e frame.time_epoch"
            " -e frame.interface_name -e vlan.id 2>&1");
    ASSERT_EQ(fields.status, 0) << fields.out;
    std::vector<std::string> expected;
    for (const Written& w : frames) {
        const int vlan = w.frame[12] == 0x81 ? ((w.frame[14] & 0x0f) << 8) | w.frame[15] : -1;
        expected.push_back(std::to_string(w.origlen) + "," + std::to_string(w.frame.size()) + "," +
                           epoch(w.ts_ns) + ",veth-t," + (vlan >= 0 ? std::to_string(vlan) : ""));
    }
    auto got = lines(fields.out);
    std::erase_if(got, [](const std::string& l) { return l.starts_with("Running as user"); });
    EXPECT_EQ(got, expected);

    // capinfos' long report shows the IDB's options and counts the ISB.
    const Command info = run("capinfos " + path + " 2>&1");
    ASSERT_EQ(info.status, 0) << info.out;
    for (const char* line :
         {"Number of packets:   12", "nanoseconds (9)", "Name = veth-t", "Description = test link",
          "Capture length = 262144", "Number of stat entries = 1",
          "Encapsulation = Ethernet (1 - ether)"}) {
        EXPECT_NE(info.out.find(line), std::string::npos) << line << " in\n" << info.out;
    }
}

TEST_F(ToolsRead, TcpdumpAndTsharkReadThePcapWriterOutputInNanoseconds) {
    Bytes b;
    pcap::append_file_header(b, kLinkTypeEthernet, 262144);
    const auto frames = sample_frames();
    for (const Written& w : frames) {
        pcap::append_record(b, w.ts_ns, static_cast<std::uint32_t>(w.frame.size()), w.origlen,
                            w.frame.data());
    }
    const std::string path = write("w.pcap", b);

    const Command tshark = run("tshark -r " + path +
                               " -T fields -E separator=, -e frame.len -e frame.time_epoch"
                               " 2>/dev/null");
    ASSERT_EQ(tshark.status, 0);
    std::vector<std::string> expected;
    expected.reserve(frames.size());
    for (const Written& w : frames) {
        expected.push_back(std::to_string(w.origlen) + "," + epoch(w.ts_ns));
    }
    EXPECT_EQ(lines(tshark.out), expected);

    // tcpdump prints nanoseconds only when asked; -tt: seconds since the epoch.
    const Command tcpdump =
        run("tcpdump -r " + path + " -n -tt --time-stamp-precision=nano 2>/dev/null");
    ASSERT_EQ(tcpdump.status, 0);
    auto got = lines(tcpdump.out);
    // Unknown ethertypes come with a hex dump, on lines that start with a tab.
    std::erase_if(got, [](const std::string& l) { return l.empty() || l[0] == '\t'; });
    ASSERT_EQ(got.size(), frames.size()) << tcpdump.out;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        EXPECT_TRUE(got[i].starts_with(epoch(frames[i].ts_ns) + " ")) << got[i];
    }
}

} // namespace
