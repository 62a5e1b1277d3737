// Network namespaces other than promiscd's own: naming one (a name under
// /run/netns, a process, or a namespace file), holding it open, telling who
// owns it and whether anything but promiscd still holds it, and making
// sockets inside it without ever moving the daemon's own threads.
#pragma once

#include "capture/unique_fd.hpp"

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace promiscd::net {

// An open network namespace.
struct Netns {
    capture::UniqueFd fd; // the nsfs file, opened for reading
    uint64_t inode = 0;   // its identity (with dev)
    uint64_t dev = 0;
    std::string spec; // as the client named it: "blue", "pid:4242", "/proc/4242/ns/net"
    std::string path; // the file promiscd opened
    // The uid that owns the user namespace owning this namespace, when that
    // is not the initial one (a rootless container's); nullopt otherwise.
    std::optional<uint32_t> owner_uid;
    // For "pid:N": the process's pidfd, readable once it exits.
    capture::UniqueFd pidfd;
};

// The forms a client may use (option "netns"):
//   NAME      a namespace of `ip netns` (/run/netns/NAME): no '/', not "." or "..";
//   pid:N     the namespace of process N, resolved through a pidfd so that a
//             recycled pid cannot name another process's namespace;
//   /PATH     a namespace file: /proc/N[/task/T]/ns/net, or a file in
//             /run/netns or /run/docker/netns (also under /var/run): no
//             lookup crosses a mount a client could have made (a FUSE
//             server that never answers would hang the loop).
// Throws core::Error(InvalidArgument) saying what is wrong or missing; only
// files on nsfs that are network namespaces are ever opened for reading.
Netns open_netns(std::string_view spec);

// The inode of the namespace promiscd's threads live in (the host's, for
// promiscd). Throws std::system_error.
uint64_t own_netns_inode();

// Runs fn on a short-lived thread that joined the namespace first, and waits
// for it: sockets fn creates belong to that namespace for their life. What fn
// throws is thrown here; a failing setns() throws std::system_error.
void run_in_netns(int netns_fd, const std::function<void()>& fn);

// Which of these namespaces anything besides promiscd holds: a process whose
// /proc/PID/ns/net is one, or a mount of one in promiscd's mount namespace
// (`ip netns add`). One pass: a readlink per process, whatever their number.
std::set<uint64_t> netns_in_use(const std::set<uint64_t>& inodes);

} // namespace promiscd::net
