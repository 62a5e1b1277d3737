// The names Wireshark sees for promiscd's links: values safe for Wireshark
// (extcap sentences, fifo names, preference keys), one spelling per link,
// read back exactly; displays that cannot end an extcap field.
#include "interface_names.hpp"

#include <gtest/gtest.h>

namespace promiscd::extcap {
namespace {

struct Case {
    std::string link;    // as the daemon shows it
    std::string value;   // --extcap-interface
    std::string display; // interface {display=...}
};

const Case kCases[] = {
    {"eth0", "promiscd-eth0", "eth0 via promiscd"},
    {"br-lan.10", "promiscd-br-lan.10", "br-lan.10 via promiscd"},
    {"any", "promiscd-any", "any via promiscd"},
    {"wl_p2s0", "promiscd-wl_p2s0", "wl_p2s0 via promiscd"},
    // The daemon's escapes of a byte that is not UTF-8 and of a backslash.
    {"v\\xff", "promiscd-v%5Cxff", "v\\xff via promiscd"},
    {"a\\\\b", "promiscd-a%5C%5Cb", "a\\\\b via promiscd"},
    // What would end an extcap field, or a path, or a list in preferences.
    {"p{x}", "promiscd-p%7Bx%7D", "p\\x7bx\\x7d via promiscd"},
    {"a,b=c", "promiscd-a%2Cb%3Dc", "a,b=c via promiscd"},
    {"100%", "promiscd-100%25", "100% via promiscd"},
    // Control characters (link names may hold them) and UTF-8.
    {"t\x01", "promiscd-t%01", "t\\x01 via promiscd"},
    {"caf\xc3\xa9", "promiscd-caf%C3%A9", "caf\xc3\xa9 via promiscd"},
};

TEST(ExtcapNames, ValueAndDisplayOfEachLink) {
    for (const auto& c : kCases) {
        SCOPED_TRACE(c.link);
        EXPECT_EQ(interface_value(c.link), c.value);
        EXPECT_EQ(display_name(c.link), c.display);
        EXPECT_EQ(link_of_value(c.value), c.link);
    }
}

TEST(ExtcapNames, ValuesUseOnlySafeCharacters) {
    for (const auto& c : kCases)
        for (char ch : interface_value(c.link))
            EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' ||
                        ch == '.' || ch == '%')
                << c.link << ": " << ch;
}

TEST(ExtcapNames, RejectsWhatItDoesNotWrite) {
    for (const char* value : {
             "eth0",          // not ours
             "promiscd-",     // no link
             "promiscd-a%",   // cut short
             "promiscd-a%4",  // cut short
             "promiscd-a%zz", // not hex
             "promiscd-a%7b", // lower case: not the one spelling
             "promiscd-%61",  // a plain character encoded
             "promiscd-a b",  // a character that must be encoded
             "promiscd-a{b}", // the same
         })
        EXPECT_EQ(link_of_value(value), std::nullopt) << value;
}

} // namespace
} // namespace promiscd::extcap
