// Capture end to end (issue 4): a private bus with the project's policy,
// polkitd with test rules, the daemon as a separate process in a namespace
// the test made, frames sent from a peer namespace with an AF_PACKET socket,
// and clients nobody here wrote: python3-dbus (which receives the fd), busctl,
// tshark and libpcap reading the stream back.
#include "client/capture_reader.hpp"
#include "client/capture_session.hpp"
#include "client/promisc_client.hpp"
#include "daemon_stack.hpp"
#include "frames.hpp"
#include "test_paths.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <filesystem>
#include <future>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <nlohmann/json.hpp>
#include <pcap/pcap.h>
#include <sched.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>

using namespace promiscd::testing;
using nlohmann::json;

namespace {

const std::string& root = kRootPath;
const std::string capture_iface = std::string(PROMISCD_BUS_NAME) + ".Capture";
const std::string& err = kErrorPrefix;
const std::string access_denied = "org.freedesktop.DBus.Error.AccessDenied";
constexpr uint16_t kEtherType = 0x88b5; // IEEE 802 local experimental
const std::string kOurFrames = R"({"filter": ["s", "ether proto 0x88b5"]})";

// pdallow may capture (pipe formats) but neither acquire leases nor have the
// raw socket (the project's .policy makes capture imply acquire, so polkit
// itself would grant pdallow a lease; the test shows the daemon never asks);
// pddeny may do nothing. Every check is logged.
const std::string rules = R"js(
polkit.addRule(function(action, subject) {
    if (action.id.indexOf("org.promiscd.") != 0)
        return polkit.Result.NOT_HANDLED;
    polkit.log("CHECK " + action.id + " " + subject.user);
    if (subject.user == "pdallow" && action.id == "org.promiscd.capture")
        return polkit.Result.YES;
    return polkit.Result.NO;
});
)js";

// ---------------------------------------------------------------- frames

Bytes test_frame(const Mac& dst, const Mac& src, size_t size, uint32_t seq, bool vlan) {
    Bytes f(dst.begin(), dst.end());
    f.insert(f.end(), src.begin(), src.end());
    if (vlan) {
        const uint16_t tci = static_cast<uint16_t>(((seq % 7) << 13) | (100 + seq % 50));
        f.insert(f.end(), {0x81, 0x00, static_cast<uint8_t>(tci >> 8), static_cast<uint8_t>(tci)});
    }
    f.insert(f.end(), {static_cast<uint8_t>(kEtherType >> 8), static_cast<uint8_t>(kEtherType)});
    for (int shift = 24; shift >= 0; shift -= 8)
        f.push_back(static_cast<uint8_t>(seq >> shift));
    while (f.size() < size)
        f.push_back(static_cast<uint8_t>(seq * 31 + f.size()));
    return f;
}

Bytes udp_frame(const Mac& dst, const Mac& src, size_t size, uint16_t port, uint32_t seq) {
    Bytes f(dst.begin(), dst.end());
    f.insert(f.end(), src.begin(), src.end());
    f.insert(f.end(), {0x08, 0x00});
    const auto ip_len = static_cast<uint16_t>(size - 14);
    const auto udp_len = static_cast<uint16_t>(ip_len - 20);
    f.insert(f.end(), {0x45,
                       0,
                       static_cast<uint8_t>(ip_len >> 8),
                       static_cast<uint8_t>(ip_len),
                       static_cast<uint8_t>(seq >> 8),
                       static_cast<uint8_t>(seq),
                       0,
                       0,
                       64,
                       17,
                       0,
                       0,
                       10,
                       0,
                       0,
                       1,
                       10,
                       0,
                       0,
                       2});
    f.insert(f.end(), {0x9c, 0x40, static_cast<uint8_t>(port >> 8), static_cast<uint8_t>(port),
                       static_cast<uint8_t>(udp_len >> 8), static_cast<uint8_t>(udp_len), 0, 0});
    while (f.size() < size)
        f.push_back(static_cast<uint8_t>(seq + f.size()));
    return f;
}

Bytes unhex(const std::string& s) {
    Bytes b;
    for (size_t i = 0; i + 1 < s.size(); i += 2)
        b.push_back(static_cast<uint8_t>(std::stoi(s.substr(i, 2), nullptr, 16)));
    return b;
}

// ---------------------------------------------------------------- readers

struct ReadFrame {
    Bytes data;
    uint64_t ts_ns = 0;
    uint32_t origlen = 0;
};

// The stream as tshark (`tshark -r -`) reads it: raw bytes and epoch times.
std::vector<ReadFrame> tshark_read(const std::string& stream, std::vector<json>* layers = nullptr) {
    auto r = run({"tshark", "-r", "-", "-T", "json", "-x"}, {}, stream);
    EXPECT_EQ(r.status, 0) << r.err;
    std::vector<ReadFrame> out;
    if (!r.ok())
        return out;
    for (const auto& p : json::parse(r.out)) {
        const auto& l = p.at("_source").at("layers");
        ReadFrame f;
        f.data = unhex(l.at("frame_raw").at(0).get<std::string>());
        auto epoch = l.at("frame").at("frame.time_epoch").get<std::string>();
        auto dot = epoch.find('.');
        auto frac = epoch.substr(dot + 1);
        frac.resize(9, '0');
        f.ts_ns = std::stoull(epoch.substr(0, dot)) * 1'000'000'000ULL + std::stoull(frac);
        f.origlen =
            static_cast<uint32_t>(std::stoul(l.at("frame").at("frame.len").get<std::string>()));
        out.push_back(std::move(f));
        if (layers)
            layers->push_back(l);
    }
    return out;
}

