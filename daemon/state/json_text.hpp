// A few JSON values written straight into a string: the records are written
// on every lease change, and building an nlohmann::json object for ten
// fields cost more than the rest of the write.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace promiscd::state {

// Appends `s` as a JSON string (quotes included). Bytes that are not UTF-8
// become U+FFFD, as nlohmann's error_handler_t::replace does, so that what is
// written always parses.
void append_json_string(std::string& out, std::string_view s);

// {"key":value,...} built field by field.
class JsonObjectText {
public:
    JsonObjectText& field(std::string_view key, std::string_view value);
    JsonObjectText& field(std::string_view key, const char* value) {
        return field(key, std::string_view(value));
    }
    JsonObjectText& field(std::string_view key, uint64_t value);
    JsonObjectText& field(std::string_view key, bool value);
    // A nested object, already written.
    JsonObjectText& raw(std::string_view key, std::string_view json);
    // The text, with a closing brace (and, when asked, a newline).
    std::string finish(bool newline = false);

private:
    void key(std::string_view k);
    std::string out_ = "{";
};

} // namespace promiscd::state
