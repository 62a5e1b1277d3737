#include "log.hpp"

#include <cstdio>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>
#include <vector>

namespace promiscd::log {

namespace {

Level current = Level::Info;
std::optional<bool> console_forced;

bool to_journal() {
    if (console_forced)
        return !*console_forced;
    // Under systemd, stderr is connected to the journal already (JOURNAL_STREAM);
    // use the native protocol then, so audit fields are kept.
    static const bool journal = [] {
        struct stat st {};
        return ::getenv("JOURNAL_STREAM") != nullptr &&
               ::stat("/run/systemd/journal/socket", &st) == 0;
    }();
    return journal;
}

const char* prefix(Level l) {
    switch (l) {
    case Level::Error:
        return "error: ";
    case Level::Warning:
        return "warning: ";
    default:
        return "";
    }
}

} // namespace

void set_level(Level l) {
    current = l;
}
Level level() {
    return current;
}
void set_console(bool console) {
    console_forced = console;
}

std::optional<Level> parse_level(std::string_view name) {
    if (name == "error" || name == "err")
        return Level::Error;
    if (name == "warning")
        return Level::Warning;
    if (name == "notice")
        return Level::Notice;
    if (name == "info")
        return Level::Info;
    if (name == "debug")
        return Level::Debug;
    return std::nullopt;
}

void write(Level l, std::string_view text) {
    if (static_cast<int>(l) > static_cast<int>(current))
        return;
    if (to_journal()) {
        sd_journal_print(static_cast<int>(l), "%.*s", static_cast<int>(text.size()), text.data());
        return;
    }
    std::fprintf(stderr, "promiscd: %s%.*s\n", prefix(l), static_cast<int>(text.size()),
                 text.data());
}

void audit(Level l, std::string_view message_id, std::string_view text,
           std::initializer_list<Field> fields) {
    audit(l, message_id, text, std::vector<Field>(fields));
}

void audit(Level l, std::string_view message_id, std::string_view text,
           const std::vector<Field>& fields) {
    if (static_cast<int>(l) > static_cast<int>(current))
        return;
    if (to_journal()) {
        std::vector<std::string> lines;
        lines.push_back("MESSAGE=" + std::string(text));
        lines.push_back("MESSAGE_ID=" + std::string(message_id));
        lines.push_back("PRIORITY=" + std::to_string(static_cast<int>(l)));
        lines.push_back("SYSLOG_IDENTIFIER=promiscd");
        for (const auto& f : fields)
            lines.push_back(std::string(f.key) + "=" + f.value);
        std::vector<iovec> iov;
        iov.reserve(lines.size());
        for (auto& s : lines)
            iov.push_back({s.data(), s.size()});
        sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
        return;
    }
    std::string line = "promiscd: " + std::string(prefix(l)) + std::string(text) + " [";
    bool first = true;
    for (const auto& f : fields) {
        if (!first)
            line += ' ';
        first = false;
        line += std::string(f.key) + "=" + f.value;
    }
    line += "]\n";
    std::fputs(line.c_str(), stderr);
}

} // namespace promiscd::log