// The same with libpcap, which reads pcap and pcapng alike.
std::vector<ReadFrame> libpcap_read(const std::string& path, int* link_type = nullptr) {
    char errbuf[PCAP_ERRBUF_SIZE] = {};
    pcap_t* p =
        pcap_open_offline_with_tstamp_precision(path.c_str(), PCAP_TSTAMP_PRECISION_NANO, errbuf);
    EXPECT_NE(p, nullptr) << errbuf;
    std::vector<ReadFrame> out;
    if (!p)
        return out;
    if (link_type)
        *link_type = pcap_datalink(p);
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    while (pcap_next_ex(p, &h, &data) == 1)
        out.push_back({Bytes(data, data + h->caplen),
                       static_cast<uint64_t>(h->ts.tv_sec) * 1'000'000'000ULL +
                           static_cast<uint64_t>(h->ts.tv_usec),
                       h->len});
    pcap_close(p);
    return out;
}

// The pcapng stream through the client library's parser: frames, and the
// statistics of the closing ISB.
struct Parsed {
    std::vector<promiscd::client::Frame> frames;
    std::vector<promiscd::client::InterfaceInfo> interfaces;
    std::optional<promiscd::client::CaptureStatistics> stats;
};
Parsed parse_pcapng(const std::string& stream) {
    promiscd::client::PcapngParser parser;
    parser.feed({reinterpret_cast<const uint8_t*>(stream.data()), stream.size()});
    Parsed out;
    while (auto f = parser.next_frame())
        out.frames.push_back(std::move(*f));
    EXPECT_EQ(parser.buffered(), 0u) << "the stream ends with a whole block";
    out.interfaces = parser.interfaces();
    out.stats = parser.statistics();
    return out;
}

size_t count_blocks(const std::string& s, uint32_t type) {
    size_t n = 0;
    for (size_t at = 0; at + 12 <= s.size();) {
        uint32_t t = 0, len = 0;
        std::memcpy(&t, s.data() + at, 4);
        std::memcpy(&len, s.data() + at + 4, 4);
        if (len < 12)
            break;
        n += t == type;
        at += len;
    }
    return n;
}

// ---------------------------------------------------------------- fixture

class Capture : public DaemonTest {
protected:
    DaemonStack::Options options() const override {
        DaemonStack::Options o;
        o.polkit_rules = rules;
        o.polkit_debug = true; // polkit.log() shows each check
        o.veth = false;        // two pairs to a peer namespace, below
        o.start = false;
        return o;
    }
    void SetUp() override {
        DaemonTest::SetUp();
        if (IsSkipped())
            return;
        peer_ = std::make_unique<Netns>();
        // No IPv6: links that come up would send router solicitations and
        // MLD reports, frames no test sent.
        for (auto* n : {&ns(), peer_.get()})
            n->exec_ok("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 "
                       "net.ipv6.conf.default.disable_ipv6=1");
        veth_ = add_veth(ns(), *peer_);
        veth2_ = add_veth(ns(), *peer_);
        dev_ = veth_.name;
        dev2_ = veth2_.name;
        for (const auto& v : {veth_, veth2_}) {
            ns().exec_ok("ip link set dev " + v.name + " up");
            peer_->exec_ok("ip link set dev " + v.peer_name + " up");
        }
        mac_ = mac_of(ns(), dev_);
        mac2_ = mac_of(ns(), dev2_);
        peer_mac_ = mac_of(*peer_, veth_.peer_name);
        peer_mac2_ = mac_of(*peer_, veth2_.peer_name);
        sender_ = std::make_unique<FrameSender>(*peer_, veth_.peer_name);
        sender2_ = std::make_unique<FrameSender>(*peer_, veth2_.peer_name);
        ::chmod(files_.path().c_str(), 0777); // clients running as test users write here
        stack().start_daemon();
    }
    void TearDown() override {
        sender_.reset();
        sender2_.reset();
        DaemonTest::TearDown();
        peer_.reset();
    }

    Netns& ns() { return stack().ns(); }
    Process& daemon() { return stack().daemon(); }

    // clients/capture_client.py; see its usage.
    Process& client(const std::string& iface, const std::string& options = "{}",
                    std::vector<std::string> extra = {}, const TestUser* user = nullptr) {
        std::vector<std::string> argv = {"/usr/bin/python3",
                                         std::string(PROMISCD_SOURCE_ROOT) +
                                             "/tests/integration/clients/capture_client.py",
                                         iface, options};
        argv.insert(argv.end(), extra.begin(), extra.end());
        if (user)
            argv = as_user(*user, argv);
        Process::Options o;
        o.stdin_pipe = true;
        return stack().spawn(argv, o);
    }
    // The capture's object path once the client has it ("" and a failure if not).
    std::string path_of(Process& c) {
        auto pos = c.wait_for_output("CAPTURE ", 10s);
        if (pos == std::string::npos) {
            ADD_FAILURE() << "no capture: " << c.log();
            return {};
        }
        auto line = c.log().substr(pos + 8);
        return line.substr(0, line.find(' '));
    }
    // The first ERROR line of a client, without the "ERROR ".
    std::string error_of(Process& c) {
        auto pos = c.wait_for_output("ERROR ", 10s);
        if (pos == std::string::npos)
            return "no error: " + c.log();
        auto line = c.log().substr(pos + 6);
        return line.substr(0, line.find('\n'));
    }
    // Waits for the client's EOF line; returns the stream it saved.
    std::string stream_of(Process& c, const std::string& file) {
        EXPECT_NE(c.wait_for_output("EOF ", 30s), std::string::npos) << c.log();
        return read_file(files_ / file);
    }

