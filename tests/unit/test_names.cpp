// Link names are bytes: the display form clients see and send back.
#include "core/errors.hpp"
#include "core/names.hpp"

#include <gtest/gtest.h>

using namespace promiscd::core;

TEST(Names, Utf8Validity) {
    EXPECT_TRUE(valid_utf8("eth0"));
    EXPECT_TRUE(valid_utf8("w\xc3\xa4n0"));      // wän0
    EXPECT_TRUE(valid_utf8("\xf0\x9f\x90\x88")); // U+1F408
    EXPECT_FALSE(valid_utf8("v\xff\xfe"));
    EXPECT_FALSE(valid_utf8("\xc0\xaf"));         // overlong '/'
    EXPECT_FALSE(valid_utf8("\xed\xa0\x80"));     // a surrogate
    EXPECT_FALSE(valid_utf8("\xf4\x90\x80\x80")); // past U+10FFFF
    EXPECT_FALSE(valid_utf8("\xe2\x82"));         // cut short
}

TEST(Names, DisplayFormEscapesOnlyWhatMustBe) {
    EXPECT_EQ(display_name("eth0"), "eth0");
    EXPECT_EQ(display_name("w\xc3\xa4n0"), "w\xc3\xa4n0");
    EXPECT_EQ(display_name("v\xff\xfe"), "v\\xff\\xfe");
    EXPECT_EQ(display_name("a\\b"), "a\\\\b");
    EXPECT_EQ(display_name("\xe2\x82x"), "\\xe2\\x82x");
}

TEST(Names, DisplayFormRoundTrips) {
    for (std::string raw : {"eth0", "v\xff\xfe", "a\\b", "\\x41", "w\xc3\xa4n0", "\x80\x81"})
        EXPECT_EQ(parse_display_name(display_name(raw)), raw) << display_name(raw);
    EXPECT_EQ(parse_display_name("v\\xFF\\xfe"), "v\xff\xfe") << "either case of hex";
}

TEST(Names, BadEscapesAreInvalidArguments) {
    for (std::string bad : {"a\\", "a\\b", "a\\x4", "a\\xg0"}) {
        try {
            parse_display_name(bad);
            ADD_FAILURE() << bad;
        } catch (const Error& e) {
            EXPECT_EQ(e.code(), ErrorCode::InvalidArgument);
            EXPECT_NE(std::string(e.what()).find("must be followed by"), std::string::npos)
                << e.what();
        }
    }
}

// Links of other network namespaces: "<inode>/<name>" inside promiscd.
TEST(Names, QualifiedNamesSplitBackAndNeverMeetAHostName) {
    EXPECT_EQ(qualify(0, "eth0"), "eth0") << "the host's links keep their names";
    EXPECT_EQ(qualify(4026532840, "eth0"), "4026532840/eth0");
    const auto l = split_link("4026532840/eth0");
    EXPECT_EQ(l.netns, 4026532840u);
    EXPECT_EQ(l.name, "eth0");
    for (std::string host : {"eth0", "v\xff", "a-b.c@d"}) {
        EXPECT_EQ(split_link(host).netns, 0u) << host;
        EXPECT_EQ(split_link(host).name, host);
    }
    // Nothing a kernel could name a link is taken for a qualified name:
    // kernel names never contain '/'.
    EXPECT_THROW(validate_interface_name("1/eth0"), Error);
    // Not digits before the '/': not a qualified name (never made by qualify()).
    EXPECT_EQ(split_link("x/eth0").netns, 0u);
    EXPECT_EQ(split_link("/eth0").netns, 0u);
    EXPECT_EQ(split_link("99999999999999999999/eth0").netns, 0u) << "past 64 bits";
    EXPECT_EQ(describe_link("eth0"), "'eth0'");
    EXPECT_EQ(describe_link("7/eth0"), "'eth0' in network namespace 7");
}
