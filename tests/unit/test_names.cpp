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