    CommandResult busctl(std::vector<std::string> args) { return stack().busctl(std::move(args)); }
    json leases() { return stack().leases(); }
    uint64_t property(const std::string& path, const std::string& name) {
        auto r = busctl({"get-property", PROMISCD_BUS_NAME, path, capture_iface, name});
        EXPECT_EQ(r.status, 0) << r.err;
        return r.ok() ? json::parse(r.out)["data"].get<uint64_t>() : 0;
    }
    bool promisc(const std::string& dev) { return stack().promisc(dev); }
    int ifindex_of(const std::string& dev) { return stack().ifindex_of(dev); }
    size_t daemon_fds() {
        size_t n = 0;
        for ([[maybe_unused]] const auto& e :
             std::filesystem::directory_iterator("/proc/" + std::to_string(daemon().pid()) + "/fd"))
            ++n;
        return n;
    }
    // The daemon's open files, for messages.
    std::string daemon_fd_list() {
        std::string out;
        for (const auto& e : std::filesystem::directory_iterator(
                 "/proc/" + std::to_string(daemon().pid()) + "/fd")) {
            std::error_code ec;
            out += e.path().filename().string() + " -> " +
                   std::filesystem::read_symlink(e.path(), ec).string() + "\n";
        }
        return out;
    }
    long daemon_rss_kib() {
        std::istringstream in(read_file("/proc/" + std::to_string(daemon().pid()) + "/status"));
        for (std::string line; std::getline(in, line);)
            if (line.rfind("VmRSS:", 0) == 0)
                return std::stol(line.substr(6));
        return -1;
    }
    // The daemon's fd count once its lazily made resources exist: sd-bus and
    // sdbus-c++ open two eventfds on the first asynchronous method call, of
    // any kind, and keep them.
    size_t settled_fds() {
        auto& c = client("nosuch0");
        error_of(c);
        c.wait(10s);
        EXPECT_FALSE(leases().is_null());
        return daemon_fds();
    }

    TempDir files_;
    std::unique_ptr<Netns> peer_;
    VethPair veth_, veth2_;
    std::string dev_, dev2_;
    Mac mac_{}, mac2_{}, peer_mac_{}, peer_mac2_{};
    std::unique_ptr<FrameSender> sender_;
    std::unique_ptr<FrameSender> sender2_;
};

// The known frames of test 1: 60 to 1514 bytes, every fifth VLAN-tagged.
std::vector<Bytes> known_frames(const Mac& dst, const Mac& src, int n) {
    std::vector<Bytes> frames;
    for (int i = 0; i < n; ++i) {
        size_t size = 60 + static_cast<size_t>(i) * (1514 - 60) / static_cast<size_t>(n - 1);
        frames.push_back(test_frame(dst, src, size, static_cast<uint32_t>(i), i % 5 == 2));
    }
    return frames;
}

void expect_same(const std::vector<ReadFrame>& got, const std::vector<Bytes>& sent,
                 const std::string& reader) {
    ASSERT_EQ(got.size(), sent.size()) << reader;
    for (size_t i = 0; i < sent.size(); ++i) {
        EXPECT_EQ(hex(got[i].data), hex(sent[i])) << reader << ": frame " << i;
        EXPECT_EQ(got[i].origlen, sent[i].size()) << reader << ": frame " << i;
        if (i > 0) {
            EXPECT_GE(got[i].ts_ns, got[i - 1].ts_ns) << reader << ": timestamps are monotonic";
        }
    }
}

// 1
TEST_F(Capture, PcapngAndPcapStreamsCarryEveryFrameByteForByte) {
    const auto sent = known_frames(mac_, peer_mac_, 40);
    for (const std::string format : {"pcapng", "pcap"}) {
        SCOPED_TRACE(format);
        const std::string file = "stream." + format;
        auto& c = client(dev_, R"({"count": ["t", 40], "format": ["s", ")" + format + R"("]})",
                         {"--out", files_ / file});
        ASSERT_FALSE(path_of(c).empty());
        for (const auto& f : sent)
            sender_->send(f);
        const std::string stream = stream_of(c, file);
        EXPECT_NE(c.wait_for_output("FINISHED"), std::string::npos);
        expect_same(tshark_read(stream), sent, "tshark -r -");
        int link_type = 0;
        expect_same(libpcap_read(files_ / file, &link_type), sent, "libpcap");
        EXPECT_EQ(link_type, DLT_EN10MB);
        if (format == "pcapng") {
            auto parsed = parse_pcapng(stream);
            ASSERT_EQ(parsed.interfaces.size(), 1u);
            EXPECT_EQ(parsed.interfaces[0].name, dev_) << "if_name";
            EXPECT_EQ(parsed.interfaces[0].link_type, 1);
            ASSERT_EQ(parsed.frames.size(), sent.size());
            EXPECT_TRUE(parsed.stats.has_value()) << "an ISB closes the stream";
        } else {
            uint32_t magic = 0;
            std::memcpy(&magic, stream.data(), 4);
            EXPECT_EQ(magic, 0xa1b23c4du) << "nanosecond pcap";
        }
    }
}

