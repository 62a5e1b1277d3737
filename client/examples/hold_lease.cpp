// Holds promiscuous mode on a link for a while, reporting what happens to
// the lease, then lets it go (the destructor releases it).
//
//   hold_lease LINK [SECONDS]
//
// Build: c++ -std=c++17 hold_lease.cpp $(pkg-config --cflags --libs promisc)
#include <promisc/promisc.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>

int main(int argc, char** argv) {
    if (argc < 2) {
        std::cerr << "usage: hold_lease LINK [SECONDS]\n";
        return 2;
    }
    const auto seconds = std::chrono::seconds(argc > 2 ? std::atoi(argv[2]) : 5);
    try {
        promisc::Client client;
        promisc::LeaseOptions options;
        options.reason = "hold_lease example";
        promisc::Lease lease = client.acquire(argv[1], options);
        std::cout << "lease " << lease.id() << " on " << lease.interface() << ": "
                  << promisc::to_string(lease.state()) << std::endl;
        lease.on_change([&](promisc::LeaseState from, promisc::LeaseState to) {
            std::cout << "lease " << lease.id() << ": " << promisc::to_string(from) << " -> "
                      << promisc::to_string(to);
            if (to == promisc::LeaseState::Ended)
                std::cout << " (" << lease.end_reason() << ")";
            std::cout << std::endl;
        });
        const auto end = std::chrono::steady_clock::now() + seconds;
        while (lease.held() && std::chrono::steady_clock::now() < end)
            client.process(std::chrono::milliseconds(200));
        return lease.held() ? 0 : 1;
    } catch (const promisc::AccessDeniedError& e) {
        std::cerr << "not allowed: " << e.what() << '\n';
        return 3;
    } catch (const promisc::Error& e) {
        std::cerr << promisc::to_string(e.code()) << ": " << e.what() << '\n';
        return 1;
    }
}
