// The client's pcapng reader: through real pipes (timeouts, partial blocks,
// end of stream), against the daemon's writer, against files tshark and
// editcap wrote, and against hand-built streams for the cases the writer
// never produces (big-endian sections, other timestamp resolutions, SPBs).
#include "capture/bytes.hpp"
#include "capture/pcap_writer.hpp"
#include "capture/pcapng_writer.hpp"
#include "capture/unique_fd.hpp"
#include "client/capture_reader.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace promiscd;
using namespace std::chrono_literals;
using client::CaptureReader;
using client::CaptureStreamError;
using client::Frame;
using Bytes = std::vector<std::uint8_t>;
namespace fs = std::filesystem;

struct Pipe {
    capture::UniqueFd read;
    capture::UniqueFd write;
};

Pipe make_pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        throw std::system_error(errno, std::system_category(), "pipe2");
    }
    return {capture::UniqueFd(fds[0]), capture::UniqueFd(fds[1])};
}

void write_all(int fd, const std::uint8_t* data, std::size_t size) {
    while (size > 0) {
        const ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        ASSERT_GT(n, 0) << std::strerror(errno);
        data += n;
        size -= static_cast<std::size_t>(n);
    }
}

Bytes make_frame(std::size_t size, int vlan = -1, std::uint8_t seed = 0) {
    Bytes f(size);
    for (std::size_t i = 0; i < size; ++i) {
        f[i] = static_cast<std::uint8_t>(seed * 31u + i);
    }
    if (vlan >= 0 && size >= 18) {
        f[12] = 0x81;
        f[13] = 0x00;
        f[14] = static_cast<std::uint8_t>((vlan >> 8) & 0x0f);
        f[15] = static_cast<std::uint8_t>(vlan);
    }
    return f;
}

struct Expected {
    std::uint64_t ts_ns;
    Bytes data;
    std::uint32_t origlen;
};

std::vector<Expected> sample_frames(std::size_t count) {
    std::vector<Expected> out;
    std::uint64_t ts = 1'700'000'000'123'456'789;
    for (std::size_t i = 0; i < count; ++i) {
        const std::size_t size = 60 + (i * 97) % (1514 - 60 + 1);
        const int vlan = i % 5 == 0 ? static_cast<int>(i % 4095) : -1;
        out.push_back({ts, make_frame(size, vlan, static_cast<std::uint8_t>(i)),
                       static_cast<std::uint32_t>(size + (i % 3 == 0 ? 0 : i))});
        ts += 1 + i * 1'000'003;
    }
    out.push_back({ts, make_frame(60), 60});
    out.push_back({ts + 1, make_frame(1514, 7), 1514});
    return out;
}

Bytes daemon_stream(const std::vector<Expected>& frames, bool with_statistics = true) {
    Bytes b;
    capture::pcapng::append_section_header(b, {.os = "Linux", .application = "promiscd"});
    capture::pcapng::append_interface_description(b, {.link_type = capture::kLinkTypeEthernet,
                                                      .snaplen = 262144,
                                                      .name = "eth0",
                                                      .filter = "not port 22"});
    for (const Expected& e : frames) {
        capture::pcapng::append_epb(b, 0, e.ts_ns, static_cast<std::uint32_t>(e.data.size()),
                                    e.origlen, e.data.data());
    }
    if (with_statistics) {
        capture::pcapng::append_interface_statistics(b, {.interface_id = 0,
                                                         .timestamp_ns = 1'800'000'000'000'000'000,
                                                         .start_ns = 1'700'000'000'000'000'000,
                                                         .end_ns = 1'800'000'000'000'000'000,
                                                         .received = 12345,
                                                         .interface_dropped = 0,
                                                         .os_dropped = 17});
    }
    return b;
}

std::vector<Frame> read_all(CaptureReader& reader) {
    std::vector<Frame> frames;
    while (auto frame = reader.next(5s)) {
        frames.push_back(std::move(*frame));
    }
    EXPECT_TRUE(reader.eof());
    return frames;
}