// 1, read live: tshark reads the daemon's pipe itself (the fd passed on by
// the python client as tshark's standard input).
TEST_F(Capture, TsharkReadsThePipeLive) {
    const auto sent = known_frames(mac_, peer_mac_, 20);
    auto& c = client(dev_, R"({"count": ["t", 20]})", {"--tshark", files_ / "tshark.json"});
    ASSERT_FALSE(path_of(c).empty());
    for (const auto& f : sent)
        sender_->send(f);
    ASSERT_NE(c.wait_for_output("TSHARK 0", 30s), std::string::npos) << c.log();
    auto j = json::parse(read_file(files_ / "tshark.json"));
    ASSERT_EQ(j.size(), sent.size());
    for (size_t i = 0; i < sent.size(); ++i)
        EXPECT_EQ(j[i]["_source"]["layers"]["frame_raw"][0], hex(sent[i])) << i;
}

// 2
TEST_F(Capture, PromiscHoldsALeaseWhileItRuns) {
    auto& c = client(dev_, kOurFrames);
    auto path = path_of(c);
    auto id = path.substr(path.rfind('/') + 1);
    auto l = leases();
    ASSERT_EQ(l.size(), 1u) << l;
    EXPECT_EQ(l[0][2], dev_);
    EXPECT_EQ(l[0][8], "capture " + id) << "the capture is the lease's reason";
    EXPECT_EQ(l[0][5], 0);
    EXPECT_TRUE(promisc(dev_)) << "ip link shows PROMISC while the capture runs";
    c.write_stdin("stop\n");
    EXPECT_NE(c.wait_for_output("FINISHED " + path + " stopped"), std::string::npos) << c.log();
    EXPECT_NE(c.wait_for_output("EOF"), std::string::npos) << c.log();
    EXPECT_TRUE(leases().empty());
    EXPECT_TRUE(wait_until([&] { return !promisc(dev_); }));

    auto& d = client(dev_, R"({"promisc": ["b", false]})");
    path_of(d);
    EXPECT_TRUE(leases().empty()) << "promisc false: no lease";
    EXPECT_FALSE(promisc(dev_));
}

// 3
TEST_F(Capture, FilterSelectsFramesAndAnInvalidOneLeavesNothingBehind) {
    auto& c = client(dev_, R"({"filter": ["s", "udp port 9"], "count": ["t", 20]})",
                     {"--out", files_ / "udp.pcapng"});
    ASSERT_FALSE(path_of(c).empty());
    std::vector<Bytes> wanted;
    for (uint32_t i = 0; i < 20; ++i) {
        sender_->send(udp_frame(mac_, peer_mac_, 100 + i, 10, i));
        sender_->send(test_frame(mac_, peer_mac_, 80, i, false));
        wanted.push_back(udp_frame(mac_, peer_mac_, 200 + i, 9, i));
        sender_->send(wanted.back());
    }
    auto stream = stream_of(c, "udp.pcapng");
    expect_same(tshark_read(stream), wanted, "tshark -r -");
    EXPECT_TRUE(wait_until([&] { return !promisc(dev_); }));

    const size_t fds = settled_fds();
    auto& bad = client(dev_, R"({"filter": ["s", "udp port"]})");
    auto e = error_of(bad);
    EXPECT_EQ(e.rfind(err + "InvalidFilter ", 0), 0u) << e;
    EXPECT_NE(e.find("syntax error"), std::string::npos) << "libpcap's message: " << e;
    EXPECT_TRUE(leases().empty()) << "no lease";
    EXPECT_FALSE(promisc(dev_));
    EXPECT_EQ(daemon_fds(), fds) << "no socket left";
}

// snaplen cuts frames and keeps their original length; "count" and "Stop"
// are covered below.
TEST_F(Capture, SnaplenCutsFramesAndKeepsTheirLength) {
    auto& c = client(dev_, R"({"snaplen": ["u", 100], "count": ["t", 3]})",
                     {"--out", files_ / "cut.pcapng"});
    ASSERT_FALSE(path_of(c).empty());
    std::vector<Bytes> sent;
    for (uint32_t i = 0; i < 3; ++i) {
        sent.push_back(test_frame(mac_, peer_mac_, 1000 + i, i, i == 1));
        sender_->send(sent.back());
    }
    auto frames = tshark_read(stream_of(c, "cut.pcapng"));
    ASSERT_EQ(frames.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(hex(frames[i].data), hex(Bytes(sent[i].begin(), sent[i].begin() + 100)));
        EXPECT_EQ(frames[i].origlen, sent[i].size());
    }
}

