// Wireshark's way in (issue 12): tshark, run as a person with no privileges,
// finds promiscd-extcap in that person's extcap folder and captures through
// it, also from inside a sandbox like Flatpak's, where dumpcap cannot open
// any link. The real stack (desktop_stack.hpp) and the real tshark 4.0; what
// is checked is what the person sees: tshark's interface list, the frames
// in the file tshark wrote, its messages, and that no lease outlives the
// capture.
#include "desktop_stack.hpp"

#include <algorithm>
#include <csignal>
#include <sstream>
#include <sys/stat.h>
#include <sys/types.h>
#include <thread>

using namespace promiscd::testing;
using nlohmann::json;

namespace {

const std::string kHelper = PROMISCD_EXTCAP_BINARY;

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// The frames of a capture file as tshark reads them back: raw bytes in hex.
std::vector<std::string> frames_in(const std::string& file) {
    auto r = run({"tshark", "-r", file, "-T", "json", "-x"});
    EXPECT_EQ(r.status, 0) << r.err;
    std::vector<std::string> out;
    if (!r.ok())
        return out;
    for (const auto& p : json::parse(r.out))
        out.push_back(p.at("_source").at("layers").at("frame_raw").at(0).get<std::string>());
    return out;
}

class Extcap : public DesktopStack {
protected:
    void SetUp() override {
        DesktopStack::SetUp();
        if (HasFatalFailure() || IsSkipped())
            return;
        // The person's own extcap folder, as docs/WIRESHARK.md says to set it
        // up: the helper in $XDG_CONFIG_HOME/wireshark/extcap.
        std::filesystem::create_directories(extcap_dir());
        std::filesystem::create_symlink(kHelper, extcap_dir() + "/promiscd-extcap");
        for (const auto& dir : {home_ / ".config", home_ / ".config/wireshark", extcap_dir()})
            ::chown(dir.c_str(), kAllowedUser.uid, kAllowedUser.gid);
        // pddeny uses the same home: it may write there too.
        for (const auto& dir : {home_.path(), home_ / ".config", home_ / ".config/wireshark"})
            ::chmod(dir.c_str(), 0777);
    }