void expect_frames(const std::vector<Frame>& got, const std::vector<Expected>& want) {
    ASSERT_EQ(got.size(), want.size());
    for (std::size_t i = 0; i < got.size(); ++i) {
        SCOPED_TRACE(i);
        EXPECT_EQ(got[i].timestamp_ns, want[i].ts_ns);
        EXPECT_EQ(got[i].original_length, want[i].origlen);
        EXPECT_EQ(got[i].data, want[i].data);
        EXPECT_EQ(got[i].interface_id, 0u);
    }
}

TEST(CaptureReader, RoundTripThroughAPipe) {
    const auto frames = sample_frames(300); // more than a pipe holds
    const Bytes stream = daemon_stream(frames);
    Pipe p = make_pipe();
    CaptureReader reader(p.read.release());
    std::jthread writer(
        [&, fd = std::move(p.write)] { write_all(fd.get(), stream.data(), stream.size()); });
    const auto got = read_all(reader);
    expect_frames(got, frames);
    for (const Frame& f : got) {
        EXPECT_EQ(f.link_type, capture::kLinkTypeEthernet);
    }
    ASSERT_EQ(reader.interfaces().size(), 1u);
    EXPECT_EQ(reader.interfaces()[0].name, "eth0");
    EXPECT_EQ(reader.interfaces()[0].filter, "not port 22");
    EXPECT_EQ(reader.interfaces()[0].snaplen, 262144u);
    ASSERT_TRUE(reader.statistics());
    const auto& stats = *reader.statistics();
    EXPECT_EQ(stats.interface_id, 0u);
    EXPECT_EQ(stats.timestamp_ns, 1'800'000'000'000'000'000u);
    EXPECT_EQ(stats.start_ns, 1'700'000'000'000'000'000u);
    EXPECT_EQ(stats.end_ns, 1'800'000'000'000'000'000u);
    EXPECT_EQ(stats.received, 12345u);
    EXPECT_EQ(stats.interface_dropped, 0u);
    EXPECT_EQ(stats.os_dropped, 17u);
    EXPECT_FALSE(stats.filter_accepted);
}

TEST(CaptureReader, NothingBeforeTheTimeoutOnAnEmptyPipe) {
    Pipe p = make_pipe();
    CaptureReader reader(p.read.release());
    const auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(reader.next(50ms));
    EXPECT_GE(std::chrono::steady_clock::now() - start, 50ms);
    EXPECT_FALSE(reader.eof());
    EXPECT_FALSE(reader.next(0ms));
    EXPECT_FALSE(reader.eof());
}

TEST(CaptureReader, EndOfStreamWhenTheWriterCloses) {
    Pipe p = make_pipe();
    CaptureReader reader(p.read.release());
    p.write.reset();
    EXPECT_FALSE(reader.next(5s));
    EXPECT_TRUE(reader.eof());
    EXPECT_FALSE(reader.statistics());
}

TEST(CaptureReader, FramesAppearExactlyWhenTheirBlockIsComplete) {
    const auto frames = sample_frames(6);
    const Bytes stream = daemon_stream(frames, false);
    // Offsets where each EPB ends.
    std::vector<std::size_t> ends;
    {
        Bytes b;
        capture::pcapng::append_section_header(b, {.os = "Linux", .application = "promiscd"});
        capture::pcapng::append_interface_description(b, {.link_type = capture::kLinkTypeEthernet,
                                                          .snaplen = 262144,
                                                          .name = "eth0",
                                                          .filter = "not port 22"});
        std::size_t at = b.size();
        for (const Expected& e : frames) {
            at += capture::pcapng::epb_size(static_cast<std::uint32_t>(e.data.size()));
            ends.push_back(at);
        }
    }
    Pipe p = make_pipe();
    CaptureReader reader(p.read.release());
    std::vector<Frame> got;
    for (std::size_t i = 0; i < stream.size(); ++i) {
        write_all(p.write.get(), &stream[i], 1);
        auto frame = reader.next(0ms);
        const bool block_done = std::find(ends.begin(), ends.end(), i + 1) != ends.end();
        ASSERT_EQ(frame.has_value(), block_done) << "after byte " << i;
        if (frame) {
            got.push_back(std::move(*frame));
        }
    }
    p.write.reset();
    EXPECT_FALSE(reader.next(1s));
    EXPECT_TRUE(reader.eof());
    expect_frames(got, frames);
}