// Every refusal the issue lists, each leaving the daemon's fd count as it was.
TEST_F(Capture, BadRequestsGetNamedErrorsAndLeakNothing) {
    const size_t fds = settled_fds();
    struct Case {
        std::string iface, options, error, says;
    };
    // 16 KiB of filter (spaces between terms) are refused before anything
    // compiles them.
    std::string long_filter = "port 1" + std::string(16384, ' ');
    const std::vector<Case> cases = {
        {dev_, json{{"filter", {"s", long_filter}}}.dump(), "InvalidArgument",
         "option 'filter' is longer than 16384 bytes"},
        {dev_, R"({"snaplen": ["u", 0]})", "InvalidArgument", "'snaplen'"},
        {dev_, R"({"snaplen": ["u", 262145]})", "InvalidArgument", "'snaplen'"},
        {dev_, R"({"format": ["s", "pcapx"]})", "InvalidArgument", "'pcapx'"},
        {dev_, R"({"buffer_size": ["u", 1]})", "InvalidArgument", "'buffer_size'"},
        {dev_, R"({"buffer_size": ["u", 4294967295]})", "InvalidArgument", "'buffer_size'"},
        {dev_, R"({"snaplen": ["i", -1]})", "InvalidArgument",
         "'snaplen' must be an unsigned integer, not the negative number -1"},
        {dev_, R"({"count": ["s", "10"]})", "InvalidArgument",
         "'count' must be an unsigned integer, not a string"},
        {dev_,
         R"({"filter": ["s", "port 1 or port 2 or port 3 or port 4 or port 5 or port 6 or port 7 or port 8 or port 9 or port 10 or port 11 or port 12 or port 13 or port 14 or port 15 or port 16 or port 17 or port 18 or port 19 or port 20 or port 21 or port 22 or port 23 or port 24 or port 25 or port 26 or port 27 or port 28 or port 29 or port 30 or port 31 or port 32 or port 33 or port 34 or port 35 or port 36 or port 37 or port 38 or port 39 or port 40 or port 41 or port 42 or port 43 or port 44 or port 45 or port 46 or port 47 or port 48 or port 49 or port 50 or port 51 or port 52 or port 53 or port 54 or port 55 or port 56 or port 57 or port 58 or port 59 or port 60 or port 61 or port 62 or port 63 or port 64 or port 65"]})",
         "InvalidFilter", "it has 65 terms; filters are limited to 64"},
        {dev_, R"({"snaplenn": ["u", 10]})", "InvalidArgument", "unknown option 'snaplenn'"},
        {dev_, R"({"format": ["s", "socket"], "count": ["t", 1]})", "InvalidArgument", "'count'"},
        {"nosuch0", "{}", "NoSuchInterface", "'nosuch0'"},
        {"bad/name", "{}", "InvalidArgument", "bad/name"},
        {dev_, R"({"filter": ["s", "ether host"]})", "InvalidFilter", "ether host"},
    };
    for (const auto& k : cases) {
        SCOPED_TRACE(k.options);
        auto& c = client(k.iface, k.options);
        auto e = error_of(c);
        EXPECT_EQ(e.rfind(err + k.error + " ", 0), 0u) << e;
        EXPECT_NE(e.find(k.says), std::string::npos) << e;
        c.wait(10s);
        EXPECT_EQ(daemon_fds(), fds) << daemon_fd_list();
    }
    EXPECT_TRUE(leases().empty());

    // The quota: captures per uid (8 by default), counted apart from leases.
    auto& many = client(dev_, R"({"promisc": ["b", false], "buffer_size": ["u", 1048576]})",
                        {"--open", "9"});
    auto e = error_of(many);
    EXPECT_EQ(e.rfind(err + "QuotaExceeded ", 0), 0u) << e;
    EXPECT_NE(e.find("8 captures (limit 8)"), std::string::npos) << e;
    many.write_stdin("quit\n");
    EXPECT_TRUE(many.wait(10s).has_value());
    EXPECT_TRUE(wait_until([&] { return daemon_fds() == fds; }, 10s))
        << "fds after the owner left: " << daemon_fds() << " vs " << fds;
}

// 4
TEST_F(Capture, SocketFormatHandsOutTheLockedSocket) {
    auto& c = client(dev_, R"({"format": ["s", "socket"], "filter": ["s", "ether proto 0x88b5"]})",
                     {"--socket-frames", "5"});
    auto path = path_of(c);
    ASSERT_NE(c.log().find("CAPTURE " + path + " socket"), std::string::npos) << c.log();
    std::vector<Bytes> sent;
    for (uint32_t i = 0; i < 5; ++i) {
        sent.push_back(test_frame(mac_, peer_mac_, 100 + i * 100, i, false));
        sender_->send(udp_frame(mac_, peer_mac_, 90, 9, i)); // not ours: filtered out
        sender_->send(sent.back());
    }
    ASSERT_NE(c.wait_for_output("ATTACH ", 30s), std::string::npos) << c.log();
    const auto log = c.log();
    for (const auto& f : sent)
        EXPECT_NE(log.find("FRAME " + hex(f) + "\n"), std::string::npos) << log;
    EXPECT_NE(log.find("SOTYPE raw"), std::string::npos) << log;
    EXPECT_NE(log.find("DETACH EPERM"), std::string::npos) << "SO_LOCK_FILTER: " << log;
    EXPECT_NE(log.find("ATTACH EPERM"), std::string::npos) << "SO_LOCK_FILTER: " << log;
    EXPECT_EQ(leases().size(), 1u) << "the socket capture holds its lease";
    c.write_stdin("stop\n");
    EXPECT_NE(c.wait_for_output("FINISHED " + path + " stopped"), std::string::npos) << c.log();
    EXPECT_TRUE(wait_until([&] { return leases().empty(); }));

    auto& denied = client(dev_, R"({"format": ["s", "socket"]})", {}, &kAllowedUser);
    auto e = error_of(denied);
    EXPECT_EQ(e.rfind(access_denied + " ", 0), 0u) << e;
    EXPECT_NE(e.find("raw-socket"), std::string::npos) << e;
}

