#include "interface_names.hpp"

namespace promiscd::extcap {

namespace {

bool plain(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1; // upper case only: one spelling per value
}

// "<prefix>XX", XX the byte in hex (upper or lower case).
std::string hex_byte(std::string_view prefix, unsigned char c, bool upper) {
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    std::string out(prefix);
    out += digits[c >> 4];
    out += digits[c & 15];
    return out;
}

} // namespace

std::string interface_value(std::string_view link) {
    std::string out(kValuePrefix);
    for (unsigned char c : link)
        out += plain(c) ? std::string(1, static_cast<char>(c)) : hex_byte("%", c, true);
    return out;
}

std::optional<std::string> link_of_value(std::string_view value) {
    if (value.substr(0, kValuePrefix.size()) != kValuePrefix)
        return std::nullopt;
    value.remove_prefix(kValuePrefix.size());
    if (value.empty())
        return std::nullopt;
    std::string out;
    for (size_t i = 0; i < value.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(value[i]);
        if (plain(c)) {
            out += static_cast<char>(c);
            continue;
        }
        if (c != '%' || i + 2 >= value.size())
            return std::nullopt;
        const int hi = hex_digit(value[i + 1]);
        const int lo = hex_digit(value[i + 2]);
        if (hi < 0 || lo < 0)
            return std::nullopt;
        const unsigned char byte = static_cast<unsigned char>(hi * 16 + lo);
        if (plain(byte))
            return std::nullopt; // not what interface_value() writes
        out += static_cast<char>(byte);
        i += 2;
    }
    return out;
}

std::string display_name(std::string_view link) {
    std::string out;
    for (unsigned char c : link) {
        if (c < 0x20 || c == 0x7f || c == '{' || c == '}')
            out += hex_byte("\\x", c, false);
        else
            out += static_cast<char>(c);
    }
    return out + " via promiscd";
}

} // namespace promiscd::extcap