TEST(CaptureReader, WaitsForFramesWrittenByteByByteFromAnotherThread) {
    const auto frames = sample_frames(8);
    const Bytes stream = daemon_stream(frames);
    Pipe p = make_pipe();
    CaptureReader reader(p.read.release());
    std::jthread writer([&, fd = std::move(p.write)] {
        for (std::size_t i = 0; i < stream.size(); ++i) {
            write_all(fd.get(), &stream[i], 1);
            if (i % 512 == 0) {
                std::this_thread::sleep_for(1ms);
            }
        }
    });
    expect_frames(read_all(reader), frames);
    ASSERT_TRUE(reader.statistics());
    EXPECT_EQ(reader.statistics()->os_dropped, 17u);
}

// Feeds a stream through a pipe and returns the reader's verdict.
std::string error_for(const Bytes& stream) {
    Pipe p = make_pipe();
    CaptureReader reader(p.read.release());
    std::jthread writer(
        [&, fd = std::move(p.write)] { write_all(fd.get(), stream.data(), stream.size()); });
    try {
        while (reader.next(5s)) {
        }
    } catch (const CaptureStreamError& e) {
        return e.what();
    }
    return "no error";
}

void put32(Bytes& b, std::size_t at, std::uint32_t v) {
    std::memcpy(b.data() + at, &v, 4);
}

TEST(CaptureReader, MalformedBlockLengthsAreClearErrors) {
    const Bytes good = daemon_stream(sample_frames(2), false);
    const std::size_t epb = daemon_stream({}, false).size(); // after the SHB and IDB
    ASSERT_EQ(good[epb], 6);                                 // an EPB starts here
    struct Case {
        std::uint32_t length;
        const char* message;
    } cases[] = {
        {13, "invalid length 13 (not a multiple of 4)"},
        {8, "invalid length 8 (less than 12)"},
        {32u << 20, "(more than 16777216)"},
    };
    for (const Case& c : cases) {
        Bytes bad = good;
        put32(bad, epb + 4, c.length);
        const std::string error = error_for(bad);
        EXPECT_NE(error.find(c.message), std::string::npos) << error;
        EXPECT_NE(error.find("offset " + std::to_string(epb)), std::string::npos) << error;
    }
    Bytes bad = good;
    put32(bad, epb + 20, 5000); // caplen beyond the block
    EXPECT_NE(error_for(bad).find("claims 5000 captured bytes"), std::string::npos);
    bad = good;
    put32(bad, bad.size() - 4, 0x40); // trailing length differs
    EXPECT_NE(error_for(bad).find("trailing length 64"), std::string::npos) << error_for(bad);
}

TEST(CaptureReader, NotPcapngIsAClearError) {
    Bytes pcap;
    capture::pcap::append_file_header(pcap, capture::kLinkTypeEthernet, 65535);
    EXPECT_NE(error_for(pcap).find("not a pcapng stream"), std::string::npos) << error_for(pcap);
    Bytes badmagic = daemon_stream({}, false);
    put32(badmagic, 8, 0x12345678);
    EXPECT_NE(error_for(badmagic).find("byte-order magic 0x12345678"), std::string::npos);
}

TEST(CaptureReader, StreamEndingInsideABlockIsAnError) {
    const Bytes whole = daemon_stream(sample_frames(3), false);
    const Bytes stream(whole.begin(), whole.end() - 10);
    Pipe p = make_pipe();
    CaptureReader reader(p.read.release());
    write_all(p.write.get(), stream.data(), stream.size());
    p.write.reset();
    const std::size_t complete = sample_frames(3).size() - 1;
    for (std::size_t i = 0; i < complete; ++i) {
        EXPECT_TRUE(reader.next(1s)) << i;
    }
    try {
        reader.next(1s);
        FAIL() << "no exception";
    } catch (const CaptureStreamError& e) {
        EXPECT_NE(std::string(e.what()).find("ended inside a block"), std::string::npos)
            << e.what();
    }
    EXPECT_TRUE(reader.eof());
    EXPECT_FALSE(reader.next(0ms));
}

