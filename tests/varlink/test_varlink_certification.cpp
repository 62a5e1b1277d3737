// Conformance with the varlink project's own certification suite, both
// directions, with its reference implementation (Debian's Go library,
// golang-github-varlink-go-dev) as the other side:
//  - the Go certification client against a service built from promiscd's
//    varlink::Server and varlink::Service (varlink_certification_server);
//  - promiscd's varlink client (varlink_certification_client, on
//    client::VarlinkClient) against the Go certification service;
//  - the Go library introspecting that service and the real daemon, its IDL
//    parser reading every description they return.
// The Go programs are built here from Debian's sources; without `go` the
// tests skip and say what to install.
#include "certification_paths.h"
#include "netns.hpp"
#include "process.hpp"

#include <filesystem>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>

using namespace promiscd::testing;
using nlohmann::json;

namespace {

std::string find_go() {
    const char* path = std::getenv("PATH");
    std::stringstream dirs(path ? path : "/usr/bin:/bin");
    std::string dir;
    while (std::getline(dirs, dir, ':'))
        if (!dir.empty() && ::access((dir + "/go").c_str(), X_OK) == 0)
            return dir + "/go";
    return {};
}

bool is_socket(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream in(text);
    std::string line;
    while (std::getline(in, line))
        out.push_back(line);
    return out;
}

// What the Go client prints when every step succeeds (after Start's id).
std::vector<std::string> go_client_transcript() {
    std::vector<std::string> t = {
        "Test01: 'true'",
        "Test02: '1'",
        "Test03: '1'",
        "Test04: 'ping'",
        "Test05: 'false'",
        "Test06: '{false 2 3.141592653589793 a lot of string}'",
        "Test07: 'map[bar:Bar foo:Foo]'",
        "Test08: 'map[one:{} three:{} two:{}]'",
        "Test09: '*", // a Go struct with a pointer in it
        "Test10() Send:",
    };
    std::string all;
    for (int i = 1; i <= 10; ++i) {
        t.push_back("  Receive: 'Reply number " + std::to_string(i) + "'");
        all += (i > 1 ? " " : "") + std::string("Reply number ") + std::to_string(i);
    }
    t.push_back("Test10: '[" + all + "]'");
    t.push_back("Test11: ''");
    t.push_back("End: 'true'");
    return t;
}

class Certification : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        go_ = find_go();
        if (go_.empty())
            return;
        // Kept in the build directory, so that a second run reuses Go's cache.
        const std::string dir = std::string(CERT_BUILD_DIR) + "/go";
        std::filesystem::create_directories(dir + "/gopath");
        const std::map<std::string, std::string> env = {
            {"GOPATH", dir + "/gopath:/usr/share/gocode"},
            {"GO111MODULE", "off"},
            {"GOCACHE", dir + "/cache"},
            {"GOFLAGS", ""},
            {"CGO_ENABLED", "0"},
        };
        go_certification_ = dir + "/varlink-go-certification";
        go_introspect_ = dir + "/varlink_introspect";
        for (const auto& argv : std::vector<std::vector<std::string>>{
                 {go_, "build", "-o", go_certification_,
                  "github.com/varlink/go/cmd/varlink-go-certification"},
                 {go_, "build", "-o", go_introspect_,
                  std::string(CERT_SOURCE_DIR) + "/go/varlink_introspect.go"}}) {
            auto r = run(argv, env);
            if (!r.ok()) {
                build_error_ += "`" + argv[0] + " build ... " + argv.back() + "` failed (" +
                                std::to_string(r.status) + "):\n" + r.out + r.err +
                                "\n(Debian: apt-get install golang-go "
                                "golang-github-varlink-go-dev)\n";
                return;
            }
        }
    }

    void SetUp() override {
        if (go_.empty())
            GTEST_SKIP() << "no `go` on PATH: the varlink certification suite needs Debian's "
                            "golang-go and golang-github-varlink-go-dev (scripts/install-deps)";
        ASSERT_TRUE(build_error_.empty()) << build_error_;
        sock_ = dir_ / "certification.sock";
    }

    void TearDown() override {
        if (HasFailure())
            for (auto* p : {ours_.get(), theirs_.get()})
                if (p)
                    std::cerr << "---- log of " << (p == ours_.get() ? "our" : "the Go")
                              << " service ----\n"
                              << p->log() << "\n";
        ours_.reset();
        theirs_.reset();
    }

    std::string address() const { return "unix:" + sock_; }

    void start_our_service() {
        ours_ = std::make_unique<Process>(
            std::vector<std::string>{CERT_SERVER, "--varlink=" + address()});
        ASSERT_NE(ours_->wait_for_output("listening on " + address()), std::string::npos)
            << ours_->log();
    }
    void start_go_service() {
        theirs_ = std::make_unique<Process>(
            std::vector<std::string>{go_certification_, "--varlink=" + address()});
        ASSERT_TRUE(wait_until([&] { return is_socket(sock_) || !theirs_->running(); }))
            << theirs_->log();
        ASSERT_TRUE(theirs_->running()) << theirs_->log();
    }

    // Runs argv to its end (at most a minute); its output and status.
    static std::pair<int, std::string> run_client(std::vector<std::string> argv) {
        Process p(std::move(argv));
        auto status = p.wait(60s);
        return {status ? *status : -1, p.log() + (status ? "" : "\n(timed out after 60 s)")};
    }

    json introspect(const std::string& flag) {
        auto [status, out] = run_client({go_introspect_, flag});
        EXPECT_EQ(status, 0) << out;
        try {
            return json::parse(out);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "varlink_introspect printed no JSON: " << out;
            return json::object();
        }
    }

    static inline std::string go_;
    static inline std::string go_certification_;
    static inline std::string go_introspect_;
    static inline std::string build_error_;
    TempDir dir_;
    std::string sock_;
    std::unique_ptr<Process> ours_;
    std::unique_ptr<Process> theirs_;
};

