#include "json_text.hpp"

#include <cstdio>

namespace promiscd::state {

namespace {

// The UTF-8 sequence at s[i] (RFC 3629: no overlong forms, no surrogates,
// nothing past U+10FFFF): its length when well formed (valid), else how many
// bytes one U+FFFD replaces (Unicode's "maximal subpart": the longest prefix
// that could have begun a valid sequence, at least one byte).
struct Sequence {
    size_t length;
    bool valid;
};

Sequence utf8_sequence(std::string_view s, size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80)
        return {1, true};
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF; // range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0; // overlong
        if (c == 0xED)
            hi = 0x9F; // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90; // overlong
        if (c == 0xF4)
            hi = 0x8F; // past U+10FFFF
    } else {
        return {1, false};
    }
    for (size_t k = 1; k < need; ++k) {
        if (i + k >= s.size())
            return {k, false};
        const auto b = static_cast<unsigned char>(s[i + k]);
        const bool ok = k == 1 ? (b >= lo && b <= hi) : ((b & 0xC0) == 0x80);
        if (!ok)
            return {k, false};
    }
    return {need, true};
}

} // namespace

void append_json_string(std::string& out, std::string_view s) {
    out.push_back('"');
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out.push_back('\\');
            out.push_back(static_cast<char>(c));
            ++i;
        } else if (c < 0x20) {
            switch (c) {
            case '\n':
                out += "\\n";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\b':
                out += "\\b";
                break;
            case '\f':
                out += "\\f";
                break;
            default: {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            }
            }
            ++i;
        } else if (c < 0x80) {
            out.push_back(static_cast<char>(c));
            ++i;
        } else {
            const Sequence q = utf8_sequence(s, i);
            if (q.valid)
                out.append(s.substr(i, q.length));
            else
                out += "\xEF\xBF\xBD"; // U+FFFD
            i += q.length;
        }
    }
    out.push_back('"');
}

void JsonObjectText::key(std::string_view k) {
    if (out_.size() > 1)
        out_.push_back(',');
    append_json_string(out_, k);
    out_.push_back(':');
}

JsonObjectText& JsonObjectText::field(std::string_view k, std::string_view value) {
    key(k);
    append_json_string(out_, value);
    return *this;
}

JsonObjectText& JsonObjectText::field(std::string_view k, uint64_t value) {
    key(k);
    out_ += std::to_string(value);
    return *this;
}

JsonObjectText& JsonObjectText::field(std::string_view k, bool value) {
    key(k);
    out_ += value ? "true" : "false";
    return *this;
}

JsonObjectText& JsonObjectText::raw(std::string_view k, std::string_view json) {
    key(k);
    out_.append(json);
    return *this;
}

std::string JsonObjectText::finish(bool newline) {
    out_.push_back('}');
    if (newline)
        out_.push_back('\n');
    return std::move(out_);
}

} // namespace promiscd::state
