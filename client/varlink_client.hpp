// A small blocking-connect, poll-driven client of promiscd's varlink socket
// (interface org.promiscd.promisc): NUL-terminated JSON messages on a UNIX
// stream socket. Calls are answered in order, one at a time; a call with
// "more" keeps the connection until its last reply. File descriptors the
// daemon passes with a reply (SCM_RIGHTS) come with that reply. Errors come
// back as client::Error with the same ErrorKind the D-Bus client uses (one
// table, errors.hpp).
#pragma once

#include "client/promisc_client.hpp"

#include <chrono>
#include <cstddef>
#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <sys/socket.h>
#include <utility>
#include <vector>

namespace promiscd::client {

// An error reply, with the parameters that came with it (e.g. the interface
// InterfaceNotFound names): what raise() throws.
class VarlinkError : public Error {
public:
    VarlinkError(ErrorKind kind, std::string name, const std::string& message,
                 nlohmann::json parameters)
        : Error(kind, std::move(name), message), parameters_(std::move(parameters)) {}
    const nlohmann::json& parameters() const noexcept { return parameters_; }

private:
    nlohmann::json parameters_;
};

class VarlinkClient {
public:
    // The largest message accepted from the daemon; a larger one ends the
    // connection (Failed).
    static constexpr std::size_t kMaxMessage = 16u << 20;

    // The most file descriptors accepted with one read; more end the
    // connection (Failed).
    static constexpr std::size_t kMaxFds = 8;

    struct Reply {
        nlohmann::json parameters = nlohmann::json::object();
        bool continues = false;
        std::string error;         // the error name; empty for a reply
        std::vector<UniqueFd> fds; // passed with this reply (close-on-exec)
    };

    // Connects (blocking) to the socket at path. Throws
    // Error(DaemonUnreachable) when nothing listens there.
    explicit VarlinkClient(const std::string& path);
    ~VarlinkClient();
    VarlinkClient(const VarlinkClient&) = delete;
    VarlinkClient& operator=(const VarlinkClient&) = delete;

    const std::string& path() const noexcept { return path_; }
    // The socket, for poll(2)/sd-event (readable: call read_some()).
    int fd() const noexcept { return fd_.get(); }
    bool open() const noexcept { return static_cast<bool>(fd_); }
    void close() noexcept { fd_.reset(); }

    // One call, waiting for its single reply; throws Error for an error reply
    // and returns the reply's parameters.
    nlohmann::json call(const std::string& method,
                        const nlohmann::json& parameters = nlohmann::json::object());
    // The same, returning the whole reply (with the fds it carried).
    Reply request(const std::string& method,
                  const nlohmann::json& parameters = nlohmann::json::object());
    // Sends a call with "more"; its replies come from next().
    void call_more(const std::string& method,
                   const nlohmann::json& parameters = nlohmann::json::object());
    // Sends a call with "oneway": the service answers nothing, not even an
    // error, so the next reply read belongs to the next call.
    void call_oneway(const std::string& method,
                     const nlohmann::json& parameters = nlohmann::json::object());
    // Reads what the socket has without blocking (a bounded amount); false
    // at end of stream (the socket stays open until close()).
    bool read_some();
    // The next complete reply already read, if any.
    std::optional<Reply> next();
    // Waits up to timeout for the next reply; throws Error(DaemonUnreachable)
    // when the connection ends first, Error(Failed) on timeout.
    Reply wait(std::chrono::milliseconds timeout);
    // Throws the error an error reply stands for (a VarlinkError, with the
    // reply's parameters).
    [[noreturn]] static void raise(const Reply& r);

private:
    void send(const nlohmann::json& message);
    void parse();
    void take_fds(msghdr& mh);

    std::string path_;
    UniqueFd fd_;
    std::string in_;
    // Stream offsets: of in_'s first byte, and of the last byte read.
    std::uint64_t in_offset_ = 0;
    std::uint64_t read_offset_ = 0;
    // fds received, each with the stream offset of the last byte that came
    // with it: the kernel ends a read with the message part that carried
    // fds, so they belong to the message holding that byte.
    std::deque<std::pair<std::uint64_t, UniqueFd>> fds_;
    bool eof_ = false;
    std::deque<Reply> replies_;
};

} // namespace promiscd::client
