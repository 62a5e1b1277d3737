// The ceiling for a relay: one process that reads a TPACKET_V3 ring and
// writes pcapng to its standard output (a pipe) with blocking writev, and
// nothing else: no event loop, no bus, no counters for anyone. It frames
// records the way the daemon's Relay does (frames under 256 bytes copied
// whole by the pcapng writer, larger ones written from the ring between
// staged framing), so the difference between the two is the daemon's own
// overhead.
//
// usage: bare_relay IFACE [BUFFER_BYTES]   (SIGINT/SIGTERM: stop, print counters)
#include "capture/packet_socket.hpp"
#include "capture/pcapng_writer.hpp"
#include "capture/record_layout.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

using namespace promiscd::capture;

namespace {

volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) {
    stop_requested = 1;
}

constexpr std::size_t kMaxIov = 1024;
constexpr std::size_t kCopyBelow = 256;
constexpr std::size_t kStagingSize = 256 << 10;

class Batch {
public:
    Batch() {
        iov_.reserve(kMaxIov);
        staging_.reserve(kStagingSize); // never grows: iovecs point into it
    }
    bool room() const {
        return iov_.size() + 5 <= kMaxIov && staging_.size() + 36 + 3 * kCopyBelow <= kStagingSize;
    }
    std::vector<std::uint8_t>& staging() { return staging_; }
    void stage(const void* p, std::size_t n) {
        const auto* b = static_cast<const std::uint8_t*>(p);
        staging_.insert(staging_.end(), b, b + n);
    }
    void reference(const void* p, std::size_t n) {
        close_run();
        iov_.push_back({const_cast<void*>(p), n});
    }
    bool write_all(int fd) {
        close_run();
        std::size_t first = 0;
        while (first < iov_.size()) {
            const auto n_iov = static_cast<int>(std::min(iov_.size() - first, kMaxIov));
            ssize_t n = writev(fd, &iov_[first], n_iov);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return false;
            }
            while (n > 0) {
                iovec& v = iov_[first];
                if (static_cast<std::size_t>(n) >= v.iov_len) {
                    n -= static_cast<ssize_t>(v.iov_len);
                    ++first;
                } else {
                    v.iov_base = static_cast<std::uint8_t*>(v.iov_base) + n;
                    v.iov_len -= static_cast<std::size_t>(n);
                    n = 0;
                }
            }
        }
        iov_.clear();
        staging_.clear();
        run_start_ = 0;
        return true;
    }

private:
    void close_run() {
        if (staging_.size() > run_start_) {
            iov_.push_back({staging_.data() + run_start_, staging_.size() - run_start_});
            run_start_ = staging_.size();
        }
    }
    std::vector<iovec> iov_;
    std::vector<std::uint8_t> staging_;
    std::size_t run_start_ = 0;
};

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s IFACE [BUFFER_BYTES]\n", argv[0]);
        return 2;
    }
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::signal(SIGPIPE, SIG_IGN);
    PacketSocketOptions options;
    options.ifindex = static_cast<int>(if_nametoindex(argv[1]));
    if (options.ifindex == 0) {
        std::fprintf(stderr, "bare_relay: no interface %s\n", argv[1]);
        return 2;
    }
    if (argc > 2) {
        options.buffer_size = std::strtoull(argv[2], nullptr, 0);
    }
    PacketSocket socket(options);
    // The pipe capacity promiscd asks for, so that only the relays differ.
    (void)fcntl(1, F_SETPIPE_SZ, 1 << 20);

    std::vector<std::uint8_t> header;
    pcapng::append_section_header(header, {.application = "bare_relay"});
    pcapng::append_interface_description(
        header, {.link_type = socket.link_type(), .snaplen = socket.snaplen(), .name = argv[1]});
    if (write(1, header.data(), header.size()) != static_cast<ssize_t>(header.size())) {
        return 1;
    }
    Batch batch;
    unsigned long long frames = 0;
    while (!stop_requested) {
        if (!socket.wait_for_block(std::chrono::milliseconds(200))) {
            continue;
        }
        while (auto block = socket.current_block()) {
            for (const Packet& p : *block) {
                if (!batch.room() && !batch.write_all(1)) {
                    return 1;
                }
                const RecordLayout layout(p, socket.cooked(), socket.snaplen());
                if (layout.caplen() < kCopyBelow) {
                    pcapng::append_epb(batch.staging(), 0, p.timestamp_ns, layout.origlen(),
                                       layout.pieces());
                } else {
                    pcapng::EpbFraming framing(0, p.timestamp_ns, layout.caplen(),
                                               layout.origlen());
                    const iovec h = framing.header();
                    batch.stage(h.iov_base, h.iov_len);
                    for (const iovec& piece : layout.pieces()) {
                        if (piece.iov_len < kCopyBelow) {
                            batch.stage(piece.iov_base, piece.iov_len);
                        } else {
                            batch.reference(piece.iov_base, piece.iov_len);
                        }
                    }
                    const iovec t = framing.trailer();
                    batch.stage(t.iov_base, t.iov_len);
                }
                ++frames;
            }
            if (!batch.write_all(1)) {
                return 1;
            }
            socket.release_block();
        }
    }
    const PacketStats stats = socket.stats();
    std::fprintf(stderr, "captured %llu received %llu dropped %llu\n", frames,
                 static_cast<unsigned long long>(stats.packets),
                 static_cast<unsigned long long>(stats.drops));
    return 0;
}
