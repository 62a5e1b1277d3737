// The client's capture stream reader: whatever arrives in the capture pipe
// (the daemon's pcapng, or anything a compromised or buggy writer could put
// there) -> CaptureReader -> PcapngParser -> frames and statistics. The input
// goes through a real pipe in pieces of different sizes, so blocks arrive cut
// anywhere, as they do from the relay.
//
// Checked besides the sanitizers: the reader fails only with
// CaptureStreamError; once the writer has closed, it reaches the end or says
// the stream ended inside a block; no frame holds more than arrived.

#include "client/capture_reader.hpp"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <unistd.h>

using namespace promiscd::client;

namespace {

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_capture_stream: %s\n", what.c_str());
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        fail("pipe2");
    int writer = fds[1];
    CaptureReader reader(fds[0]);
    const size_t pieces[] = {13, 4096, 1, 100};
    size_t at = 0;
    for (unsigned turn = 0;; ++turn) {
        if (at < size) {
            const size_t want = std::min(size - at, pieces[turn % 4]);
            const ssize_t n = ::write(writer, data + at, want);
            if (n < 0 && errno != EAGAIN)
                fail("write");
            if (n > 0)
                at += static_cast<size_t>(n);
        } else if (writer >= 0) {
            ::close(writer);
            writer = -1;
        }
        try {
            while (auto frame = reader.next(std::chrono::milliseconds(0)))
                if (frame->data.size() > size)
                    fail("a frame larger than the stream");
        } catch (const CaptureStreamError&) {
            break;
        } catch (const std::exception& e) {
            fail(std::string("the reader threw something other than CaptureStreamError: ") +
                 e.what());
        }
        if (writer < 0) {
            if (!reader.eof())
                fail("the stream was closed but the reader neither ended nor complained");
            break;
        }
    }
    if (writer >= 0)
        ::close(writer);
    return 0;
}