// 5
TEST_F(Capture, StalledReaderCostsTheDaemonNoMemoryAndOthersGoOn) {
    auto& stalled = client(dev_, kOurFrames, {"--no-read", "--out", files_ / "stalled.pcapng"});
    auto path = path_of(stalled);
    auto& other = client(dev2_, R"({"filter": ["s", "ether proto 0x88b5"], "count": ["t", 1000]})",
                         {"--out", files_ / "other.pcapng"});
    const auto other_path = path_of(other);
    ASSERT_FALSE(other_path.empty());
    EXPECT_FALSE(leases().is_null());
    const long rss_before = daemon_rss_kib();
    const Bytes flood = test_frame(mac_, peer_mac_, 60, 0, false);
    for (uint32_t i = 0; i < 1'000'000; ++i)
        sender_->send(flood);
    const long rss_after = daemon_rss_kib();
    EXPECT_LT(rss_after - rss_before, 4 * 1024)
        << "VmRSS " << rss_before << " kB -> " << rss_after << " kB";
    EXPECT_GT(property(path, "Drops"), 0u) << "drops are reported live";

    // The first capture is still stalled, its pipe and ring full. Frames on
    // the other link are paced so that the kernel's per-CPU backlog
    // (netdev_max_backlog) cannot overflow on a loaded machine: a drop there
    // would be the sender's, before any capture sees the frame.
    std::vector<Bytes> sent2;
    for (uint32_t i = 0; i < 1000; ++i) {
        sent2.push_back(test_frame(mac2_, peer_mac2_, 64 + i % 1400, i, false));
        sender2_->send(sent2.back());
        if (i % 50 == 49)
            std::this_thread::sleep_for(1ms);
    }
    auto other_stream = stream_of(other, "other.pcapng");
    if (HasFailure())
        std::cerr << "the second capture has " << property(other_path, "Packets")
                  << " frames, dropped " << property(other_path, "Drops") << "\n"
                  << ns().exec("ip -s link show dev " + dev2_).out
                  << peer_->exec("ip -s link show dev " + veth2_.peer_name).out;
    expect_same(tshark_read(other_stream), sent2, "the second capture");

    stalled.write_stdin("read\n");
    stalled.write_stdin("stop\n");
    auto stream = stream_of(stalled, "stalled.pcapng");
    auto parsed = parse_pcapng(stream);
    ASSERT_TRUE(parsed.stats.has_value()) << "ISB at the end";
    EXPECT_GT(parsed.stats->os_dropped.value_or(0), 0u) << "isb_osdrop";
    EXPECT_GE(parsed.stats->received.value_or(0), parsed.frames.size() + 1) << "isb_ifrecv";
    EXPECT_LT(parsed.frames.size(), 1'000'000u);
}

