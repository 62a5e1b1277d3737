// The rtnetlink link-message parser: one datagram as the notification socket
// delivers it (RTM_NEWLINK / RTM_DELLINK and anything else, in any number) ->
// net::parse_link_messages -> LinkInfo, as the LinkWatcher hands it on.
//
// Checked besides the sanitizers: every link it reports has a name that fits
// IFNAMSIZ without a NUL in it, as the kernel's IFLA_IFNAME does.

#include "net/link_message.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <net/if.h>
#include <string>

using namespace promiscd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // The watcher's buffer is aligned and exactly as long as what was read; a
    // copy of that size lets ASan see a read past the datagram.
    auto buffer = std::make_unique<uint8_t[]>(size ? size : 1);
    std::memcpy(buffer.get(), data, size);
    for (const auto& m : net::parse_link_messages(buffer.get(), size)) {
        if (m.link.name.size() >= IFNAMSIZ || m.link.name.find('\0') != std::string::npos) {
            std::fprintf(stderr, "fuzz_link_message: a link name of %zu bytes\n",
                         m.link.name.size());
            std::abort();
        }
    }
    return 0;
}
