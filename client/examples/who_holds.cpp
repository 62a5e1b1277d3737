// Shows who holds promiscuous mode on the host, then follows it: every
// lease granted and ended, and every change of a link's flag, for a while.
// Reading needs no authorization.
//
//   who_holds [SECONDS]
//
// Build: c++ -std=c++17 who_holds.cpp $(pkg-config --cflags --libs promisc)
#include <promisc/promisc.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>

namespace {

void show(const promisc::LeaseInfo& l) {
    std::cout << "lease " << l.id << " on " << l.interface << ": " << promisc::to_string(l.state)
              << ", uid " << l.uid << " (" << l.command << ")";
}

} // namespace

int main(int argc, char** argv) {
    const auto seconds = std::chrono::seconds(argc > 1 ? std::atoi(argv[1]) : 10);
    try {
        promisc::Client client;
        promisc::Monitor monitor = client.monitor();
        for (const auto& l : monitor.leases()) {
            show(l);
            std::cout << std::endl;
        }
        monitor.on_event([](const promisc::Event& e) {
            using Type = promisc::Event::Type;
            switch (e.type) {
            case Type::LeaseGranted:
                std::cout << "granted: ";
                show(*e.lease);
                std::cout << std::endl;
                break;
            case Type::LeaseEnded:
                std::cout << "ended: lease " << e.lease->id << " on " << e.interface << ": "
                          << e.reason << (e.detail.empty() ? "" : " by " + e.detail) << std::endl;
                break;
            case Type::FlagChanged:
                std::cout << e.interface << ": promiscuous mode " << (e.flag ? "on" : "off") << " ("
                          << e.by << ")" << std::endl;
                break;
            case Type::DaemonStopped:
                std::cout << "promiscd stopped" << std::endl;
                break;
            default:
                break;
            }
        });
        const auto end = std::chrono::steady_clock::now() + seconds;
        while (std::chrono::steady_clock::now() < end)
            client.process(std::chrono::milliseconds(200));
        return 0;
    } catch (const promisc::Error& e) {
        std::cerr << promisc::to_string(e.code()) << ": " << e.what() << '\n';
        return 1;
    }
}