// Hand-built pcapng in either byte order, for what the daemon never writes.
class Builder {
public:
    explicit Builder(bool big_endian) : big_(big_endian) {}
    Builder& u8(std::uint8_t v) {
        body_.push_back(v);
        return *this;
    }
    Builder& u16(std::uint16_t v) { return put(v, 2); }
    Builder& u32(std::uint32_t v) { return put(v, 4); }
    Builder& u64(std::uint64_t v) { return put(v, 8); }
    Builder& bytes(const Bytes& b) {
        body_.insert(body_.end(), b.begin(), b.end());
        return *this;
    }
    Builder& pad() {
        while (body_.size() % 4 != 0) {
            body_.push_back(0);
        }
        return *this;
    }
    Builder& option(std::uint16_t code, const Bytes& value) {
        u16(code).u16(static_cast<std::uint16_t>(value.size())).bytes(value);
        return pad();
    }
    Builder& end_options() { return u32(0); }
    // Closes the block started with begin().
    Builder& block(std::uint32_t type) {
        Bytes body = std::move(body_);
        body_.clear();
        const auto length = static_cast<std::uint32_t>(body.size() + 12);
        u32(type).u32(length);
        Bytes head = std::move(body_);
        body_.clear();
        u32(length);
        Bytes tail = std::move(body_);
        body_.clear();
        out_.insert(out_.end(), head.begin(), head.end());
        out_.insert(out_.end(), body.begin(), body.end());
        out_.insert(out_.end(), tail.begin(), tail.end());
        return *this;
    }
    Builder& section() {
        u32(0x1A2B3C4D).u16(1).u16(0).u64(~std::uint64_t{0});
        return block(0x0A0D0D0A);
    }
    const Bytes& stream() const { return out_; }

private:
    Builder& put(std::uint64_t v, int size) {
        for (int i = 0; i < size; ++i) {
            const int shift = big_ ? (size - 1 - i) * 8 : i * 8;
            body_.push_back(static_cast<std::uint8_t>(v >> shift));
        }
        return *this;
    }
    bool big_;
    Bytes body_;
    Bytes out_;
};

std::vector<Frame> parse(const Bytes& stream, client::PcapngParser& parser) {
    parser.feed(stream);
    std::vector<Frame> frames;
    while (auto f = parser.next_frame()) {
        frames.push_back(std::move(*f));
    }
    EXPECT_EQ(parser.buffered(), 0u);
    return frames;
}

TEST(PcapngParser, BigEndianSectionWithDefaultMicroseconds) {
    Builder b(true);
    b.section();
    b.u16(1).u16(0).u32(0).option(2, {'e', 'm', '0'}).end_options().block(1); // no if_tsresol
    const std::uint64_t us = 1'700'000'000'654'321;
    b.u32(0).u32(static_cast<std::uint32_t>(us >> 32)).u32(static_cast<std::uint32_t>(us));
    b.u32(5).u32(9).bytes({1, 2, 3, 4, 5}).pad().block(6);
    b.u32(0).u32(0).u32(1).option(4, {0, 0, 0, 0, 0, 0, 1, 2}).end_options().block(5);
    client::PcapngParser parser;
    const auto frames = parse(b.stream(), parser);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].timestamp_ns, us * 1000);
    EXPECT_EQ(frames[0].original_length, 9u);
    EXPECT_EQ(frames[0].data, (Bytes{1, 2, 3, 4, 5}));
    ASSERT_EQ(parser.interfaces().size(), 1u);
    EXPECT_EQ(parser.interfaces()[0].name, "em0");
    ASSERT_TRUE(parser.statistics());
    EXPECT_EQ(parser.statistics()->received, 0x102u);
    EXPECT_EQ(parser.statistics()->timestamp_ns, 1000u);
}

