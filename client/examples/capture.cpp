// Captures frames of a link through promiscd and prints one line per frame:
// time, length, and the first bytes.
//
//   capture LINK [COUNT [FILTER]]
//
// Build: c++ -std=c++17 capture.cpp $(pkg-config --cflags --libs promisc)
#include <promisc/promisc.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: capture LINK [COUNT [FILTER]]\n";
        return 2;
    }
    promisc::CaptureOptions options;
    options.count = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 10;
    if (argc > 3)
        options.filter = argv[3];
    try {
        promisc::Client client;
        promisc::Capture capture = client.capture(argv[1], options);
        std::cerr << "capturing on " << capture.interface() << " (capture " << capture.id()
                  << ")\n";
        while (!capture.ended()) {
            auto frame = capture.next(std::chrono::seconds(1));
            if (!frame)
                continue; // a quiet second, or the end
            const auto ns = frame->timestamp.time_since_epoch().count();
            std::printf("%lld.%09lld %u bytes:", static_cast<long long>(ns / 1000000000),
                        static_cast<long long>(ns % 1000000000), frame->original_length);
            for (size_t i = 0; i < frame->data.size() && i < 16; ++i)
                std::printf(" %02x", frame->data[i]);
            std::printf("\n");
            std::fflush(stdout);
        }
        const auto stats = capture.stats();
        std::cerr << stats.frames << " frames, " << stats.drops
                  << " dropped; ended: " << capture.end_reason() << '\n';
        return 0;
    } catch (const promisc::InvalidFilterError& e) {
        std::cerr << "bad filter: " << e.what() << '\n';
        return 2;
    } catch (const promisc::Error& e) {
        std::cerr << promisc::to_string(e.code()) << ": " << e.what() << '\n';
        return 1;
    }
}
