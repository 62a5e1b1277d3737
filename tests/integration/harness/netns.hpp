// Test harness: network namespaces that are always deleted, with the links a test
// needs (veth, ifb, dummy) and their state as `ip -d link` reports it to a user.
#pragma once

#include "process.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace promiscd::testing {

// A uniquely named network namespace (`ip netns add`) with `lo` up. The destructor
// deletes it, and with it every link inside, even when the test failed.
class Netns {
public:
    Netns();
    ~Netns();
    Netns(const Netns&) = delete;
    Netns& operator=(const Netns&) = delete;

    const std::string& name() const { return name_; }
    // /run/netns/<name>, for setns() or nsenter.
    std::string path() const;
    // argv prefixed so that it runs inside the namespace (`ip netns exec NAME ...`,
    // which also mounts the namespace's own /sys); for Process.
    std::vector<std::string> wrap(std::vector<std::string> argv) const;
    // `ip netns exec NAME sh -c cmd`.
    CommandResult exec(const std::string& cmd) const;
    // Like exec(), but throws std::runtime_error with the output when it fails;
    // returns stdout.
    std::string exec_ok(const std::string& cmd) const;

private:
    std::string name_;
};

// Moves the calling thread into ns for its lifetime and back afterwards, for
// in-process tests: netlink (and other) sockets opened meanwhile belong to ns,
// and keep doing so after the thread has left.
class Enter {
public:
    explicit Enter(const Netns& ns);
    ~Enter();
    Enter(const Enter&) = delete;
    Enter& operator=(const Enter&) = delete;

private:
    int saved_fd_ = -1;
};

struct VethPair {
    std::string name;      // in the first namespace
    std::string peer_name; // in the first namespace, or in peer_ns
};

// A veth pair inside ns, both ends down; names are unique when left empty.
VethPair add_veth(const Netns& ns, std::string name = {}, std::string peer_name = {});
// A veth pair with `name` in ns and its peer in peer_ns.
VethPair add_veth(const Netns& ns, const Netns& peer_ns, std::string name = {},
                  std::string peer_name = {});
// An ifb link inside ns (down); name unique when left empty.
std::string add_ifb(const Netns& ns, std::string name = {});
// Whether this kernel can create `dummy` links (probed once, in a throwaway
// namespace).
bool dummy_supported();
// A plain standalone link: dummy where the kernel has it, ifb otherwise.
std::string add_plain_link(const Netns& ns, std::string name = {});

// A link as `ip -j -d link show` reports it.
struct LinkState {
    int ifindex = 0;
    std::string name;
    std::vector<std::string> flags; // e.g. BROADCAST, NOARP, PROMISC, UP
    unsigned mtu = 0;
    std::string operstate;    // e.g. "UP", "DOWN", "UNKNOWN"
    unsigned promiscuity = 0; // the kernel's count (admin bit + packet sockets)
    unsigned allmulti_count = 0;

    bool has_flag(std::string_view flag) const;
    bool promisc() const { return has_flag("PROMISC"); } // the admin bit
    bool up() const { return has_flag("UP"); }
    bool allmulti() const { return has_flag("ALLMULTI"); }
};

// The state of one link in ns; nullopt when there is no such link.
std::optional<LinkState> link_state(const Netns& ns, const std::string& dev);
// Every link in ns.
std::vector<LinkState> link_states(const Netns& ns);

} // namespace promiscd::testing
