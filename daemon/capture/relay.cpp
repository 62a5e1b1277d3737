#include "capture/relay.hpp"

#include "capture/pcap_writer.hpp"
#include "capture/pcapng_writer.hpp"
#include "capture/record_layout.hpp"

#include <sys/epoll.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <system_error>
#include <utility>

namespace promiscd::capture {

namespace {

// writev() takes at most IOV_MAX (1024 on Linux) pieces at once.
constexpr std::size_t kMaxIov = 1024;
// Framing and small pieces are copied into the staging area: for pieces this
// short a copy costs less than an iovec does in the kernel, and runs of small
// frames become one contiguous write. Larger pieces go to the pipe straight
// from the ring (one copy, the pipe's own).
constexpr std::size_t kCopyBelow = 256;
constexpr std::size_t kStagingSize = 256 << 10;
// Most one frame can add to the staging area: EPB header and trailer (or a
// pcap record header) and up to three pieces copied.
constexpr std::size_t kFrameStaging = pcapng::kEpbHeaderSize + 8 + 3 * kCopyBelow;
// Frames per iovec at most: header, three pieces, trailer.
constexpr std::size_t kFrameIov = 5;
// Ring blocks relayed per dispatch, so that one busy capture cannot keep the
// loop from other captures and bus clients.
constexpr unsigned kBlocksPerDispatch = 4;

std::uint64_t realtime_ns() {
    timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000 +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

void check(int r, const char* what) {
    if (r < 0) {
        throw std::system_error(-r, std::generic_category(), what);
    }
}

} // namespace

std::string_view to_string(FinishReason reason) {
    switch (reason) {
    case FinishReason::Stopped:
        return "stopped";
    case FinishReason::CountReached:
        return "count-reached";
    case FinishReason::ReaderClosed:
        return "reader-closed";
    case FinishReason::LinkRemoved:
        return "link-removed";
    case FinishReason::OwnerGone:
        return "owner-gone";
    case FinishReason::Error:
        return "error";
    case FinishReason::DaemonShutdown:
        return "daemon-shutdown";
    case FinishReason::NetnsGone:
        return "netns-gone";
    }
    return "error";
}

Relay::Relay(sd_event* event, PacketSocket socket, UniqueFd pipe, StreamInfo info, Done done)
    : event_(event), pipe_(std::move(pipe)), info_(std::move(info)), done_(std::move(done)),
      start_ns_(realtime_ns()), cooked_(socket.cooked()), snaplen_(socket.snaplen()) {
    iov_.reserve(kMaxIov);
    staging_.reserve(kStagingSize);
    const std::uint16_t link_type = socket.link_type();
    socket_.emplace(std::move(socket));

    std::vector<std::uint8_t> header;
    if (info_.format == StreamFormat::Pcapng) {
        pcapng::append_section_header(header, {.application = info_.application});
        pcapng::append_interface_description(header, {.link_type = link_type,
                                                      .snaplen = snaplen_,
                                                      .name = info_.interface,
                                                      .filter = info_.filter});
    } else {
        pcap::append_file_header(header, link_type, snaplen_);
    }
    stage(header.data(), header.size());

    sd_event_source* s = nullptr;
    check(sd_event_add_io(event_, &s, socket_->fd(), EPOLLIN, &Relay::on_socket, this),
          "cannot watch the capture socket");
    socket_source_.reset(s);
    sd_event_source_set_description(s, "capture-socket");
    sd_event_source_set_enabled(s, SD_EVENT_OFF);
    // EPOLLERR on the write end is how a reader that closes its end is seen
    // even when no frame flows; epoll reports it whatever the mask. The
    // header goes out once the loop finds the pipe writable.
    check(sd_event_add_io(event_, &s, pipe_.get(), EPOLLOUT, &Relay::on_pipe, this),
          "cannot watch the capture pipe");
    pipe_source_.reset(s);
    sd_event_source_set_description(s, "capture-pipe");
    waiting_ = true;
}

Relay::~Relay() = default;

int Relay::on_socket(sd_event_source*, int, std::uint32_t revents, void* userdata) {
    auto* self = static_cast<Relay*>(userdata);
    if (self->state_ != State::Running) {
        return 0;
    }
    if ((revents & EPOLLERR) != 0) {
        // ENETDOWN: the link went down; the kernel hooks the socket up again
        // when it comes back, so the capture goes on. Removal is reported by
        // the link watcher.
        const int error = self->socket_->take_error();
        if (error != 0 && error != ENETDOWN) {
            self->finish(FinishReason::Error);
            return 0;
        }
    }
    self->pump();
    return 0;
}

int Relay::on_pipe(sd_event_source*, int, std::uint32_t revents, void* userdata) {
    auto* self = static_cast<Relay*>(userdata);
    if ((revents & (EPOLLERR | EPOLLHUP)) != 0) {
        self->end(FinishReason::ReaderClosed);
        return 0;
    }
    if (self->state_ == State::Running) {
        self->pump();
    } else if (self->state_ == State::Draining) {
        self->drain();
    }
    return 0;
}

int Relay::on_settled(sd_event_source*, std::uint64_t, void* userdata) {
    static_cast<Relay*>(userdata)->begin_drain();
    return 0;
}

int Relay::on_grace(sd_event_source*, std::uint64_t, void* userdata) {
    // The reader did not make room for the rest of the stream in time: it
    // ends truncated rather than holding the daemon's resources for ever.
    auto* self = static_cast<Relay*>(userdata);
    self->end(self->reason_);
    return 0;
}

void Relay::want_readable() {
    if (waiting_) {
        sd_event_source_set_io_events(pipe_source_.get(), 0);
        waiting_ = false;
    }
    if (!reading_) {
        sd_event_source_set_enabled(socket_source_.get(), SD_EVENT_ON);
        reading_ = true;
    }
}

void Relay::want_writable() {
    // While the pipe is full the ring is not drained: frames wait in the
    // kernel's bounded ring and what overflows is dropped and counted there,
    // never buffered here.
    if (reading_) {
        sd_event_source_set_enabled(socket_source_.get(), SD_EVENT_OFF);
        reading_ = false;
    }
    if (!waiting_) {
        sd_event_source_set_io_events(pipe_source_.get(), EPOLLOUT);
        waiting_ = true;
    }
}

void Relay::stage(const void* bytes, std::size_t n) {
    const auto* p = static_cast<const std::uint8_t*>(bytes);
    staging_.insert(staging_.end(), p, p + n);
}

void Relay::close_run() {
    if (staging_.size() > run_start_) {
        iov_.push_back({staging_.data() + run_start_, staging_.size() - run_start_});
        run_start_ = staging_.size();
    }
}

void Relay::reference(const void* bytes, std::size_t n) {
    close_run();
    // iovec is not const-correct; writev only reads.
    iov_.push_back({const_cast<void*>(bytes), n});
}

void Relay::fill() {
    const bool pcapng = info_.format == StreamFormat::Pcapng;
    const auto end = block_->end();
    while (next_ != end) {
        if (info_.count != 0 && relayed_ >= info_.count) {
            return;
        }
        if (iov_.size() + kFrameIov > kMaxIov ||
            staging_.size() + kFrameStaging > staging_.capacity()) {
            return;
        }
        const Packet packet = *next_;
        if (stopping_ && packet.timestamp_ns > stop_ns_) {
            // Blocks hold frames in arrival order: all before the stop are in.
            passed_stop_ = true;
            return;
        }
        const RecordLayout layout(packet, cooked_, snaplen_);
        if (layout.caplen() < kCopyBelow) {
            // The whole record into the staging area, by the writers.
            if (pcapng) {
                pcapng::append_epb(staging_, 0, packet.timestamp_ns, layout.origlen(),
                                   layout.pieces());
            } else {
                pcap::append_record(staging_, packet.timestamp_ns, layout.origlen(),
                                    layout.pieces());
            }
        } else {
            // Framing staged, the frame itself written from the ring.
            std::optional<pcapng::EpbFraming> framing;
            if (pcapng) {
                framing.emplace(0, packet.timestamp_ns, layout.caplen(), layout.origlen());
                const iovec h = framing->header();
                stage(h.iov_base, h.iov_len);
            } else {
                pcap::RecordHeader record(packet.timestamp_ns, layout.caplen(), layout.origlen());
                const iovec h = record.iov();
                stage(h.iov_base, h.iov_len);
            }
            for (const iovec& piece : layout.pieces()) {
                if (piece.iov_len < kCopyBelow) {
                    stage(piece.iov_base, piece.iov_len);
                } else {
                    reference(piece.iov_base, piece.iov_len);
                }
            }
            if (framing) {
                const iovec t = framing->trailer();
                stage(t.iov_base, t.iov_len);
            }
        }
        ++next_;
        ++relayed_;
        ++batch_packets_;
        batch_bytes_ += layout.caplen();
    }
}

bool Relay::flush() {
    close_run();
    while (iov_first_ < iov_.size()) {
        const auto n_iov = static_cast<int>(std::min(iov_.size() - iov_first_, kMaxIov));
        const ssize_t n = ::writev(pipe_.get(), &iov_[iov_first_], n_iov);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                return false;
            }
            end(errno == EPIPE ? FinishReason::ReaderClosed : FinishReason::Error);
            return false;
        }
        auto left = static_cast<std::size_t>(n);
        while (left > 0) {
            iovec& v = iov_[iov_first_];
            if (left >= v.iov_len) {
                left -= v.iov_len;
                ++iov_first_;
            } else {
                v.iov_base = static_cast<std::uint8_t*>(v.iov_base) + left;
                v.iov_len -= left;
                left = 0;
            }
        }
    }
    iov_.clear();
    iov_first_ = 0;
    staging_.clear();
    run_start_ = 0;
    counters_.packets += batch_packets_;
    counters_.bytes += batch_bytes_;
    batch_packets_ = 0;
    batch_bytes_ = 0;
    return true;
}