    std::string extcap_dir() const { return home_ / ".config/wireshark/extcap"; }
    std::string iface() const { return "promiscd-" + dev_; }
    std::map<std::string, std::string> person_env() const {
        return {{"HOME", home_.path()}, {"XDG_CONFIG_HOME", home_ / ".config"}};
    }
    // tshark ARGS as user, to completion.
    CommandResult tshark(std::vector<std::string> args, const TestUser& user = kAllowedUser) {
        args.insert(args.begin(), "tshark");
        auto env = stack_->env();
        for (auto& [k, v] : person_env())
            env[k] = v;
        return run(as_user(user, args), env);
    }
    Process& tshark_bg(std::vector<std::string> args, const TestUser& user = kAllowedUser) {
        args.insert(args.begin(), "tshark");
        return spawn(args, &user, person_env());
    }
    // Waits for the one lease a capture holds; fails the test without it.
    json capture_lease() {
        json l;
        EXPECT_TRUE(wait_until(
            [&] {
                l = leases();
                return l.size() == 1;
            },
            20s))
            << "no lease while tshark captures: " << l;
        return l.size() == 1 ? l[0] : json();
    }
    // True once no lease and no capture is left, and no helper runs.
    bool all_gone() {
        return leases().empty() && captures().empty() && !helper_running() && !promisc(dev_);
    }
    // Whether a promiscd-extcap of this build runs (zombies do not count).
    static bool helper_running() {
        std::error_code ec;
        const auto target = std::filesystem::canonical(kHelper, ec);
        for (const auto& e : std::filesystem::directory_iterator("/proc")) {
            const std::string pid = e.path().filename();
            if (pid.find_first_not_of("0123456789") != std::string::npos)
                continue;
            auto exe = std::filesystem::read_symlink(e.path() / "exe", ec);
            if (ec || exe != target)
                continue;
            if (!contains(read_file(e.path() / "status"), "State:\tZ"))
                return true;
        }
        return false;
    }
    std::vector<Bytes> send_ours(int n, uint32_t first = 0) {
        std::vector<Bytes> sent;
        for (int i = 0; i < n; ++i) {
            sent.push_back(test_frame(mac_, peer_mac_, 60 + static_cast<size_t>(i) * 70,
                                      first + static_cast<uint32_t>(i)));
            sender_->send(sent.back());
        }
        return sent;
    }
    void expect_frames(const std::string& file, const std::vector<Bytes>& sent) {
        auto got = frames_in(file);
        ASSERT_EQ(got.size(), sent.size());
        for (size_t i = 0; i < sent.size(); ++i)
            EXPECT_EQ(got[i], hex(sent[i])) << "frame " << i;
    }
};

// tshark -D lists the links of the daemon's namespace, with values that stay
// safe whatever bytes a link's name holds, and tshark -L their link type.
TEST_F(Extcap, TsharkListsEveryLinkOfPromiscd) {
    // A name with braces (which would end an extcap field) and a byte that
    // is not UTF-8 (which the daemon shows as \xff).
    ns_->exec_ok("ip link add name \"$(printf 'p{\\377}')\" type ifb");
    auto r = tshark({"-D"});
    ASSERT_EQ(r.status, 0) << r.err;
    auto listed = [&](const std::string& value, const std::string& display) {
        for (const auto& line : lines_of(r.out)) {
            auto dot = line.find(". ");
            if (dot != std::string::npos && line.substr(dot + 2) == value + " (" + display + ")")
                return true;
        }
        return false;
    };
    EXPECT_TRUE(listed(iface(), dev_ + " via promiscd")) << r.out;
    EXPECT_TRUE(listed("promiscd-lo", "lo via promiscd")) << r.out;
    EXPECT_TRUE(listed("promiscd-any", "any via promiscd")) << r.out;
    // The daemon's escape "\xff" is shown as it is; the braces as "\x7b",
    // "\x7d" (a backslash of the name itself would be the daemon's "\\").
    EXPECT_TRUE(listed("promiscd-p%7B%5Cxff%7D", "p\\x7b\\xff\\x7d via promiscd")) << r.out;
    EXPECT_FALSE(contains(r.out, veth_.peer_name)) << "the peer is in another namespace";

    auto dlts = tshark({"-i", iface(), "-L"});
    EXPECT_EQ(dlts.status, 0) << dlts.err;
    EXPECT_TRUE(contains(dlts.out, "EN10MB")) << dlts.out;

    // The odd name reaches the daemon intact: a capture on it holds a lease
    // on exactly that link.
    auto& t =
        tshark_bg({"-i", "promiscd-p%7B%5Cxff%7D", "-a", "duration:2", "-w", home_ / "odd.pcapng"});
    auto lease = capture_lease();
    EXPECT_EQ(lease[2], "p{\\xff}") << lease;
    EXPECT_EQ(t.wait(20s), 0) << t.log();
    EXPECT_TRUE(wait_until([&] { return leases().empty() && captures().empty(); }, 10s));
}

// As pdallow (no root, no capabilities, no wireshark group): 20 frames from
// the peer namespace, byte for byte; the lease exists while tshark runs and
// is gone after.
TEST_F(Extcap, NonRootTsharkCapturesFramesByteExact) {
    const std::string out = home_ / "out.pcapng";
    auto& t = tshark_bg({"-i", iface(), "-c", "20", "-w", out});
    auto lease = capture_lease();
    EXPECT_EQ(lease[2], dev_);
    EXPECT_EQ(lease[5], kAllowedUser.uid) << "the person's own uid holds it";
    EXPECT_EQ(lease[8].get<std::string>().rfind("capture ", 0), 0u) << lease;
    EXPECT_TRUE(promisc(dev_)) << "ip link shows PROMISC while tshark captures";
    EXPECT_EQ(captures().size(), 1u);

    const auto sent = send_ours(20);
    ASSERT_EQ(t.wait(30s), 0) << t.log();
    expect_frames(out, sent);
    EXPECT_TRUE(wait_until([&] { return all_gone(); }, 10s))
        << "leases: " << leases() << " captures: " << captures().size();
}

// tshark's capture filter reaches the daemon: only matching frames.
TEST_F(Extcap, CaptureFilterKeepsOnlyMatchingFrames) {
    const std::string out = home_ / "filtered.pcapng";
    auto& t = tshark_bg({"-i", iface(), "-f", "ether proto 0x88b5", "-c", "10", "-w", out});
    capture_lease();
    std::vector<Bytes> ours;
    for (uint32_t i = 0; i < 10; ++i) {
        sender_->send(test_frame(mac_, peer_mac_, 100, 1000 + i, kOtherType));
        ours.push_back(test_frame(mac_, peer_mac_, 100 + i, i, kOurType));
        sender_->send(ours.back());
    }
    ASSERT_EQ(t.wait(30s), 0) << t.log();
    expect_frames(out, ours);
    EXPECT_TRUE(wait_until([&] { return all_gone(); }, 10s));
}

// The sandbox of the Wireshark Flatpak: bubblewrap with every namespace
// unshared, no capabilities, no new privileges, a private /tmp, and of the
// host only /usr, the person's home and the system bus socket. dumpcap
// cannot capture there; through promiscd tshark can.
TEST_F(Extcap, InASandboxLikeFlatpaksTsharkCapturesWhereDumpcapCannot) {
    if (run({"sh", "-c", "command -v bwrap"}).status != 0)
        GTEST_FAIL() << "bwrap is missing: scripts/install-deps installs bubblewrap";
    const std::string bus_socket = stack_->address().substr(std::string("unix:path=").size());
    const std::string build = PROMISCD_BUILD_ROOT;
    auto sandboxed = [&](const std::string& script) {
        std::vector<std::string> argv = {
            "bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            "--ro-bind", "/usr", "/usr", "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64",
            "/lib64", "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin", "--ro-bind",
            "/etc/ld.so.cache", "/etc/ld.so.cache",
            // A passwd that knows the person, as Flatpak writes one.
            "--ro-bind", stack_->dir() + "/passwd", "/etc/passwd", "--ro-bind",
            stack_->dir() + "/group", "/etc/group", "--proc", "/proc", "--dev", "/dev", "--tmpfs",
            "/tmp",
            // The helper: in the person's extcap folder, a link into the build.
            "--ro-bind", build, build, "--bind", home_.path(), home_.path(),
            // Of the host's sockets, only the system bus.
            "--bind", bus_socket, "/run/dbus/system_bus_socket", "--setenv",
            "DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/dbus/system_bus_socket", "--setenv", "HOME",
            home_.path(), "--setenv", "XDG_CONFIG_HOME", home_ / ".config", "--chdir", home_.path(),
            "sh", "-c", script};
        return as_user(kAllowedUser, argv);
    };

    // What the sandbox is: no capabilities, no new privileges, no network.
    // (/proc/net/dev lists the links of the reader's network namespace.)
    auto status = run(sandboxed("cat /proc/self/status /proc/net/dev"));
    ASSERT_EQ(status.status, 0) << status.err;
    EXPECT_TRUE(contains(status.out, "NoNewPrivs:\t1")) << status.out;
    EXPECT_TRUE(contains(status.out, "CapEff:\t0000000000000000")) << status.out;
    EXPECT_TRUE(contains(status.out, "CapBnd:\t0000000000000000")) << status.out;
    EXPECT_FALSE(contains(status.out, dev_)) << "the sandbox has no network of its own";

    // dumpcap cannot open a link there: neither the daemon's link nor even
    // the sandbox's own loopback.
    for (const std::string& link : {dev_, std::string("lo")}) {
        auto d = run(sandboxed("dumpcap -i " + link + " -c 1 -a duration:3 -w /tmp/d.pcapng"));
        EXPECT_NE(d.status, 0) << "dumpcap captured on " << link << " in the sandbox";
        if (link == "lo") {
            EXPECT_TRUE(contains(d.err, "ermission") || contains(d.err, "not permitted")) << d.err;
        }
    }

    // tshark through promiscd works.
    const std::string out = home_ / "sandboxed.pcapng";
    procs_.push_back(std::make_unique<Process>(
        sandboxed("exec tshark -i " + iface() + " -c 20 -w " + out), Process::Options{}));
    Process& t = *procs_.back();
    auto lease = capture_lease();
    EXPECT_EQ(lease[5], kAllowedUser.uid) << "the daemon sees the person's uid, not the sandbox's";
    const auto sent = send_ours(20);
    ASSERT_EQ(t.wait(30s), 0) << t.log();
    expect_frames(out, sent);
    EXPECT_TRUE(wait_until([&] { return all_gone(); }, 10s));
}

// polkit says no to pddeny: tshark fails with the helper's one line, and no
// lease or capture ever exists.
TEST_F(Extcap, DeniedUserSeesTheHelpersLineAndGetsNoLease) {
    // tshark's own -a duration never fires: no capture starts. It ends
    // because the helper ends the fifo's stream, whether or not dumpcap had
    // opened the fifo when the helper failed (dumpcap waits for a writer
    // for ever otherwise); ten tries meet both orders.
    for (int i = 0; i < 10; ++i) {
        auto& t = tshark_bg({"-i", iface(), "-c", "1", "-a", "duration:10", "-w",
                             home_ / ("denied" + std::to_string(i) + ".pcapng")},
                            kDeniedUser);
        const auto status = t.wait(15s);
        ASSERT_TRUE(status.has_value()) << "tshark hangs after the helper failed: " << t.log();
        EXPECT_NE(*status, 0);
        const std::string line = "promiscd-extcap: cannot capture on '" + dev_ + "': uid " +
                                 std::to_string(kDeniedUser.uid) +
                                 " is not authorized to capture traffic (polkit action "
                                 "org.promiscd.capture)";
        EXPECT_TRUE(contains(t.log(), line)) << t.log();
    }
    EXPECT_TRUE(leases().empty());
    EXPECT_TRUE(captures().empty());
    EXPECT_FALSE(promisc(dev_));
    EXPECT_FALSE(contains(daemon_->log(), "granted")) << daemon_->log();
}

// Wireshark stops a capture (tshark -a duration:1): the helper is told
// (SIGTERM, its fifo closed) and the daemon's capture and lease end with it.
TEST_F(Extcap, StoppingWiresharkEndsCaptureAndLease) {
    auto& t = tshark_bg({"-i", iface(), "-a", "duration:1", "-w", home_ / "short.pcapng"});
    capture_lease();
    // Traffic while it stops: a helper blocked in a write must notice too.
    for (int i = 0; i < 20 && t.running(); ++i) {
        send_ours(5, static_cast<uint32_t>(i * 5));
        std::this_thread::sleep_for(100ms);
    }
    ASSERT_EQ(t.wait(20s), 0) << t.log();
    EXPECT_TRUE(wait_until([&] { return all_gone(); }, 5s))
        << "leases: " << leases() << " captures: " << captures().size()
        << " helper running: " << helper_running();
    EXPECT_TRUE(contains(daemon_->log(), " finished: stopped"))
        << "the helper stopped it, not its death: " << daemon_->log();
}

// The fifo closed under the helper (Wireshark's reader went away), with no
// signal and no traffic: the capture and the lease end at once and the
// helper exits cleanly.
TEST_F(Extcap, ClosedFifoEndsCaptureAndLease) {
    const std::string fifo = files_ / "fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
    ::chmod(fifo.c_str(), 0666);
    Process& helper =
        spawn({kHelper, "--capture", "--extcap-interface", iface(), "--fifo", fifo}, &kAllowedUser);
    int fd = ::open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    capture_lease();
    // The stream starts with pcapng's section header block.
    uint8_t shb[4] = {};
    ASSERT_EQ(::read(fd, shb, sizeof shb), 4);
    EXPECT_EQ(hex(Bytes(shb, shb + 4)), "0a0d0d0a");
    ::close(fd);
    EXPECT_EQ(helper.wait(5s), 0) << helper.log();
    EXPECT_TRUE(wait_until([&] { return all_gone(); }, 5s));
}

// The options Wireshark offers in the interface's dialog (--extcap-config)
// reach the daemon: its own capture filter, the snapshot length, the buffer,
// and promiscuous mode off (then no lease at all).
TEST_F(Extcap, ConfigOptionsReachTheDaemon) {
    auto helper = [&](std::vector<std::string> args) {
        args.insert(args.begin(), kHelper);
        return run(as_user(kAllowedUser, args), stack_->env());
    };
    auto config = helper({"--extcap-interface", iface(), "--extcap-config"});
    ASSERT_EQ(config.status, 0) << config.err;
    for (const auto& call : {"--capture-filter", "--snaplen", "--buffer-size", "--promiscuous"})
        EXPECT_TRUE(contains(config.out, std::string("{call=") + call + "}")) << config.out;
    EXPECT_EQ(std::count(config.out.begin(), config.out.end(), '\n'), 4) << config.out;
    auto any = helper({"--extcap-interface", "promiscd-any", "--extcap-config"});
    EXPECT_FALSE(contains(any.out, "--promiscuous")) << "any is never promiscuous: " << any.out;
    auto dlts = helper({"--extcap-interface", "promiscd-any", "--extcap-dlts"});
    EXPECT_TRUE(contains(dlts.out, "{number=276}{name=LINUX_SLL2}")) << dlts.out;

    const std::string fifo = files_ / "fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
    ::chmod(fifo.c_str(), 0666);
    const std::string out = files_ / "out.pcapng";
    // Wireshark's side of the fifo: everything into a file.
    Process& reader = spawn({"sh", "-c", "exec cat '" + fifo + "' > '" + out + "'"});
    Process& h = spawn({kHelper, "--capture", "--extcap-interface", iface(), "--fifo", fifo,
                        "--capture-filter", "ether proto 0x88b5", "--snaplen", "64",
                        "--buffer-size", "2", "--promiscuous", "false"},
                       &kAllowedUser);
    ASSERT_TRUE(wait_until([&] { return captures().size() == 1; }, 20s)) << h.log();
    EXPECT_TRUE(leases().empty()) << "promiscuous off: no lease " << leases();
    EXPECT_FALSE(promisc(dev_));
    std::vector<Bytes> ours;
    for (uint32_t i = 0; i < 5; ++i) {
        sender_->send(test_frame(mac_, peer_mac_, 120, 100 + i, kOtherType));
        ours.push_back(test_frame(mac_, peer_mac_, 120 + i, i, kOurType));
        sender_->send(ours.back());
    }
    // Frames reach the fifo before the stop; then the closing statistics.
    std::this_thread::sleep_for(500ms);
    h.signal(SIGTERM);
    EXPECT_EQ(h.wait(10s), 0) << h.log();
    EXPECT_EQ(reader.wait(10s), 0) << reader.log();
    auto got = frames_in(out);
    ASSERT_EQ(got.size(), ours.size()) << "only the filter's frames";
    for (size_t i = 0; i < ours.size(); ++i)
        EXPECT_EQ(got[i], hex(ours[i]).substr(0, 128)) << "frame " << i << " cut at 64 bytes";
    EXPECT_TRUE(wait_until([&] { return all_gone(); }, 5s));
}

// The helper allows interactive authorization, so that a desktop's polkit
// agent can ask for a password. The test rules want an administrator's
// password for captures on "any"; polkit could ask here, and no agent runs
// (none could type the password): the daemon's answer says that polkit was
// allowed to ask, which a request without the flag does not get
// (InteractiveAuthorizationRequired, "allow interactive authorization").
TEST_F(Extcap, AllowsInteractiveAuthorization) {
    const std::string fifo = files_ / "fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
    ::chmod(fifo.c_str(), 0666);
    auto r = run(as_user(kAllowedUser, {kHelper, "--capture", "--extcap-interface", "promiscd-any",
                                        "--fifo", fifo}),
                 stack_->env());
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "promiscd-extcap: cannot capture on 'any': uid " +
                         std::to_string(kAllowedUser.uid) +
                         " is not authorized to capture traffic (polkit action "
                         "org.promiscd.capture): authentication is required and no polkit agent "
                         "answered\n");
    EXPECT_TRUE(leases().empty());
    EXPECT_TRUE(captures().empty());
}

