// Requests decoded from either transport: one set of checks and messages.
#include "core/errors.hpp"
#include "ops/requests.hpp"

#include <gtest/gtest.h>

using namespace promiscd;
using ops::Value;

namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const core::Error& e) {
        return std::string(core::error_name(e.code())) + ": " + e.what();
    }
    return "no error";
}

} // namespace

TEST(Requests, AcquireOptions) {
    auto r = ops::decode_acquire("eth0", {{"ttl", Value::unsigned_(30)},
                                          {"reason", Value::string("ids")},
                                          {"wait", Value::boolean(true)}});
    EXPECT_EQ(r.interface, "eth0");
    EXPECT_EQ(r.ttl, 30 * core::usec_per_sec);
    EXPECT_EQ(r.reason, "ids");
    EXPECT_TRUE(r.wait);
    auto z = ops::decode_acquire("eth0", {{"ttl", Value::unsigned_(0)}});
    EXPECT_EQ(z.ttl, 0u) << "0: no expiry";
    auto n = ops::decode_acquire("eth0", {{"ttl", Value::null()}, {"reason", Value::null()}});
    EXPECT_FALSE(n.ttl) << "null is absent";
    auto s = ops::decode_acquire("eth0", {{"ttl", Value::signed_(5)}});
    EXPECT_EQ(s.ttl, 5 * core::usec_per_sec) << "a non-negative signed integer will do";
}

TEST(Requests, NetnsIsAStringOnBothRequests) {
    auto a = ops::decode_acquire("eth0", {{"netns", Value::string("pid:42")}});
    EXPECT_EQ(a.interface, "eth0") << "the link's own name; the namespace apart";
    EXPECT_EQ(a.netns, "pid:42");
    EXPECT_EQ(ops::decode_acquire("eth0", {}).netns, "") << "absent: promiscd's own";
    auto c = ops::decode_capture("eth0", {{"netns", Value::string("blue")}});
    EXPECT_EQ(c.netns, "blue");
    EXPECT_EQ(c.netns_inode, 0u) << "opened by the operations layer, not the decoder";
    EXPECT_EQ(error_of([] {
                  ops::decode_acquire("eth0", {{"netns", Value::unsigned_(42)}});
              }),
              "InvalidArgument: option 'netns' must be a string, not an unsigned integer");
    EXPECT_EQ(error_of([] {
                  ops::decode_acquire("1/eth0", {{"netns", Value::string("b")}});
              }),
              "InvalidArgument: invalid interface name '1/eth0': contains '/'")
        << "no client can write promiscd's qualified names";
}

TEST(Requests, BadOptionsAreNamed) {
    EXPECT_EQ(error_of([] {
                  ops::decode_acquire("eth0", {{"tll", Value::unsigned_(5)}});
              }),
              "InvalidArgument: unknown option 'tll' (known options: ttl, reason, wait, netns)");
    EXPECT_EQ(error_of([] {
                  ops::decode_acquire("eth0", {{"ttl", Value::string("5")}});
              }),
              "InvalidArgument: option 'ttl' must be an unsigned integer, not a string");
    EXPECT_EQ(error_of([] {
                  ops::decode_acquire("eth0", {{"ttl", Value::signed_(-1)}});
              }),
              "InvalidArgument: option 'ttl' must be an unsigned integer, not the negative "
              "number -1");
    EXPECT_EQ(error_of([] {
                  ops::decode_acquire("eth0", {{"wait", Value::other("an array")}});
              }),
              "InvalidArgument: option 'wait' must be a boolean, not an array");
    EXPECT_EQ(error_of([] {
                  ops::decode_capture("eth0", {{"format", Value::string("pcapx")}});
              }),
              "InvalidArgument: unknown format 'pcapx' (known formats: pcapng, pcap, socket)");
    EXPECT_EQ(error_of([] { ops::decode_acquire("eth/0", {}); }),
              "InvalidArgument: invalid interface name 'eth/0': contains '/'");
    EXPECT_EQ(error_of([] { ops::decode_policy("maybe"); }),
              "InvalidArgument: unknown policy 'maybe' (expected 'enforce' or 'yield')");
}

TEST(Requests, EscapedNamesAreDecoded) {
    EXPECT_EQ(ops::decode_acquire("v\\xff\\xfe", {}).interface, "v\xff\xfe");
    EXPECT_EQ(ops::decode_capture("any", {}).interface, "any");
}

TEST(Requests, CaptureOptions) {
    auto r = ops::decode_capture("eth0", {{"filter", Value::string("tcp")},
                                          {"snaplen", Value::unsigned_(96)},
                                          {"promisc", Value::boolean(false)},
                                          {"format", Value::string("pcap")},
                                          {"buffer_size", Value::unsigned_(1 << 20)},
                                          {"count", Value::unsigned_(10)}});
    EXPECT_EQ(r.filter, "tcp");
    EXPECT_EQ(r.snaplen, 96u);
    EXPECT_FALSE(r.promisc);
    EXPECT_EQ(r.format, service::CaptureFormat::Pcap);
    EXPECT_EQ(r.buffer_size, 1u << 20);
    EXPECT_EQ(r.count, 10u);
    auto big = ops::decode_capture("eth0", {{"snaplen", Value::unsigned_(1ULL << 40)}});
    EXPECT_EQ(big.snaplen, UINT32_MAX) << "out of range is reported by the capture service";
}
