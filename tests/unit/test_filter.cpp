// Filters compiled with libpcap for the kernel, the cooked-socket rewrite,
// and attaching and locking them on a socket.
#include "capture/filter.hpp"
#include "capture/unique_fd.hpp"

#include <gtest/gtest.h>

#include <pcap/dlt.h>
#include <sys/socket.h>

#include <system_error>

namespace {

using namespace promiscd::capture;

bool loads_below(const BpfProgram& program, std::uint32_t limit) {
    for (const sock_filter& insn : program.instructions()) {
        const auto cls = BPF_CLASS(insn.code);
        const auto mode = BPF_MODE(insn.code);
        const bool load = (cls == BPF_LD && (mode == BPF_ABS || mode == BPF_IND)) ||
                          (cls == BPF_LDX && mode == BPF_MSH);
        if (load && static_cast<std::int32_t>(insn.k) >= 0 && insn.k < limit) {
            return true;
        }
    }
    return false;
}

bool has_ancillary_load(const BpfProgram& program, std::int32_t what) {
    for (const sock_filter& insn : program.instructions()) {
        if (BPF_CLASS(insn.code) == BPF_LD && BPF_MODE(insn.code) == BPF_ABS &&
            insn.k == static_cast<std::uint32_t>(SKF_AD_OFF + what)) {
            return true;
        }
    }
    return false;
}

TEST(Filter, CompilesForEthernetAndCookedLinkTypes) {
    for (int dlt : {DLT_EN10MB, DLT_LINUX_SLL2}) {
        const BpfProgram program = compile_filter("udp port 9", dlt, 1500);
        EXPECT_GT(program.instructions().size(), 5u) << dlt;
        // Accepted packets are cut to snaplen by the return value.
        const sock_filter& accept = program.instructions()[program.instructions().size() - 2];
        EXPECT_EQ(accept.code, BPF_RET | BPF_K);
        EXPECT_EQ(accept.k, 1500u);
    }
}

TEST(Filter, SyntaxErrorCarriesLibpcapsMessage) {
    try {
        compile_filter("udp port", DLT_EN10MB, 0);
        FAIL() << "no exception";
    } catch (const FilterError& e) {
        EXPECT_EQ(e.expression(), "udp port");
        EXPECT_NE(e.reason().find("syntax error"), std::string::npos) << e.reason();
        EXPECT_NE(std::string(e.what()).find("'udp port'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("syntax error"), std::string::npos) << e.what();
    }
}

TEST(Filter, SemanticErrorCarriesLibpcapsMessage) {
    try {
        compile_filter("ether host 1:2:3:4:5:6", DLT_LINUX_SLL2, 0);
        FAIL() << "no exception";
    } catch (const FilterError& e) {
        EXPECT_NE(e.reason().find("ethernet addresses"), std::string::npos) << e.reason();
    }
}

TEST(Filter, EmptyExpressionAcceptsEverythingUpToSnaplen) {
    for (const char* expression : {"", "  "}) {
        const BpfProgram program = compile_filter(expression, DLT_EN10MB, 0);
        ASSERT_EQ(program.instructions().size(), 1u);
        EXPECT_EQ(program.instructions()[0].code, BPF_RET | BPF_K);
        EXPECT_EQ(program.instructions()[0].k, 262144u);
    }
}

TEST(Filter, CookedFilterReadsFromTheNetworkHeader) {
    const BpfProgram sll2 = compile_filter("udp port 9", DLT_LINUX_SLL2, 0);
    EXPECT_TRUE(loads_below(sll2, 20));
    const BpfProgram cooked = compile_cooked_filter("udp port 9", 0);
    ASSERT_EQ(cooked.instructions().size(), sll2.instructions().size());
    EXPECT_TRUE(has_ancillary_load(cooked, SKF_AD_PROTOCOL));
    // The IPv4 protocol byte: SLL2 offset 29 becomes offset 9 of the IP header.
    bool found = false;
    for (const sock_filter& insn : cooked.instructions()) {
        found = found || (insn.code == (BPF_LD | BPF_B | BPF_ABS) && insn.k == 9);
    }
    EXPECT_TRUE(found);
}

TEST(Filter, CookedFilterMapsDirectionAndInterfaceToAncillaryData) {
    EXPECT_TRUE(has_ancillary_load(compile_cooked_filter("inbound", 0), SKF_AD_PKTTYPE));
    EXPECT_TRUE(has_ancillary_load(compile_cooked_filter("ifindex 3", 0), SKF_AD_IFINDEX));
}

TEST(Filter, CookedFilterOnOtherHeaderBytesIsRefused) {
    try {
        compile_cooked_filter("ether[0] = 4", 0);
        FAIL() << "no exception";
    } catch (const FilterError& e) {
        EXPECT_NE(e.reason().find("cooked"), std::string::npos) << e.reason();
    }
}

class SocketFilter : public ::testing::Test {
protected:
    void SetUp() override {
        // SO_ATTACH_FILTER works on any socket; a UDP one needs no privilege.
        fd_.reset(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        ASSERT_TRUE(fd_);
    }
    UniqueFd fd_;
};

TEST_F(SocketFilter, AttachedFilterIsLocked) {
    attach_filter(fd_.get(), compile_filter("udp port 9", DLT_RAW, 0));
    const int unused = 0;
    EXPECT_NE(setsockopt(fd_.get(), SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof unused), 0);
    EXPECT_EQ(errno, EPERM);
    const BpfProgram other = compile_filter("", DLT_RAW, 0);
    const sock_fprog fprog = other.fprog();
    EXPECT_NE(setsockopt(fd_.get(), SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog), 0);
    EXPECT_EQ(errno, EPERM);
}

TEST_F(SocketFilter, FailureNamesTheOperation) {
    attach_filter(fd_.get(), compile_filter("", DLT_RAW, 0));
    try {
        attach_filter(fd_.get(), compile_filter("", DLT_RAW, 0));
        FAIL() << "no exception";
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EPERM);
        EXPECT_NE(std::string(e.what()).find("SO_ATTACH_FILTER"), std::string::npos) << e.what();
    }
}

} // namespace
