// promiscd-extcap: Wireshark's and tshark's way to capture through promiscd
// (extcap(4)). Wireshark runs it to list interfaces (one per link promiscd
// lists, and "any"), their link types and options, to check a capture
// filter, and to capture: promiscd opens the packet socket, and this helper
// copies the pcapng stream it hands over into Wireshark's fifo. Nothing here
// needs privileges; polkit decides, and may ask the person for a password
// through their desktop's agent.
//
// Built on libpromisc's public API only, as a program outside this tree
// would be.
#include "interface_names.hpp"

#include <promisc/promisc.hpp>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <getopt.h>
#include <iostream>
#include <optional>
#include <pcap/pcap.h>
#include <poll.h>
#include <string>
#include <sys/signalfd.h>
#include <unistd.h>

namespace {

using namespace promiscd::extcap;
using std::chrono::milliseconds;

constexpr const char* kProgram = "promiscd-extcap";
constexpr int kDltEthernet = 1;    // DLT_EN10MB
constexpr int kDltLinuxSll2 = 276; // DLT_LINUX_SLL2: "any", cooked
constexpr std::uint32_t kMaxSnaplen = 262144;

// An fd closed on destruction.
class Fd {
public:
    explicit Fd(int fd = -1) noexcept : fd_(fd) {}
    Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
    Fd& operator=(Fd&& o) noexcept {
        if (this != &o) {
            reset();
            fd_ = o.fd_;
            o.fd_ = -1;
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() { reset(); }
    int get() const noexcept { return fd_; }
    explicit operator bool() const noexcept { return fd_ >= 0; }
    void reset() noexcept {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_;
};

// A failure to report: one line on standard error, exit status 1.
struct Failure {
    std::string message;
};

struct Args {
    bool interfaces = false;
    bool dlts = false;
    bool config = false;
    bool capture = false;
    std::optional<std::string> interface;
    std::optional<std::string> fifo;
    std::optional<std::string> extcap_filter; // Wireshark's capture filter field
    std::string config_filter;                // our --capture-filter option
    std::uint32_t snaplen = 0;
    bool promisc = true;
    std::uint32_t buffer_mib = 0;
};

std::string quote(const std::string& s) {
    return "'" + s + "'";
}

// One line: Wireshark shows the extcap's standard error to the person.
std::string one_line(std::string s) {
    for (char& c : s)
        if (c == '\n' || c == '\r')
            c = ' ';
    while (!s.empty() && s.back() == ' ')
        s.pop_back();
    return s;
}

std::uint32_t parse_number(const char* option, const char* text, std::uint32_t max) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long v = std::strtoull(text, &end, 10);
    if (errno || !end || *end || end == text || text[0] == '-' || v > max)
        throw Failure{std::string(option) + " takes a number from 0 to " + std::to_string(max) +
                      ", not " + quote(text)};
    return static_cast<std::uint32_t>(v);
}

// Wireshark passes a boolean option as any spelling of yes or no; it reads
// one containing y, t or a digit 1-9 as true (EXTCAP_BOOLEAN_REGEX).
bool parse_bool(const char* text) {
    for (const char* p = text; *p; ++p) {
        const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
        if (c == 'y' || c == 't' || (c >= '1' && c <= '9'))
            return true;
    }
    return false;
}

Args parse(int argc, char** argv) {
    enum {
        kInterfaces = 1000,
        kVersion,
        kInterface,
        kDlts,
        kConfig,
        kCapture,
        kFifo,
        kCaptureFilter,
        kControlIn,
        kControlOut,
        kConfigFilter,
        kSnaplen,
        kPromiscuous,
        kBufferSize,
        kHelp,
    };
    static const option options[] = {
        {"extcap-interfaces", no_argument, nullptr, kInterfaces},
        {"extcap-version", optional_argument, nullptr, kVersion},
        {"extcap-interface", required_argument, nullptr, kInterface},
        {"extcap-dlts", no_argument, nullptr, kDlts},
        {"extcap-config", no_argument, nullptr, kConfig},
        {"capture", no_argument, nullptr, kCapture},
        {"fifo", required_argument, nullptr, kFifo},
        {"extcap-capture-filter", required_argument, nullptr, kCaptureFilter},
        {"extcap-control-in", required_argument, nullptr, kControlIn},
        {"extcap-control-out", required_argument, nullptr, kControlOut},
        {"capture-filter", required_argument, nullptr, kConfigFilter},
        {"snaplen", required_argument, nullptr, kSnaplen},
        {"promiscuous", required_argument, nullptr, kPromiscuous},
        {"buffer-size", required_argument, nullptr, kBufferSize},
        {"help", no_argument, nullptr, kHelp},
        {nullptr, 0, nullptr, 0},
    };
    Args a;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", options, nullptr)) != -1) {
        switch (c) {
        case kInterfaces:
            a.interfaces = true;
            break;
        case kVersion:
            break; // Wireshark's version; nothing here depends on it
        case kInterface:
            a.interface = optarg;
            break;
        case kDlts:
            a.dlts = true;
            break;
        case kConfig:
            a.config = true;
            break;
        case kCapture:
            a.capture = true;
            break;
        case kFifo:
            a.fifo = optarg;
            break;
        case kCaptureFilter:
            a.extcap_filter = optarg;
            break;
        case kControlIn:
        case kControlOut:
            break; // no toolbar controls
        case kConfigFilter:
            a.config_filter = optarg;
            break;
        case kSnaplen:
            a.snaplen = parse_number("--snaplen", optarg, kMaxSnaplen);
            break;
        case kPromiscuous:
            a.promisc = parse_bool(optarg);
            break;
        case kBufferSize:
            a.buffer_mib = parse_number("--buffer-size", optarg, 4095);
            break;
        case kHelp:
            std::cout << "Usage: " << kProgram
                      << " --extcap-interfaces | --extcap-interface IF (--extcap-dlts | "
                         "--extcap-config | --extcap-capture-filter FILTER | --capture --fifo "
                         "PATH [--extcap-capture-filter FILTER] [--capture-filter FILTER] "
                         "[--snaplen N] [--promiscuous BOOL] [--buffer-size MIB])\n"
                         "Wireshark's extcap helper for promiscd; Wireshark runs it.\n";
            std::exit(0);
        default:
            throw Failure{"unknown option " + quote(argv[optind - 1]) + " (see --help)"};
        }
    }
    if (optind < argc)
        throw Failure{"unexpected argument " + quote(argv[optind]) + " (see --help)"};
    return a;
}

// The link an --extcap-interface value names.
std::string link_of(const Args& a) {
    if (!a.interface)
        throw Failure{"--extcap-interface is missing"};
    auto link = link_of_value(*a.interface);
    if (!link)
        throw Failure{quote(*a.interface) + " is not an interface of promiscd's (they are named " +
                      std::string(kValuePrefix) + "LINK)"};
    return *link;
}

bool is_any(const std::string& link) {
    return link == kAnyLink;
}

// ---------------------------------------------------------------- queries

int list_interfaces() {
    promisc::Client client;
    const auto links = client.links();
    std::cout << "extcap {version=" << PROMISC_VERSION << "}{display=promiscd}\n";
    std::cout << "interface {value=" << interface_value(kAnyLink)
              << "}{display=" << display_name(kAnyLink) << "}\n";
    for (const auto& l : links) {
        // A link named "any" would be the daemon's every-link capture.
        if (is_any(l.name))
            continue;
        std::cout << "interface {value=" << interface_value(l.name)
                  << "}{display=" << display_name(l.name) << "}\n";
    }
    return 0;
}

int list_dlts(const Args& a) {
    const std::string link = link_of(a);
    // What promiscd writes: Ethernet for Ethernet links, the cooked
    // header for "any" (Wireshark takes the real one from the stream).
    if (is_any(link))
        std::cout << "dlt {number=" << kDltLinuxSll2
                  << "}{name=LINUX_SLL2}{display=Linux cooked v2 (every link)}\n";
    else
        std::cout << "dlt {number=" << kDltEthernet << "}{name=EN10MB}{display=Ethernet}\n";
    return 0;
}

int list_config(const Args& a) {
    const std::string link = link_of(a);
    std::cout << "arg {number=0}{call=--capture-filter}{display=promiscd capture filter}"
                 "{type=string}{tooltip=A pcap-filter expression that promiscd compiles into a "
                 "kernel filter locked onto its socket; applied together with Wireshark's "
                 "capture filter}\n"
              << "arg {number=1}{call=--snaplen}{display=Snapshot length}{type=unsigned}"
                 "{range=0,"
              << kMaxSnaplen
              << "}{default=0}{tooltip=Bytes kept of each frame; 0 keeps whole frames}\n"
              << "arg {number=2}{call=--buffer-size}{display=Buffer size (MiB)}{type=unsigned}"
                 "{range=0,4095}{default=0}{tooltip=Kernel ring buffer; 0 is promiscd's default}\n";
    if (!is_any(link))
        std::cout << "arg {number=3}{call=--promiscuous}{display=Promiscuous mode}{type=boolean}"
                     "{default=true}{tooltip=Hold promiscuous mode on the link while capturing "
                     "(a lease of promiscd's)}\n";
    return 0;
}

// Wireshark checks a capture filter as it is typed: nothing on standard
// output means valid, a line is the error. Checked here with libpcap, as
// Wireshark checks it for its own interfaces; promiscd compiles it again
// when the capture opens, and its answer is the one that counts.
int check_filter(const Args& a) {
    const std::string link = link_of(a);
    pcap_t* p = pcap_open_dead(is_any(link) ? kDltLinuxSll2 : kDltEthernet, kMaxSnaplen);
    if (!p)
        return 0; // cannot tell: say nothing
    bpf_program program{};
    if (pcap_compile(p, &program, a.extcap_filter->c_str(), 1, PCAP_NETMASK_UNKNOWN) < 0)
        std::cout << one_line(pcap_geterr(p)) << '\n';
    else
        pcap_freecode(&program);
    pcap_close(p);
    return 0;
}

// ---------------------------------------------------------------- capture

enum class Written { All, ReaderGone, Signalled };

// Writes all of it at Wireshark's pace, unless its reader goes away or a
// signal says to stop meanwhile (a full fifo must not keep the helper from
// hearing either).
Written write_all(int fd, const char* data, size_t n, int signals) {
    while (n > 0) {
        const ssize_t w = ::write(fd, data, n);
        if (w > 0) {
            data += w;
            n -= static_cast<size_t>(w);
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EPIPE)
            return Written::ReaderGone;
        if (errno != EAGAIN)
            throw Failure{std::string("cannot write to Wireshark's fifo: ") + std::strerror(errno)};
        pollfd p[2] = {{fd, POLLOUT, 0}, {signals, POLLIN, 0}};
        if (::poll(p, 2, -1) < 0 && errno != EINTR)
            throw Failure{std::string("poll: ") + std::strerror(errno)};
        if (p[0].revents & POLLERR)
            return Written::ReaderGone;
        if (p[1].revents & POLLIN)
            return Written::Signalled;
    }
    return Written::All;
}

// Opens the fifo for writing once Wireshark has it open for reading,
// unless a signal says to stop first (then nothing).
Fd open_fifo(const std::string& path, int signals) {
    for (int tries = 0;; ++tries) {
        Fd fd(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
        if (fd)
            return fd; // non-blocking: write_all() waits

        if (errno != ENXIO || tries > 600)
            throw Failure{"cannot open Wireshark's fifo " + quote(path) + ": " +
                          std::strerror(errno)};
        // No reader yet.
        pollfd p{signals, POLLIN, 0};
        if (::poll(&p, 1, 50) > 0)
            return Fd();
    }
}

std::string explain_end(const std::string& reason) {
    if (reason == "link-removed")
        return "the link was removed";
    if (reason == "daemon-shutdown")
        return "promiscd stopped";
    if (reason == "owner-gone")
        return "promiscd lost this helper's connection";
    if (reason == "error")
        return "promiscd could not read the link (see its log)";
    return reason.empty() ? "promiscd closed the stream without saying why" : reason;
}

// Wireshark's dumpcap opens the fifo for reading and waits for a writer;
// until one has opened it, it never sees an end, even when this helper has
// exited. So a capture that fails before the fifo was opened still opens it
// (once dumpcap reads it, for a few seconds at most) and closes it at once:
// dumpcap sees the end of an empty stream and Wireshark shows the error line.
void end_empty_stream(const std::string& path) {
    for (int tries = 0; tries < 60; ++tries) {
        const int fd = ::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0) {
            ::close(fd);
            return;
        }
        if (errno != ENXIO)
            return;
        ::usleep(50'000);
    }
}

// Inside a catch block: the failure as one line on standard error (what
// Wireshark shows the person), and the exit status.
int report_failure() {
    std::string message;
    try {
        throw;
    } catch (const Failure& f) {
        message = f.message;
    } catch (const std::exception& e) {
        message = e.what();
    } catch (...) {
        message = "unknown error";
    }
    std::cerr << kProgram << ": " << one_line(message) << std::endl;
    return 1;
}

int capture_into_fifo(const Args& a, const std::string& link, bool& fifo_opened);

int capture(const Args& a) {
    const std::string link = link_of(a);
    if (!a.fifo)
        throw Failure{"--capture needs --fifo PATH"};
    bool fifo_opened = false;
    try {
        return capture_into_fifo(a, link, fifo_opened);
    } catch (...) {
        if (fifo_opened)
            throw;
        // The line before the end of the stream: Wireshark reports the
        // stream's end with what the helper has said by then.
        const int status = report_failure();
        end_empty_stream(*a.fifo);
        return status;
    }
}

int capture_into_fifo(const Args& a, const std::string& link, bool& fifo_opened) {

    promisc::CaptureOptions options;
    // Both filters apply when both are given.
    const std::string wireshark_filter = a.extcap_filter.value_or("");
    if (!wireshark_filter.empty() && !a.config_filter.empty())
        options.filter = "(" + wireshark_filter + ") and (" + a.config_filter + ")";
    else
        options.filter = wireshark_filter.empty() ? a.config_filter : wireshark_filter;
    options.snaplen = a.snaplen;
    options.promisc = a.promisc && !is_any(link);
    options.buffer_size = a.buffer_mib * 1024u * 1024u;

    std::optional<promisc::Capture> capture;
    try {
        // A desktop's polkit agent may ask for a password meanwhile.
        promisc::ClientOptions co;
        co.interactive = true;
        promisc::Client client(co);
        capture.emplace(client.capture(link, options));

        // From here on a signal means "stop": read through a signalfd.
        sigset_t stop_signals;
        sigemptyset(&stop_signals);
        for (int sig : {SIGINT, SIGTERM, SIGHUP})
            sigaddset(&stop_signals, sig);
        ::sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
        Fd signals(::signalfd(-1, &stop_signals, SFD_CLOEXEC | SFD_NONBLOCK));
        if (!signals)
            throw Failure{std::string("signalfd: ") + std::strerror(errno)};

        Fd fifo = open_fifo(*a.fifo, signals.get());
        fifo_opened = true;
        if (!fifo) {
            capture->stop();
            return 0;
        }

        bool stopping = false;
        std::optional<std::chrono::steady_clock::time_point> drain_until;
        // Asked to stop (SIGTERM, SIGINT, SIGHUP): the daemon ends the
        // capture and its lease at once; what is left in the stream is
        // passed on for a moment, as Wireshark may still read it.
        auto stop_now = [&] {
            signalfd_siginfo si{};
            while (::read(signals.get(), &si, sizeof si) == sizeof si) {
            }
            stopping = true;
            capture->stop();
            drain_until = std::chrono::steady_clock::now() + milliseconds(1000);
        };
        char buf[1 << 16];
        for (;;) {
            const promisc::PollInfo bus = client.poll_info();
            // events 0 on the fifo: POLLERR arrives when its reader closes it.
            pollfd fds[4] = {{capture->fd(), POLLIN, 0},
                             {fifo.get(), 0, 0},
                             {signals.get(), POLLIN, 0},
                             {bus.fd, bus.events, 0}};
            int timeout = bus.timeout_ms;
            if (drain_until) {
                const auto left = std::chrono::ceil<milliseconds>(*drain_until -
                                                                  std::chrono::steady_clock::now());
                if (left.count() <= 0)
                    return 0;
                timeout = timeout < 0 ? static_cast<int>(left.count())
                                      : std::min(timeout, static_cast<int>(left.count()));
            }
            if (::poll(fds, bus.fd >= 0 ? 4 : 3, timeout) < 0 && errno != EINTR)
                throw Failure{std::string("poll: ") + std::strerror(errno)};

            if (fds[1].revents & (POLLERR | POLLHUP)) {
                // Wireshark closed the fifo: the capture and its lease end now.
                if (!stopping)
                    capture->stop();
                return 0;
            }
            if (fds[2].revents & POLLIN) {
                if (stopping)
                    return 0; // asked twice
                stop_now();
            }
            if (bus.fd >= 0)
                client.process(milliseconds(0));
            if (fds[0].revents) {
                for (;;) {
                    auto n = capture->read(buf, sizeof buf, milliseconds(0));
                    if (!n)
                        break;
                    if (*n == 0) {
                        if (stopping)
                            return 0;
                        const std::string& why = capture->end_reason();
                        if (why == "stopped" || why == "count-reached")
                            return 0;
                        throw Failure{"the capture on " + quote(link) +
                                      " ended: " + explain_end(why)};
                    }
                    const Written w = write_all(fifo.get(), buf, *n, signals.get());
                    if (w == Written::ReaderGone) {
                        if (!stopping)
                            capture->stop();
                        return 0;
                    }
                    if (w == Written::Signalled) {
                        if (stopping)
                            return 0;
                        stop_now();
                    }
                }
            }
        }
    } catch (const promisc::Error& e) {
        throw Failure{"cannot capture on " + quote(link) + ": " + e.what()};
    }
}

} // namespace

int main(int argc, char** argv) {
    // A reader that goes away is an EPIPE to handle, not a signal to die of.
    ::signal(SIGPIPE, SIG_IGN);
    try {
        const Args a = parse(argc, argv);
        if (a.interfaces)
            return list_interfaces();
        if (a.dlts)
            return list_dlts(a);
        if (a.config)
            return list_config(a);
        if (a.capture)
            return capture(a);
        if (a.extcap_filter)
            return check_filter(a);
        throw Failure{"nothing to do: Wireshark runs this helper with --extcap-interfaces, "
                      "--extcap-dlts, --extcap-config or --capture (see --help)"};
    } catch (...) {
        return report_failure();
    }
}
