// The relay of one capture: frames move from the packet socket's ring into the
// client's pipe as a pcapng or pcap stream, on the daemon's sd-event loop,
// without ever blocking it or buffering more than one batch.
#pragma once

#include "capture/packet_socket.hpp"
#include "capture/unique_fd.hpp"

#include <sys/uio.h>
#include <systemd/sd-event.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace promiscd::capture {

enum class StreamFormat { Pcapng, Pcap };

// Why a capture ended, as clients see it (Capture.Finished).
enum class FinishReason {
    Stopped,
    CountReached,
    ReaderClosed,
    LinkRemoved,
    OwnerGone,
    Error,
    DaemonShutdown,
    NetnsGone,
};
// "stopped", "count-reached", "reader-closed", "link-removed", "owner-gone",
// "error", "daemon-shutdown", "netns-gone" (the link's network namespace went).
std::string_view to_string(FinishReason reason);

struct RelayCounters {
    std::uint64_t packets = 0; // frames written whole into the pipe
    std::uint64_t bytes = 0;   // captured bytes of those frames
    std::uint64_t drops = 0;   // frames the kernel dropped because the ring was full
    bool operator==(const RelayCounters&) const = default;
};

struct StreamInfo {
    StreamFormat format = StreamFormat::Pcapng;
    std::string interface {};  // if_name
    std::string filter{};      // if_filter
    std::string application{}; // shb_userappl
    std::uint64_t count = 0;   // end after this many frames; 0: no limit
    // How long the ring is still read after finish(): the kernel hands over
    // a partly filled block only when its retire timer fires, so frames
    // captured just before the stop wait up to one block timeout. 0: none.
    std::uint64_t settle_usec = 0;
};

class Relay {
public:
    // Runs once, when the pipe is closed; the relay may be destroyed only
    // after that, and not from inside the call.
    using Done = std::function<void(FinishReason)>;

    // Queues the stream's header and starts relaying. Throws std::system_error
    // when the event sources cannot be added.
    Relay(sd_event* event, PacketSocket socket, UniqueFd pipe, StreamInfo info, Done done);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;
    Relay(Relay&&) = delete;
    Relay& operator=(Relay&&) = delete;

    // Ends the stream: frames captured until now are still relayed (for up
    // to settle_usec, at once for count-reached and error), then the closing
    // statistics are written as the reader makes room (for at most
    // kFinishGraceUsec), then the pipe is closed and done runs with this
    // reason. No-op once ending.
    void finish(FinishReason reason);
    // The same without waiting: what the pipe takes now is written, the rest
    // is dropped (the loop is about to exit).
    void finish_now(FinishReason reason);

    bool running() const noexcept { return state_ == State::Running; }
    bool ended() const noexcept { return state_ == State::Ended; }
    // Reads the kernel's drop counter (PACKET_STATISTICS) while the socket is open.
    RelayCounters counters();

    static constexpr std::uint64_t kFinishGraceUsec = 5'000'000;

private:
    enum class State { Running, Draining, Ended };
    struct SourceDeleter {
        void operator()(sd_event_source* s) const noexcept { sd_event_source_disable_unref(s); }
    };
    using Source = std::unique_ptr<sd_event_source, SourceDeleter>;

    static int on_socket(sd_event_source* s, int fd, std::uint32_t revents, void* userdata);
    static int on_pipe(sd_event_source* s, int fd, std::uint32_t revents, void* userdata);
    static int on_grace(sd_event_source* s, std::uint64_t usec, void* userdata);
    static int on_settled(sd_event_source* s, std::uint64_t usec, void* userdata);

    void pump();
    void begin_drain();
    void drain();
    void fill();
    bool flush();
    void queue_tail();
    void end(FinishReason reason);
    void close_socket();
    void want_readable();
    void want_writable();

    void stage(const void* bytes, std::size_t n);
    void reference(const void* bytes, std::size_t n);
    void close_run();

    sd_event* event_;
    std::optional<PacketSocket> socket_;
    UniqueFd pipe_;
    StreamInfo info_;
    Done done_;
    State state_ = State::Running;
    FinishReason reason_ = FinishReason::Stopped;
    bool tail_queued_ = false;
    // finish() was called and frames up to stop_ns_ are still being relayed.
    bool stopping_ = false;
    bool passed_stop_ = false; // a frame later than stop_ns_ was seen
    std::uint64_t stop_ns_ = 0;

    Source socket_source_;
    Source pipe_source_;
    Source grace_;
    Source settle_;
    bool reading_ = false; // socket source enabled
    bool waiting_ = false; // pipe source asks for EPOLLOUT

    // The block being relayed and the next packet in it. A block is given
    // back only once every byte of it that the batch references is written.
    std::optional<PacketBlock> block_;
    PacketBlock::iterator next_;

    // The batch: iovecs into the ring (large pieces) and into staging_
    // (framing and small frames, copied by the writers), written with
    // writev. staging_ never grows past its reserved capacity, so the
    // iovecs into it stay valid; bytes from run_start_ on are not in iov_ yet.
    std::vector<iovec> iov_;
    std::size_t iov_first_ = 0;
    std::vector<std::uint8_t> staging_;
    std::size_t run_start_ = 0;
    std::uint64_t batch_packets_ = 0;
    std::uint64_t batch_bytes_ = 0;

    std::uint64_t relayed_ = 0; // frames put into batches
    RelayCounters counters_;
    std::uint64_t received_ = 0; // tp_packets: accepted by the filter, dropped ones included
    std::uint64_t start_ns_ = 0;
    bool cooked_ = false;
    std::uint32_t snaplen_ = 0;
};

} // namespace promiscd::capture