// 6
TEST_F(Capture, CountStopAndReaderCloseEachEndTheCapture) {
    const size_t fds = settled_fds();
    {
        auto& c = client(dev_, R"({"count": ["t", 100]})", {"--out", files_ / "count.pcapng"});
        auto path = path_of(c);
        for (uint32_t i = 0; i < 150; ++i)
            sender_->send(test_frame(mac_, peer_mac_, 60 + i, i, false));
        auto stream = stream_of(c, "count.pcapng");
        EXPECT_EQ(count_blocks(stream, 6), 100u) << "exactly 100 EPBs";
        EXPECT_EQ(count_blocks(stream, 5), 1u) << "then an ISB";
        EXPECT_EQ(parse_pcapng(stream).frames.size(), 100u);
        EXPECT_NE(c.wait_for_output("FINISHED " + path + " count-reached"), std::string::npos)
            << c.log();
        EXPECT_NE(c.wait_for_output("REMOVED " + path), std::string::npos) << c.log();
    }
    {
        auto& c = client(dev_, kOurFrames, {"--out", files_ / "stop.pcapng"});
        auto path = path_of(c);
        for (uint32_t i = 0; i < 10; ++i)
            sender_->send(test_frame(mac_, peer_mac_, 100, i, false));
        EXPECT_TRUE(wait_until([&] { return property(path, "Packets") == 10; }));
        c.write_stdin("stop\n");
        auto stream = stream_of(c, "stop.pcapng");
        auto parsed = parse_pcapng(stream);
        EXPECT_EQ(parsed.frames.size(), 10u);
        ASSERT_TRUE(parsed.stats.has_value()) << "ISB before EOF";
        EXPECT_EQ(parsed.stats->received.value_or(0), 10u);
        EXPECT_EQ(parsed.stats->os_dropped.value_or(1), 0u);
        EXPECT_NE(c.wait_for_output("FINISHED " + path + " stopped"), std::string::npos);
    }
    {
        auto& c = client(dev_, kOurFrames, {"--no-read"});
        auto path = path_of(c);
        EXPECT_TRUE(promisc(dev_));
        EXPECT_EQ(leases().size(), 1u);
        c.write_stdin("close\n");
        EXPECT_NE(c.wait_for_output("FINISHED " + path + " reader-closed"), std::string::npos)
            << c.log();
        EXPECT_NE(c.wait_for_output("REMOVED " + path), std::string::npos) << c.log();
        EXPECT_TRUE(leases().empty()) << "lease released";
        EXPECT_TRUE(wait_until([&] { return !promisc(dev_); })) << "flag cleared";
    }
    // busctl receives the fd and exits: its capture ends with it.
    auto r = busctl({"call", PROMISCD_BUS_NAME, root, std::string(PROMISCD_BUS_NAME) + ".Manager",
                     "OpenCapture", "sa{sv}", dev_, "0"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_NE(r.out.find("/capture/"), std::string::npos) << r.out;
    EXPECT_TRUE(wait_until([&] { return daemon_fds() == fds && leases().empty(); }, 10s))
        << "fds: " << daemon_fds() << " vs " << fds;
    EXPECT_FALSE(promisc(dev_));
}

// 7
TEST_F(Capture, CaptureImpliesTheLeaseForAnAllowedUid) {
    auto& c = client(dev_, kOurFrames, {}, &kAllowedUser);
    auto path = path_of(c);
    ASSERT_FALSE(path.empty());
    auto l = leases();
    ASSERT_EQ(l.size(), 1u);
    EXPECT_EQ(l[0][5], kAllowedUser.uid) << "the lease belongs to the caller";
    EXPECT_TRUE(promisc(dev_));

    // polkit was asked about capture only, never about the lease.
    const auto checks = stack().bus().logs();
    EXPECT_NE(checks.find("CHECK org.promiscd.capture pdallow"), std::string::npos) << checks;
    EXPECT_EQ(checks.find("CHECK org.promiscd.promisc.acquire"), std::string::npos) << checks;

    auto& denied = client(dev_, kOurFrames, {}, &kDeniedUser);
    auto e = error_of(denied);
    EXPECT_EQ(e.rfind(access_denied + " ", 0), 0u) << e;
    EXPECT_EQ(leases().size(), 1u);

    // Someone else may not stop it: pddeny is not the owner and may not manage.
    auto stop = run(as_user(kDeniedUser, {"busctl", "--system", "call", PROMISCD_BUS_NAME, path,
                                          capture_iface, "Stop"}),
                    stack().env());
    EXPECT_NE(stop.err.find("belongs to someone else"), std::string::npos) << stop.err;
    // Root may (uid 0 is authorized for manage).
    auto root_stop = busctl({"call", PROMISCD_BUS_NAME, path, capture_iface, "Stop"});
    EXPECT_EQ(root_stop.status, 0) << root_stop.err;
    EXPECT_NE(c.wait_for_output("FINISHED " + path + " stopped"), std::string::npos) << c.log();
}

// 8
TEST_F(Capture, AnySeesBothLinksWithSll2Headers) {
    auto& c = client("any", R"({"filter": ["s", "ether proto 0x88b5"], "count": ["t", 10]})",
                     {"--out", files_ / "any.pcapng"});
    ASSERT_FALSE(path_of(c).empty());
    EXPECT_TRUE(leases().empty()) << "any takes no lease";
    for (uint32_t i = 0; i < 5; ++i) {
        sender_->send(test_frame(mac_, peer_mac_, 100, i, false));
        sender2_->send(test_frame(mac2_, peer_mac2_, 200, 100 + i, false));
    }
    auto stream = stream_of(c, "any.pcapng");
    std::vector<json> layers;
    auto frames = tshark_read(stream, &layers);
    ASSERT_EQ(frames.size(), 10u);
    std::map<std::string, int> per_link;
    for (const auto& l : layers)
        ++per_link[l.at("sll").at("sll.ifindex").get<std::string>()];
    EXPECT_EQ(per_link[std::to_string(ifindex_of(dev_))], 5) << stream.size();
    EXPECT_EQ(per_link[std::to_string(ifindex_of(dev2_))], 5);
    auto parsed = parse_pcapng(stream);
    ASSERT_EQ(parsed.interfaces.size(), 1u);
    EXPECT_EQ(parsed.interfaces[0].link_type, 276) << "LINKTYPE_LINUX_SLL2";
    for (const auto& f : parsed.frames) {
        ASSERT_GE(f.data.size(), 20u);
        uint32_t ifindex = 0;
        std::memcpy(&ifindex, f.data.data() + 4, 4);
        ifindex = ntohl(ifindex);
        EXPECT_TRUE(ifindex == static_cast<uint32_t>(ifindex_of(dev_)) ||
                    ifindex == static_cast<uint32_t>(ifindex_of(dev2_)));
        // The frame after the header is what was sent, from the network header on.
        EXPECT_EQ(f.data[0] << 8 | f.data[1], kEtherType);
    }
}

// Link removal and daemon shutdown end captures too, with their reasons.
TEST_F(Capture, LinkRemovalAndShutdownEndCaptures) {
    auto& c = client(dev2_, kOurFrames, {"--out", files_ / "gone.pcapng"});
    auto path = path_of(c);
    ns().exec_ok("ip link del dev " + dev2_);
    auto stream = stream_of(c, "gone.pcapng");
    EXPECT_TRUE(parse_pcapng(stream).stats.has_value());
    EXPECT_NE(c.wait_for_output("FINISHED " + path + " link-removed"), std::string::npos)
        << c.log();

    auto& d = client(dev_, kOurFrames, {"--out", files_ / "shutdown.pcapng"});
    auto path2 = path_of(d);
    ASSERT_TRUE(promisc(dev_));
    daemon().signal(SIGTERM);
    EXPECT_TRUE(daemon().wait(10s).has_value());
    auto stream2 = stream_of(d, "shutdown.pcapng");
    EXPECT_TRUE(parse_pcapng(stream2).stats.has_value());
    EXPECT_NE(d.wait_for_output("FINISHED " + path2 + " daemon-shutdown"), std::string::npos)
        << d.log();
    EXPECT_FALSE(promisc(dev_));
}

// A capture whose owner leaves the bus ends with reason owner-gone, even
// while another process still reads the stream, and that reader gets the
// closing statistics and end of file.
TEST_F(Capture, OwnerGoneEndsTheCapture) {
    auto& c = client(dev_, kOurFrames, {"--hand-off", files_ / "handoff.pcapng"});
    auto path = path_of(c);
    ASSERT_NE(c.wait_for_output("HANDED "), std::string::npos) << c.log();
    ASSERT_TRUE(promisc(dev_));
    for (uint32_t i = 0; i < 5; ++i)
        sender_->send(test_frame(mac_, peer_mac_, 100, i, false));
    c.signal(SIGKILL);
    EXPECT_TRUE(wait_until([&] { return leases().empty(); })) << daemon().log();
    const std::string finished = "capture " + path.substr(path.rfind('/') + 1) + " on '" + dev_ +
                                 "' (pcapng, filter 'ether proto 0x88b5') finished: owner-gone";
    EXPECT_TRUE(wait_until([&] { return daemon().log().find(finished) != std::string::npos; }))
        << daemon().log();
    EXPECT_TRUE(wait_until([&] {
        auto stream = read_file(files_ / "handoff.pcapng");
        return count_blocks(stream, 5) == 1;
    })) << "the reader got the ISB";
    auto parsed = parse_pcapng(read_file(files_ / "handoff.pcapng"));
    EXPECT_EQ(parsed.frames.size(), 5u);
    EXPECT_FALSE(promisc(dev_));
}

// Client side: CaptureSession opens a capture over D-Bus and yields the
// daemon's frames with next(timeout); Stop, count and errors as a program
// using the library sees them.
TEST_F(Capture, SessionYieldsTheDaemonsFrames) {
    ::setenv("DBUS_SYSTEM_BUS_ADDRESS", stack().bus().address().c_str(), 1);
    namespace pc = promiscd::client;
    {
        pc::CaptureSession s(dev_, {.filter = "ether proto 0x88b5", .count = 10});
        EXPECT_EQ(s.path().rfind(root + "/capture/", 0), 0u) << s.path();
        EXPECT_FALSE(s.next(0ms).has_value()) << "nothing sent yet";
        std::vector<Bytes> sent;
        for (uint32_t i = 0; i < 10; ++i) {
            sent.push_back(test_frame(mac_, peer_mac_, 70 + i * 50, i, i == 3));
            sender_->send(sent.back());
        }
        for (const auto& want : sent) {
            auto f = s.next(10s);
            ASSERT_TRUE(f.has_value());
            EXPECT_EQ(hex(f->data), hex(want));
            EXPECT_EQ(f->link_type, 1);
        }
        EXPECT_FALSE(s.next(10s).has_value());
        EXPECT_TRUE(s.eof());
        ASSERT_TRUE(s.statistics().has_value());
        EXPECT_EQ(s.statistics()->received.value_or(0), 10u);
        EXPECT_EQ(s.interfaces().at(0).name, dev_);
        EXPECT_EQ(s.wait_finished(10s).value_or("none"), "count-reached");
    }
    {
        pc::CaptureSession s(dev_, {.filter = "ether proto 0x88b5"});
        for (uint32_t i = 0; i < 3; ++i)
            sender_->send(test_frame(mac_, peer_mac_, 100, i, false));
        s.stop(); // the frames sent before the stop still come
        size_t n = 0;
        while (s.next(10s))
            ++n;
        EXPECT_EQ(n, 3u);
        EXPECT_TRUE(s.eof());
        EXPECT_TRUE(s.statistics().has_value());
        EXPECT_EQ(s.wait_finished(10s).value_or("none"), "stopped");
    }
    try {
        pc::CaptureSession s("nosuch0");
        ADD_FAILURE() << "opened a capture on a link that does not exist";
    } catch (const pc::Error& e) {
        EXPECT_EQ(e.kind(), pc::ErrorKind::NoSuchInterface);
        EXPECT_EQ(e.dbus_name(), err + "NoSuchInterface");
        EXPECT_NE(std::string(e.what()).find("'nosuch0'"), std::string::npos) << e.what();
    }
    try {
        pc::CaptureSession s(dev_, {.filter = "udp port"});
        ADD_FAILURE() << "an invalid filter was accepted";
    } catch (const pc::Error& e) {
        EXPECT_EQ(e.kind(), pc::ErrorKind::InvalidFilter);
    }
    EXPECT_TRUE(wait_until([&] { return leases().empty(); }));
    ::unsetenv("DBUS_SYSTEM_BUS_ADDRESS");
}

// The same reader on a stream dumpcap wrote (`dumpcap -w -` into a pipe),
// read while dumpcap is still writing it, then ended by dumpcap's own ISB.
TEST_F(Capture, SessionReadsADumpcapStream) {
    PipedChild dumpcap(
        ns().wrap({"dumpcap", "-q", "-i", dev_, "-f", "ether proto 0x88b5", "-w", "-"}));
    auto s = promiscd::client::CaptureSession::from_stream(dumpcap.take_read_fd());
    // dumpcap says "Capturing on" before its socket is bound: send probes
    // until one comes through.
    bool ready = false;
    for (uint32_t probe = 0; probe < 300 && !ready; ++probe) {
        sender_->send(test_frame(mac_, peer_mac_, 60, 0xffff0000 + probe, false));
        ready = s.next(100ms).has_value();
    }
    ASSERT_TRUE(ready) << "dumpcap captured nothing";
    std::vector<Bytes> sent;
    for (uint32_t i = 0; i < 10; ++i) {
        // Untagged: libpcap on a live socket filters with the kernel's VLAN
        // metadata, so `ether proto` does not match tagged frames there.
        sent.push_back(test_frame(mac_, peer_mac_, 64 + i * 100, i, false));
        sender_->send(sent.back());
    }
    size_t matched = 0;
    while (matched < sent.size()) {
        auto f = s.next(10s);
        ASSERT_TRUE(f.has_value());
        if (f->data.size() == 60 && f->data[14] == 0xff)
            continue; // a late probe
        EXPECT_EQ(hex(f->data), hex(sent[matched])) << matched;
        ++matched;
    }
    dumpcap.stop(); // SIGTERM: dumpcap writes its ISB and closes the pipe
    while (s.next(10s)) {
    }
    EXPECT_TRUE(s.eof());
    EXPECT_EQ(s.interfaces().at(0).name, dev_);
    EXPECT_TRUE(s.statistics().has_value()) << "dumpcap's closing ISB";
}

} // namespace