void Relay::pump() {
    unsigned blocks = 0;
    while (state_ == State::Running) {
        if (!flush()) {
            if (state_ == State::Running) {
                want_writable();
            }
            return;
        }
        // Nothing in flight references the ring now.
        if (block_ && next_ == block_->end()) {
            socket_->release_block();
            block_.reset();
        }
        if (info_.count != 0 && relayed_ >= info_.count) {
            if (!stopping_) {
                reason_ = FinishReason::CountReached;
            }
            begin_drain();
            return;
        }
        if (passed_stop_) {
            begin_drain();
            return;
        }
        if (!block_) {
            // Level-triggered: a ring with blocks left stays readable, so
            // the loop comes back here after serving the others.
            if (blocks == kBlocksPerDispatch) {
                want_readable();
                return;
            }
            block_ = socket_->current_block();
            if (!block_) {
                want_readable();
                return;
            }
            next_ = block_->begin();
            ++blocks;
        }
        fill();
    }
}

void Relay::finish(FinishReason reason) {
    if (state_ != State::Running || stopping_) {
        return;
    }
    reason_ = reason;
    std::uint64_t now = 0;
    if (info_.settle_usec != 0 && reason != FinishReason::CountReached &&
        reason != FinishReason::Error && sd_event_now(event_, CLOCK_MONOTONIC, &now) >= 0) {
        sd_event_source* s = nullptr;
        if (sd_event_add_time(event_, &s, CLOCK_MONOTONIC, now + info_.settle_usec, 0,
                              &Relay::on_settled, this) >= 0) {
            settle_.reset(s);
            sd_event_source_set_description(s, "capture-settle");
            stopping_ = true;
            stop_ns_ = realtime_ns();
            pump();
            return;
        }
    }
    begin_drain();
}