// Wireshark stops its extcap programs with SIGTERM; a terminal's Ctrl-C
// sends SIGINT. Either way, while Wireshark still holds the fifo open, the
// helper has the daemon stop the capture (not merely die and let the
// daemon notice), its lease ends with it, and the helper exits 0.
TEST_F(Extcap, SigtermAndSigintStopCaptureAndLease) {
    int n = 0;
    for (int sig : {SIGTERM, SIGINT}) {
        SCOPED_TRACE(strsignal(sig));
        const std::string fifo = files_ / ("fifo" + std::to_string(sig));
        ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
        ::chmod(fifo.c_str(), 0666);
        Process& helper = spawn(
            {kHelper, "--capture", "--extcap-interface", iface(), "--fifo", fifo}, &kAllowedUser);
        int fd = ::open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        capture_lease();
        uint8_t shb[4] = {};
        ASSERT_EQ(::read(fd, shb, sizeof shb), 4);
        EXPECT_EQ(hex(Bytes(shb, shb + 4)), "0a0d0d0a");
        EXPECT_TRUE(promisc(dev_));
        helper.signal(sig);
        EXPECT_EQ(helper.wait(5s), 0) << helper.log();
        EXPECT_TRUE(wait_until([&] { return all_gone(); }, 2s))
            << "leases: " << leases() << " captures: " << captures().size();
        ++n;
        const std::string log = daemon_->log();
        size_t stopped = 0;
        for (size_t pos = 0; (pos = log.find(" finished: stopped", pos)) != log.npos; ++pos)
            ++stopped;
        EXPECT_EQ(stopped, static_cast<size_t>(n)) << "the helper stopped it: " << log;
        ::close(fd);
    }
}

