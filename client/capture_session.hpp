// A capture as a client program sees it: ask promiscd for one over D-Bus
// (Manager.OpenCapture, through the library's Client), then take frames with
// next(timeout) as they arrive on the pcapng pipe. The capture belongs to the
// Client's bus connection: it ends when that connection closes (the session
// is destroyed with its own Client, or the process exits).
#pragma once

#include "client/capture_reader.hpp"
#include "client/promisc_client.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace promiscd::client {

struct CaptureSessionOptions {
    std::string filter{};          // pcap-filter expression; empty: every frame
    std::uint32_t snaplen = 0;     // 0: the daemon's default (262144)
    bool promisc = true;           // hold promiscuous mode while capturing
    std::uint32_t buffer_size = 0; // kernel ring bytes; 0: the daemon's default
    std::uint64_t count = 0;       // end after this many frames; 0: no limit
};

class CaptureSession {
public:
    // Opens a pcapng capture on the system bus (DBUS_SYSTEM_BUS_ADDRESS is
    // honoured). Throws client::Error with the daemon's error (kind and
    // D-Bus name), DaemonUnreachable when there is no bus or no promiscd.
    explicit CaptureSession(const std::string& interface,
                            const CaptureSessionOptions& options = {});
    // The same on a Client the caller already has (and keeps alive for as
    // long as the session): its connection carries the capture, and the
    // session dispatches it while waiting.
    CaptureSession(Client& client, const std::string& interface,
                   const CaptureSessionOptions& options = {});
    // Reads a pcapng stream that is already open (a file, `dumpcap -w -`),
    // taking ownership of fd. There is no Capture object: stop() does
    // nothing and wait_finished() returns nothing.
    static CaptureSession from_stream(int fd);

    CaptureSession(CaptureSession&&) noexcept;
    CaptureSession& operator=(CaptureSession&&) noexcept;
    CaptureSession(const CaptureSession&) = delete;
    CaptureSession& operator=(const CaptureSession&) = delete;
    ~CaptureSession();

    // A frame, or nothing when timeout passes first (negative: wait for
    // ever) or the capture has ended (then eof()). Throws CaptureStreamError
    // on a malformed stream.
    std::optional<Frame> next(std::chrono::milliseconds timeout);
    bool eof() const noexcept;

    // Capture.Stop(): the daemon ends the stream cleanly (closing statistics,
    // then end of file); keep calling next() for the frames still in it.
    void stop();
    // Waits up to timeout for the Finished signal; its reason ("stopped",
    // "count-reached", ...) or nothing.
    std::optional<std::string> wait_finished(std::chrono::milliseconds timeout);

    // The Capture object ("" from from_stream()).
    const std::string& path() const noexcept;
    const std::vector<InterfaceInfo>& interfaces() const noexcept;
    // The closing Interface Statistics Block, once the stream has ended.
    const std::optional<CaptureStatistics>& statistics() const noexcept;
    // For a poll loop of the caller's own: readable means next(0ms) may return.
    int fd() const noexcept;

    struct Impl;

private:
    explicit CaptureSession(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

} // namespace promiscd::client