TEST_F(Certification, GoClientAgainstOurService) {
    start_our_service();
    auto [status, out] = run_client({go_certification_, "--client", "--varlink=" + address()});
    EXPECT_EQ(status, 0) << out;
    auto got = lines(out);
    auto want = go_client_transcript();
    ASSERT_EQ(got.size(), want.size() + 1) << out;
    EXPECT_EQ(got[0].rfind("Start: '", 0), 0u) << out;
    for (size_t i = 0; i < want.size(); ++i) {
        if (want[i].ends_with('*'))
            EXPECT_EQ(got[i + 1].rfind(want[i].substr(0, want[i].size() - 1), 0), 0u) << out;
        else
            EXPECT_EQ(got[i + 1], want[i]) << out;
    }
    EXPECT_EQ(out.find("failed"), std::string::npos) << out;
    // Our service checked every call, strictly, and agrees.
    EXPECT_NE(ours_->log().find(": End: all ok"), std::string::npos) << ours_->log();
    EXPECT_EQ(ours_->log().find("WRONG"), std::string::npos) << ours_->log();
}

TEST_F(Certification, OurClientAgainstGoService) {
    start_go_service();
    auto [status, out] = run_client({CERT_CLIENT, "--varlink=" + address()});
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("\nEnd: all_ok true\n"), std::string::npos) << out;
    EXPECT_EQ(out.find("FAILED"), std::string::npos) << out;
    EXPECT_NE(out.find("\nPASS\n"), std::string::npos) << out;
}

// Both sides ours: the Go service checks little of what it is sent (its End
// is always true), ours checks every value and type.
TEST_F(Certification, OurClientAgainstOurService) {
    start_our_service();
    auto [status, out] = run_client({CERT_CLIENT, "--varlink=" + address()});
    EXPECT_EQ(status, 0) << out;
    EXPECT_NE(out.find("\nEnd: all_ok true\n"), std::string::npos) << out;
    EXPECT_NE(out.find("\nPASS\n"), std::string::npos) << out;
    EXPECT_NE(ours_->log().find(": End: all ok"), std::string::npos) << ours_->log();
    // The deliberate mistake of the error checks, refused with what it wanted.
    EXPECT_NE(ours_->log().find("Test02: WRONG: wants {\"bool\":true}, got {\"bool\":false}"),
              std::string::npos)
        << ours_->log();
}