// Whatever goes wrong reaches the person as one line on standard error and
// a non-zero exit, the way Wireshark shows it.
TEST_F(Extcap, EveryFailureIsOneReadableLine) {
    const std::string fifo = files_ / "fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0666), 0);
    ::chmod(fifo.c_str(), 0666); // whatever the umask: the person writes it
    auto helper = [&](std::vector<std::string> args) {
        args.insert(args.begin(), kHelper);
        return run(as_user(kAllowedUser, args), stack_->env());
    };
    auto one_line = [](const CommandResult& r) {
        return !r.err.empty() && r.err.find('\n') == r.err.size() - 1;
    };
    const std::vector<std::string> capture = {"--capture", "--extcap-interface", iface(), "--fifo",
                                              fifo};

    // A filter the daemon's libpcap refuses.
    auto args = capture;
    args.insert(args.end(), {"--extcap-capture-filter", "ether proto nonsense"});
    auto r = helper(args);
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(one_line(r)) << r.err;
    EXPECT_EQ(r.err.rfind("promiscd-extcap: cannot capture on '" + dev_ + "': ", 0), 0u) << r.err;
    EXPECT_TRUE(contains(r.err, "nonsense")) << r.err;

    // Wireshark checks a filter as it is typed: nothing when valid, a line
    // when not.
    r = helper({"--extcap-interface", iface(), "--extcap-capture-filter", "ether proto 0x88b5"});
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(r.out, "");
    r = helper({"--extcap-interface", iface(), "--extcap-capture-filter", "ether proto nonsense"});
    EXPECT_EQ(r.status, 0);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
    EXPECT_TRUE(contains(r.out, "nonsense")) << r.out;

    // A link that does not exist (any more).
    r = helper({"--capture", "--extcap-interface", "promiscd-gone0", "--fifo", fifo});
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err,
              "promiscd-extcap: cannot capture on 'gone0': interface 'gone0' does not exist\n");

    // The link goes away during the capture.
    auto argv = capture;
    argv.insert(argv.begin(), kHelper);
    Process& running = spawn(argv, &kAllowedUser);
    // Non-blocking: a helper that never opens the fifo fails the test, not hangs it.
    int fd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    capture_lease();
    ns_->exec_ok("ip link del dev " + dev_);
    EXPECT_EQ(running.wait(10s), 1) << running.log();
    EXPECT_EQ(running.log(),
              "promiscd-extcap: the capture on '" + dev_ + "' ended: the link was removed\n");
    ::close(fd);

    // promiscd not running.
    stop_daemon();
    r = helper(capture);
    EXPECT_EQ(r.status, 1);
    EXPECT_EQ(r.err, "promiscd-extcap: cannot capture on '" + dev_ +
                         "': promiscd is not running (nobody owns " PROMISCD_BUS_NAME
                         " on the system bus)\n");
    r = helper({"--extcap-interfaces"});
    EXPECT_EQ(r.status, 1);
    EXPECT_TRUE(one_line(r)) << r.err;
    EXPECT_TRUE(contains(r.err, "promiscd is not running")) << r.err;
}

} // namespace
