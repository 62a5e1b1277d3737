// promiscd's side of the benchmark: opens a pcapng capture over D-Bus (the
// generated proxy) and hands the pipe to `cat >/dev/null`, the same reader
// tcpdump and dumpcap get. It stays on the bus (it owns the capture) and
// sleeps; on SIGINT it prints the capture's counters (Packets, Drops) and
// exits, which ends the capture, and with it cat.
//
// usage: capture_sink IFACE [BUFFER_BYTES]
// prints "capturing PATH CAT_PID" on stderr once the capture is open.
#include "config.h"
#include "promisc1_proxy.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <sdbus-c++/sdbus-c++.h>

namespace gen = ::org::promiscd::Promisc1;

namespace {

volatile sig_atomic_t stop_requested = 0;
void on_signal(int) {
    stop_requested = 1;
}

class Manager final : public sdbus::ProxyInterfaces<gen::Manager_proxy> {
public:
    explicit Manager(sdbus::IConnection& c)
        : ProxyInterfaces(c, PROMISCD_BUS_NAME, PROMISCD_OBJECT_PATH) {
        registerProxy();
    }
    ~Manager() { unregisterProxy(); }
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;

private:
    void onConflict(const std::string&, const uint32_t&) override {}
    void onFlagChanged(const std::string&, const bool&, const std::string&) override {}
};

class Capture final : public sdbus::ProxyInterfaces<gen::Capture_proxy> {
public:
    Capture(sdbus::IConnection& c, const std::string& path)
        : ProxyInterfaces(c, PROMISCD_BUS_NAME, path) {
        registerProxy();
    }
    ~Capture() { unregisterProxy(); }
    Capture(const Capture&) = delete;
    Capture& operator=(const Capture&) = delete;

private:
    void onFinished(const std::string&) override {}
};

} // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s IFACE [BUFFER_BYTES]\n", argv[0]);
        return 2;
    }
    struct sigaction sa {};
    sa.sa_handler = on_signal; // no SA_RESTART: read() returns EINTR
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    auto connection = sdbus::createSystemBusConnection();
    std::map<std::string, sdbus::Variant> options;
    if (argc > 2) {
        options["buffer_size"] = sdbus::Variant(static_cast<uint32_t>(std::atol(argv[2])));
    }
    sdbus::UnixFd fd;
    sdbus::ObjectPath path;
    try {
        Manager manager(*connection);
        std::tie(fd, path) = manager.OpenCapture(argv[1], options);
    } catch (const sdbus::Error& e) {
        std::fprintf(stderr, "capture_sink: %s: %s\n", e.getName().c_str(), e.getMessage().c_str());
        return 1;
    }
    const pid_t cat = fork();
    if (cat == 0) {
        const int null = open("/dev/null", O_WRONLY);
        dup2(fd.get(), 0);
        dup2(null, 1);
        execlp("cat", "cat", static_cast<char*>(nullptr));
        _exit(127);
    }
    fd = sdbus::UnixFd(); // only cat reads the stream
    std::fprintf(stderr, "capturing %s %d\n", path.c_str(), static_cast<int>(cat));
    while (!stop_requested) {
        pause();
    }
    Capture capture(*connection, path);
    std::printf("captured %llu dropped %llu\n", static_cast<unsigned long long>(capture.Packets()),
                static_cast<unsigned long long>(capture.Drops()));
    return 0;
}