void Relay::begin_drain() {
    if (state_ != State::Running) {
        return;
    }
    state_ = State::Draining;
    stopping_ = false;
    settle_.reset();
    if (reading_) {
        sd_event_source_set_enabled(socket_source_.get(), SD_EVENT_OFF);
        reading_ = false;
    }
    sd_event_source* s = nullptr;
    std::uint64_t now = 0;
    if (sd_event_now(event_, CLOCK_MONOTONIC, &now) >= 0 &&
        sd_event_add_time(event_, &s, CLOCK_MONOTONIC, now + kFinishGraceUsec, 0, &Relay::on_grace,
                          this) >= 0) {
        grace_.reset(s);
        sd_event_source_set_description(s, "capture-finish-grace");
    }
    drain();
}

void Relay::finish_now(FinishReason reason) {
    if (state_ == State::Ended) {
        return;
    }
    if (state_ == State::Running) {
        state_ = State::Draining;
        if (!stopping_) {
            reason_ = reason;
        }
        stopping_ = false;
        settle_.reset();
    }
    if (flush() && !tail_queued_) {
        queue_tail();
        flush();
    }
    end(reason_);
}

void Relay::drain() {
    if (!flush()) {
        if (state_ == State::Draining) {
            want_writable();
        }
        return;
    }
    if (!tail_queued_) {
        queue_tail();
        if (!flush()) {
            if (state_ == State::Draining) {
                want_writable();
            }
            return;
        }
    }
    end(reason_);
}

void Relay::queue_tail() {
    tail_queued_ = true;
    close_socket();
    if (info_.format != StreamFormat::Pcapng) {
        return;
    }
    const std::uint64_t now = realtime_ns();
    std::vector<std::uint8_t> isb;
    pcapng::append_interface_statistics(isb, {.interface_id = 0,
                                              .timestamp_ns = now,
                                              .start_ns = start_ns_,
                                              .end_ns = now,
                                              .received = received_,
                                              // promiscd cannot see drops in the NIC itself.
                                              .interface_dropped = 0,
                                              .os_dropped = counters_.drops});
    stage(isb.data(), isb.size());
}

void Relay::close_socket() {
    if (!socket_) {
        return;
    }
    try {
        const PacketStats stats = socket_->stats();
        counters_.drops = stats.drops;
        received_ = stats.packets;
    } catch (const std::system_error&) {
        // Keep the last values read.
    }
    block_.reset();
    socket_source_.reset();
    reading_ = false;
    socket_.reset();
}

void Relay::end(FinishReason reason) {
    if (state_ == State::Ended) {
        return;
    }
    if (state_ == State::Draining || stopping_) {
        reason = reason_; // why it was ending, not what cut the tail short
    }
    state_ = State::Ended;
    stopping_ = false;
    close_socket();
    settle_.reset();
    grace_.reset();
    pipe_source_.reset();
    pipe_.reset();
    iov_.clear();
    iov_first_ = 0;
    staging_.clear();
    run_start_ = 0;
    Done done = std::move(done_);
    if (done) {
        done(reason);
    }
}

RelayCounters Relay::counters() {
    if (socket_) {
        try {
            const PacketStats stats = socket_->stats();
            counters_.drops = stats.drops;
            received_ = stats.packets;
        } catch (const std::system_error&) {
            // Keep the last values read.
        }
    }
    return counters_;
}

} // namespace promiscd::capture