TEST(PcapngParser, TimestampResolutionsAndOffset) {
    for (bool big : {false, true}) {
        Builder b(big);
        b.section();
        b.u16(1).u16(0).u32(0).option(9, {0x80 | 20}).end_options().block(1); // 2^-20 s
        b.u16(1).u16(0).u32(0).option(9, {3}).end_options().block(1);         // ms
        b.u16(101).u16(0).u32(0).option(9, {12}).end_options().block(1);      // ps
        b.u16(1).u16(0).u32(0).option(9, {9}).end_options().block(1);
        const auto epb = [&](std::uint32_t iface, std::uint64_t ticks) {
            b.u32(iface).u32(static_cast<std::uint32_t>(ticks >> 32));
            b.u32(static_cast<std::uint32_t>(ticks)).u32(0).u32(0).block(6);
        };
        epb(0, (std::uint64_t{3} << 20) + (std::uint64_t{1} << 19)); // 3.5 s
        epb(1, 1'700'000'000'123);                                   // ms
        epb(2, 1'700'000'123'456'789'012);                           // ps
        epb(3, 42);
        client::PcapngParser parser;
        const auto frames = parse(b.stream(), parser);
        ASSERT_EQ(frames.size(), 4u);
        EXPECT_EQ(frames[0].timestamp_ns, 3'500'000'000u);
        EXPECT_EQ(frames[1].timestamp_ns, 1'700'000'000'123'000'000u);
        EXPECT_EQ(frames[2].timestamp_ns, 1'700'000'123'456'789u);
        EXPECT_EQ(frames[2].link_type, 101);
        EXPECT_EQ(frames[3].timestamp_ns, 42u);
        EXPECT_EQ(frames[3].interface_id, 3u);
    }
}

TEST(PcapngParser, TimestampOffsetIsAdded) {
    Builder b(false);
    b.section();
    Bytes offset(8);
    const std::uint64_t seconds = 1000;
    std::memcpy(offset.data(), &seconds, 8);
    b.u16(1).u16(0).u32(0).option(9, {0}).option(14, offset).end_options().block(1);
    b.u32(0).u32(0).u32(5).u32(0).u32(0).block(6);
    client::PcapngParser parser;
    const auto frames = parse(b.stream(), parser);
    ASSERT_EQ(frames.size(), 1u);
    EXPECT_EQ(frames[0].timestamp_ns, 1005'000'000'000u); // 10^0: whole seconds
}

TEST(PcapngParser, SimplePacketBlocksUseTheFirstInterfacesSnaplen) {
    Builder b(false);
    b.section();
    b.u16(1).u16(0).u32(4).end_options().block(1);
    b.u32(6).bytes({1, 2, 3, 4, 5, 6}).pad().block(3);
    b.u32(2).bytes({7, 8}).pad().block(3);
    client::PcapngParser parser;
    const auto frames = parse(b.stream(), parser);
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0].data, (Bytes{1, 2, 3, 4}));
    EXPECT_EQ(frames[0].original_length, 6u);
    EXPECT_EQ(frames[0].timestamp_ns, 0u);
    EXPECT_EQ(frames[1].data, (Bytes{7, 8}));
}

TEST(PcapngParser, UnknownBlocksAreSkippedAndSectionsResetInterfaces) {
    Builder b(false);
    b.section();
    b.u16(1).u16(0).u32(0).end_options().block(1);
    b.u32(0xdeadbeef).u32(1).block(0x00000BAD); // custom block
    b.u32(0x5353484b).u32(0).block(0x0000000A); // decryption secrets, empty
    b.u32(0).u32(0).u32(1).u32(1).u32(1).bytes({9}).pad().block(6);
    b.section(); // second section: no interfaces yet
    b.u16(276).u16(0).u32(0).end_options().block(1);
    b.u32(0).u32(0).u32(2).u32(1).u32(1).bytes({8}).pad().block(6);
    client::PcapngParser parser;
    const auto frames = parse(b.stream(), parser);
    ASSERT_EQ(frames.size(), 2u);
    EXPECT_EQ(frames[0].link_type, 1);
    EXPECT_EQ(frames[1].link_type, 276);
    EXPECT_EQ(frames[1].timestamp_ns, 2000u);
    ASSERT_EQ(parser.interfaces().size(), 1u);

    Builder bad(false);
    bad.section();
    bad.u32(1).u32(0).u32(0).u32(1).u32(1).bytes({9}).pad().block(6);
    client::PcapngParser p2;
    p2.feed(bad.stream());
    try {
        p2.next_frame();
        FAIL() << "no exception";
    } catch (const CaptureStreamError& e) {
        EXPECT_NE(std::string(e.what()).find("interface 1, but 0 are described"), std::string::npos)
            << e.what();
    }
}

struct Command {
    int status = -1;
    std::string out;
};

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

class ToolFiles : public ::testing::Test {
protected:
    void SetUp() override {
        char tmpl[] = "/tmp/promiscd-reader-XXXXXX";
        ASSERT_NE(mkdtemp(tmpl), nullptr);
        dir_ = tmpl;
    }
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    std::string path(const std::string& name) const { return (dir_ / name).string(); }
    void write(const std::string& name, const Bytes& bytes) {
        std::ofstream(path(name), std::ios::binary)
            .write(reinterpret_cast<const char*>(bytes.data()),
                   static_cast<std::streamsize>(bytes.size()));
    }
    std::vector<Frame> read_file(const std::string& name) {
        const int fd = ::open(path(name).c_str(), O_RDONLY | O_CLOEXEC);
        EXPECT_GE(fd, 0) << path(name);
        CaptureReader reader(fd);
        return read_all(reader);
    }
    fs::path dir_;
};

TEST_F(ToolFiles, ReadsPcapngWrittenByEditcapAndTshark) {
    const auto frames = sample_frames(40);
    Bytes pcap;
    capture::pcap::append_file_header(pcap, capture::kLinkTypeEthernet, 262144);
    for (const Expected& e : frames) {
        capture::pcap::append_record(pcap, e.ts_ns, static_cast<std::uint32_t>(e.data.size()),
                                     e.origlen, e.data.data());
    }
    write("in.pcap", pcap);
    Command c =
        run("editcap -F pcapng " + path("in.pcap") + " " + path("editcap.pcapng") + " 2>&1");
    ASSERT_EQ(c.status, 0) << c.out;
    expect_frames(read_file("editcap.pcapng"), frames);
    c = run("tshark -r " + path("in.pcap") + " -F pcapng -w " + path("tshark.pcapng") + " 2>&1");
    ASSERT_EQ(c.status, 0) << c.out;
    expect_frames(read_file("tshark.pcapng"), frames);
}

TEST_F(ToolFiles, ReadsMicrosecondPcapngWrittenByEditcap) {
    auto frames = sample_frames(10);
    Bytes pcap;
    capture::pcap::append_file_header(pcap, capture::kLinkTypeEthernet, 262144);
    for (const Expected& e : frames) {
        capture::pcap::append_record(pcap, e.ts_ns, static_cast<std::uint32_t>(e.data.size()),
                                     e.origlen, e.data.data());
    }
    write("ns.pcap", pcap);
    // Classic microsecond pcap, then pcapng: an IDB with microsecond time.
    Command c = run("editcap -F pcap " + path("ns.pcap") + " " + path("us.pcap") + " 2>&1 && " +
                    "editcap -F pcapng " + path("us.pcap") + " " + path("us.pcapng") + " 2>&1");
    ASSERT_EQ(c.status, 0) << c.out;
    for (Expected& e : frames) {
        e.ts_ns -= e.ts_ns % 1000;
    }
    expect_frames(read_file("us.pcapng"), frames);
}

TEST_F(ToolFiles, TsharkAgreesWithTheReaderOnTheDaemonsStream) {
    const auto frames = sample_frames(20);
    write("d.pcapng", daemon_stream(frames));
    const Command c = run("tshark -r " + path("d.pcapng") +
                          " -T fields -e frame.len -e frame.cap_len 2>/dev/null");
    ASSERT_EQ(c.status, 0);
    std::string expected;
    for (const Expected& e : frames) {
        expected += std::to_string(e.origlen) + "\t" + std::to_string(e.data.size()) + "\n";
    }
    EXPECT_EQ(c.out, expected);
    expect_frames(read_file("d.pcapng"), frames);
}

} // namespace
