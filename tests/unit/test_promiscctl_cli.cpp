// promiscctl's command line: what it says about a command line that makes no
// sense (exit 2, before any connection is made), and how it reads tcpdump's
// conventions for capture. The commands themselves are tested end to end in
// tests/integration/test_promiscctl*.cpp.
#include "cli.hpp"
#include "commands.hpp"

#include <gtest/gtest.h>
#include <regex>
#include <string>
#include <vector>

namespace {

using promiscd::ctl::CaptureArgs;
using promiscd::ctl::resolve_capture_words;
using promiscd::ctl::UsageError;

struct Ran {
    int status;
    std::string err;
};

// promiscctl ARGS in this process, pinned to a socket that does not exist
// so that nothing can reach a daemon.
Ran ctl(std::vector<std::string> args) {
    args.insert(args.begin(), {"promiscctl", "--transport=varlink",
                               "--varlink-socket=/nonexistent/promiscd-unit-test"});
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    ::testing::internal::CaptureStderr();
    int status = promiscd::ctl::main(static_cast<int>(args.size()), argv.data());
    return {status, ::testing::internal::GetCapturedStderr()};
}

struct UsageCase {
    std::vector<std::string> args;
    std::string message;
};

TEST(PromiscctlCli, UsageErrorsSayWhatWasWrong) {
    const std::vector<UsageCase> cases = {
        {{"frobnicate"},
         "promiscctl: unknown command 'frobnicate' (commands: status, leases, hold, run, release, "
         "revoke, policy, capture, monitor)\n"},
        {{"capture", "-i", "eth0", "-c", "0"},
         "COUNT must be a number of frames, 1 or more (got '0'); leave -c out to capture until "
         "Ctrl-C"},
        {{"capture", "-i", "eth0", "-c", "many"}, "(got 'many')"},
        {{"capture"}, "capture: no link to capture on; name it with -i LINK"},
        {{"capture", "-i", "eth0", "-f", "udp", "tcp", "port", "80"},
         "capture: two filters, 'udp' (-f) and 'tcp port 80' (the trailing words); give one of "
         "them"},
        {{"capture", "eth0", "-s", "300000"},
         "SNAPLEN must be a number of bytes from 0 (the default, 262144) to 262144 (got "
         "'300000')"},
        {{"capture", "eth0", "-B", "0"}, "the buffer size is in MiB, from 1 to 4095 (got '0')"},
        {{"capture", "eth0", "-F", "socket"}, "socket"},
        {{"capture", "eth0", "--format=socket"}, "socket"},
    };
    for (const auto& c : cases) {
        auto r = ctl(c.args);
        SCOPED_TRACE(c.args.front() + (c.args.size() > 1 ? " " + c.args[1] : ""));
        EXPECT_EQ(r.status, 2) << r.err;
        EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("Try 'promiscctl --help' for more information."), std::string::npos)
            << r.err;
        EXPECT_FALSE(std::regex_search(r.err, std::regex("[0-9]{21}"))) << "no huge numbers";
    }
}

TEST(PromiscctlCli, ACommandLineThatParsesGoesOnToConnect) {
    // tcpdump's order: options, link, filter words; and the long options of
    // earlier versions. Parsed, they reach the (missing) socket: exit 4.
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"capture", "-i", "eth0", "-c", "5", "-s", "0", "-B", "8", "-p", "-F", "pcap", "-q",
              "-w", "/dev/null", "tcp", "port", "80"},
             {"capture", "eth0", "-c", "5", "tcp", "port", "80", "-w", "-"},
             {"capture", "eth0", "--filter", "udp", "--write=-", "--count=3", "--snaplen=128",
              "--format=pcapng", "--no-promisc", "--buffer-size=2"},
             {"capture", "-i", "eth0", "--", "not", "port", "22"},
         }) {
        auto r = ctl(args);
        EXPECT_EQ(r.status, 4) << r.err;
        EXPECT_NE(r.err.find("cannot connect to promiscd's varlink socket"), std::string::npos)
            << r.err;
    }
}

struct WordsCase {
    std::string interface_option;
    std::string filter_option;
    std::vector<std::string> words;
    std::string link;
    std::string filter;
};

TEST(PromiscctlCli, CaptureLinkAndFilterAsTcpdumpTakesThem) {
    const std::vector<WordsCase> cases = {
        {"eth0", "", {}, "eth0", ""},
        {"", "", {"eth0"}, "eth0", ""},
        {"", "", {"eth0", "tcp", "port", "80"}, "eth0", "tcp port 80"},
        {"eth0", "", {"tcp", "port", "80"}, "eth0", "tcp port 80"},
        {"eth0", "", {"not", "(port 22", "or", "port 53)"}, "eth0", "not (port 22 or port 53)"},
        {"", "udp", {"eth0"}, "eth0", "udp"},
        {"eth0", "udp port 9", {}, "eth0", "udp port 9"},
    };
    for (const auto& c : cases) {
        CaptureArgs a;
        a.filter = c.filter_option;
        resolve_capture_words(a, c.interface_option, c.words);
        EXPECT_EQ(a.link, c.link);
        EXPECT_EQ(a.filter, c.filter);
    }
    CaptureArgs none;
    EXPECT_THROW(resolve_capture_words(none, "", {}), UsageError);
    CaptureArgs both;
    both.filter = "udp";
    EXPECT_THROW(resolve_capture_words(both, "eth0", {"tcp"}), UsageError);
}

} // namespace
