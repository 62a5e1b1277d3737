// capture: the daemon opens the packet socket and hands over a pipe carrying
// the stream (over D-Bus or varlink, with the fd); promiscctl copies it to a
// file or standard output, counting frames on the way for dumpcap's live
// "Packets: N  Dropped: M" line and its closing statistics.
#include "commands.hpp"
#include "event_loop.hpp"
#include "stream_counter.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <optional>
#include <sys/epoll.h>
#include <unistd.h>

namespace promiscd::ctl {

namespace {

// Reasons the daemon gives in Finished that mean "done as asked" (none: a
// Finished lost with a daemon that stopped, after a complete stream).
bool finished_normally(const std::string& reason) {
    return reason.empty() || reason == "count-reached" || reason == "stopped" ||
           reason == "reader-closed";
}

// What a reason means to the person who started the capture.
std::string explain_finish(const std::string& reason) {
    if (reason == "link-removed")
        return "link-removed (the link disappeared)";
    if (reason == "owner-gone")
        return "owner-gone (promiscd lost this promiscctl's connection)";
    if (reason == "daemon-shutdown")
        return "daemon-shutdown (promiscd stopped)";
    return reason;
}

// Writes all of it; false when the reader went away (EPIPE).
bool write_all(int fd, const std::uint8_t* data, size_t n, const std::string& what) {
    while (n > 0) {
        ssize_t w = ::write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EPIPE)
                return false;
            throw promisc::Error(promisc::ErrorCode::Failed, {},
                                 "cannot write to " + what + ": " + std::strerror(errno));
        }
        data += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

} // namespace

void resolve_capture_words(CaptureArgs& args, const std::string& interface_option,
                           const std::vector<std::string>& words) {
    auto filter_words = words.begin();
    if (!interface_option.empty()) {
        args.link = interface_option;
    } else if (!words.empty()) {
        args.link = words.front();
        ++filter_words;
    } else {
        throw UsageError("capture: no link to capture on; name it with -i LINK (or as the first "
                         "word: 'promiscctl capture eth0')");
    }
    std::string filter;
    for (auto it = filter_words; it != words.end(); ++it)
        filter += (filter.empty() ? "" : " ") + *it;
    if (!filter.empty() && !args.filter.empty())
        throw UsageError("capture: two filters, " + quote(args.filter) + " (-f) and " +
                         quote(filter) + " (the trailing words); give one of them");
    if (!filter.empty())
        args.filter = filter;
}

int capture(Context& ctx, const CaptureArgs& args) {
    const bool to_stdout = !args.file || *args.file == "-";
    if (to_stdout && ::isatty(STDOUT_FILENO) == 1)
        throw UsageError("refusing to write a binary capture to a terminal; use -w FILE, or -w - "
                         "with standard output redirected");
    const bool quiet = ctx.globals().quiet;
    const std::string where = to_stdout ? std::string("standard output") : quote(*args.file);
    // The live line needs a person watching stderr and a file for the data,
    // as dumpcap and tshark show it.
    const bool progress = !quiet && !to_stdout && ::isatty(STDERR_FILENO) == 1;

    auto& client = ctx.client();
    EventLoop loop;
    std::optional<promisc::Capture> cap;
    bool stopping = false;
    for (int sig : {SIGINT, SIGTERM, SIGHUP})
        loop.on_signal(sig, [&] {
            if (stopping) {
                // Asked twice: do not wait for the end of the stream.
                loop.exit(kFailed);
                return;
            }
            stopping = true;
            try {
                cap->stop();
            } catch (const promisc::Error&) {
                // Finished already; the stream ends by itself.
            }
        });

    promisc::CaptureOptions opts;
    opts.filter = args.filter;
    opts.snaplen = args.snaplen;
    opts.promisc = args.promisc;
    opts.format = args.format;
    opts.buffer_size = args.buffer_size;
    opts.count = args.count;
    opts.netns = args.netns;
    {
        auto agent = ctx.polkit_agent();
        cap.emplace(client.capture(args.link, opts));
    }

    // Opened only now, so that a refused capture leaves no empty file. Mode
    // 0600: a capture can hold passwords and cookies.
    int file = -1;
    struct Closer {
        int& fd;
        ~Closer() {
            if (fd >= 0)
                ::close(fd);
        }
    } closer{file};
    if (!to_stdout) {
        file = ::open(args.file->c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (file < 0)
            throw promisc::Error(promisc::ErrorCode::Failed, {},
                                 "cannot open " + where + ": " + std::strerror(errno));
    }
    const int out = to_stdout ? STDOUT_FILENO : file;

    if (!quiet) {
        std::cerr << "Capturing on " << quote(args.link);
        if (!args.filter.empty())
            std::cerr << " with filter " << quote(args.filter);
        std::cerr << " (capture " << cap->id() << ")\n";
        if (!to_stdout)
            std::cerr << "File: " << *args.file << '\n';
    }

    StreamCounter counter(args.format);
    bool counting = true;
    bool reader_gone = false;
    std::string finish_reason;
    std::string lost; // why the connection to promiscd ended, if it did
    // Over varlink only the end of the stream tells, and the reason is
    // what promiscctl knows of it.
    auto inferred_reason = [&]() -> std::string {
        if (lost.empty() && client.transport() == promisc::Transport::DBus)
            return {}; // Finished lost with a daemon that stopped: the data is complete
        if (stopping)
            return "stopped";
        if (args.count && counter.packets() >= args.count)
            return "count-reached";
        return lost.empty() ? "ended by promiscd (over varlink it does not say why; see its log)"
                            : lost;
    };

    sd_event_source* io = nullptr;
    io = loop.on_io(cap->fd(), EPOLLIN, [&](uint32_t) {
        std::uint8_t buf[1 << 16];
        for (;;) {
            auto n = cap->read(buf, sizeof buf, std::chrono::milliseconds(0));
            if (!n)
                return; // nothing more for now
            if (*n == 0) {
                // The end of the stream; the daemon says why just after it
                // (read() waited a moment for that).
                sd_event_source_set_enabled(io, SD_EVENT_OFF);
                finish_reason = cap->end_reason();
                if (finish_reason.empty())
                    finish_reason = inferred_reason();
                loop.exit(finished_normally(finish_reason) ? kSuccess : kFailed);
                return;
            }
            if (!write_all(out, buf, *n, where)) {
                // The reader of standard output has had enough (tshark -c,
                // head): the capture stops as the pipe closes.
                reader_gone = true;
                loop.exit(kSuccess);
                return;
            }
            if (counting) {
                try {
                    counter.feed(buf, *n);
                } catch (const client::CaptureStreamError& e) {
                    counting = false;
                    std::cerr << "promiscctl: warning: cannot count frames: " << e.what() << '\n';
                }
            }
        }
    });

    auto dropped = [&] { return std::max(cap->stats().drops, counter.dropped().value_or(0)); };
    if (progress) {
        loop.every(std::chrono::milliseconds(500), [&] {
            std::uint64_t drops = dropped();
            std::cerr << "\r\x1b[KPackets: " << counter.packets() << "  Dropped: "
                      << (drops ? ctx.err_style().red(std::to_string(drops))
                                : std::to_string(drops))
                      << std::flush;
        });
    }

    loop.attach(client, [&](const promisc::Error& e) {
        // The daemon went away: what it sent is still in the pipe, and the
        // stream ends when the daemon has let go of it.
        lost = e.what();
    });
    int code = loop.run();
    if (progress)
        std::cerr << "\r\x1b[K";
    if (file >= 0 && ::fsync(file) < 0 && errno != EINVAL)
        throw promisc::Error(promisc::ErrorCode::Failed, {},
                             "cannot write " + where + ": " + std::strerror(errno));

    const std::uint64_t drops = dropped();
    if (!quiet) {
        std::uint64_t received = counter.received().value_or(counter.packets() + drops);
        received = std::max(received, counter.packets() + drops);
        double share =
            received ? 100.0 * static_cast<double>(received - drops) / static_cast<double>(received)
                     : 100.0;
        char pct[16];
        std::snprintf(pct, sizeof pct, "%.1f", share);
        std::cerr << "Packets captured: " << counter.packets() << '\n'
                  << "Packets received/dropped on interface " << quote(args.link) << ": "
                  << received << '/' << drops << " (" << pct << "%)\n"
                  << "Bytes written: " << format_bytes(counter.stream_bytes()) << '\n';
        if (!finish_reason.empty())
            std::cerr << "Capture ended: " << explain_finish(finish_reason) << '\n';
        else if (reader_gone)
            std::cerr << "Capture ended: the reader of standard output closed it\n";
    }
    if (code != kSuccess && !finish_reason.empty() && !finished_normally(finish_reason))
        std::cerr << "promiscctl: the capture on " << quote(args.link)
                  << " ended: " << explain_finish(finish_reason) << '\n';
    return code;
}

} // namespace promiscd::ctl