TEST_F(Certification, GoLibraryIntrospectsOurService) {
    start_our_service();
    json j = introspect("--varlink=" + address());
    EXPECT_EQ(j["info"]["interfaces"], json({"org.varlink.service", "org.varlink.certification"}));
    auto& cert = j["interfaces"]["org.varlink.certification"];
    EXPECT_EQ(cert.value("parse_error", ""), "") << cert;
    EXPECT_EQ(cert["name"], "org.varlink.certification");
    EXPECT_EQ(cert["types"], json({"Interface", "MyType"}));
    EXPECT_EQ(cert["methods"],
              json({"Start", "Test01", "Test02", "Test03", "Test04", "Test05", "Test06", "Test07",
                    "Test08", "Test09", "Test10", "Test11", "End"}));
    EXPECT_EQ(cert["errors"], json({"ClientIdError", "CertificationError"}));
    auto& service = j["interfaces"]["org.varlink.service"];
    EXPECT_EQ(service.value("parse_error", ""), "") << service;
    EXPECT_EQ(service["name"], "org.varlink.service");
    EXPECT_EQ(service["methods"], json({"GetInfo", "GetInterfaceDescription"}));
    EXPECT_EQ(service["errors"],
              json({"InterfaceNotFound", "MethodNotFound", "MethodNotImplemented",
                    "InvalidParameter", "PermissionDenied", "ExpectedMore"}));
}

// promiscd itself, as the Go library sees it: GetInfo (which it sends with
// "parameters": null), GetInterfaceDescription, and its IDL parser.
TEST_F(Certification, GoLibraryIntrospectsTheDaemon) {
    PROMISCD_REQUIRE_ROOT();
    Netns ns;
    TempDir state;
    const std::string sock = state / "io.promiscd";
    write_file(state / "promiscd.json", "{}\n");
    Process::Options o;
    o.log_path = state / "promiscd.log";
    Process daemon(ns.wrap({CERT_DAEMON, "--log-target=console", "--log-level=debug", "--no-bus",
                            "--state-dir=" + state.path(), "--config=" + state / "promiscd.json",
                            "--varlink=" + sock}),
                   o);
    ASSERT_TRUE(wait_until([&] {
        return daemon.log().find("watching") != std::string::npos || !daemon.running();
    })) << daemon.log();
    ASSERT_TRUE(daemon.running()) << daemon.log();

    json j = introspect("--varlink=unix:" + sock);
    EXPECT_EQ(j["info"]["product"], "promiscd") << j["info"];
    EXPECT_EQ(j["info"]["interfaces"], json({"org.varlink.service", "org.promiscd.promisc"}));
    auto& service = j["interfaces"]["org.varlink.service"];
    EXPECT_EQ(service.value("parse_error", ""), "") << service;
    EXPECT_EQ(service["methods"], json({"GetInfo", "GetInterfaceDescription"}));
    auto& promisc = j["interfaces"]["org.promiscd.promisc"];
    EXPECT_EQ(promisc["description"], read_file(CERT_DAEMON_IDL));

    const json methods = {"ListLinks", "ListLeases",    "Acquire",     "Release",     "Renew",
                          "Revoke",    "SetLinkPolicy", "OpenCapture", "StopCapture", "Monitor"};
    const json types = {"Link", "Lease", "Event"};
    // The reference grammar (the Go and Rust parsers) allows only [a-z0-9-]
    // in an interface name; the whole description must parse.
    ASSERT_EQ(promisc.value("parse_error", ""), "") << promisc["description"];
    EXPECT_EQ(promisc["name"], "org.promiscd.promisc");
    EXPECT_EQ(promisc["methods"], methods);
    EXPECT_EQ(promisc["types"], types);
    EXPECT_EQ(promisc["errors"].size(), 11u) << promisc["errors"];
}

} // namespace
