// Frames for tests: bytes, MAC addresses, and a sender that puts frames on
// a link of another network namespace.
#pragma once

#include "netns.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace promiscd::testing {

using Bytes = std::vector<uint8_t>;
using Mac = std::array<uint8_t, 6>;

// Lower-case hex digits of b.
std::string hex(const Bytes& b);

// The MAC address of dev in ns.
Mac mac_of(const Netns& ns, const std::string& dev);

// Sends frames out of a link of another namespace. The socket is opened by
// a thread inside that namespace and keeps it; protocol 0: it never receives.
class FrameSender {
public:
    FrameSender(const Netns& ns, const std::string& dev);
    ~FrameSender();
    FrameSender(const FrameSender&) = delete;
    FrameSender& operator=(const FrameSender&) = delete;

    void send(const Bytes& frame);

private:
    int fd_ = -1;
    int ifindex_ = 0;
};

} // namespace promiscd::testing
