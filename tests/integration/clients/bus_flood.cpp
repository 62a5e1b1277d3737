// A hostile D-Bus client for tests: calls one method of promiscd as fast as it
// can for a while, with no reply expected (the default) or with up to WINDOW
// calls in flight, then prints what happened:
//   SENT <n> OK <n> ERROR <name> <n> ...
// usage: bus_flood SECONDS INTERFACE.METHOD PATH [--window N] [--string S]...
// Arguments are strings (--string) or an empty a{sv} (--options).
#include <systemd/sd-bus.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

struct State {
    long ok = 0;
    std::map<std::string, long> errors;
    long in_flight = 0;
};

int on_reply(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* st = static_cast<State*>(userdata);
    --st->in_flight;
    if (sd_bus_message_is_method_error(m, nullptr))
        ++st->errors[sd_bus_message_get_error(m)->name];
    else
        ++st->ok;
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: bus_flood SECONDS INTERFACE.METHOD PATH [--window N] "
                             "[--string S] [--options]\n");
        return 2;
    }
    const double seconds = std::atof(argv[1]);
    std::string im = argv[2];
    const std::string path = argv[3];
    const auto dot = im.rfind('.');
    const std::string iface = im.substr(0, dot), method = im.substr(dot + 1);
    long window = 0;
    std::vector<std::pair<char, std::string>> args;
    for (int i = 4; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--window" && i + 1 < argc)
            window = std::atol(argv[++i]);
        else if (a == "--string" && i + 1 < argc)
            args.emplace_back('s', argv[++i]);
        else if (a == "--options")
            args.emplace_back('o', "");
    }
    sd_bus* bus = nullptr;
    if (sd_bus_open_system(&bus) < 0) {
        std::fprintf(stderr, "bus_flood: no system bus\n");
        return 1;
    }
    State st;
    long sent = 0;
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    while (std::chrono::steady_clock::now() < end) {
        if (window > 0 && st.in_flight >= window) {
            sd_bus_process(bus, nullptr);
            sd_bus_wait(bus, 10'000);
            continue;
        }
        sd_bus_message* m = nullptr;
        if (sd_bus_message_new_method_call(bus, &m, "org.promiscd.Promisc1", path.c_str(),
                                           iface.c_str(), method.c_str()) < 0)
            return 1;
        for (const auto& [kind, value] : args) {
            if (kind == 's') {
                sd_bus_message_append(m, "s", value.c_str());
            } else {
                sd_bus_message_open_container(m, 'a', "{sv}");
                sd_bus_message_close_container(m);
            }
        }
        int r;
        if (window > 0) {
            r = sd_bus_call_async(bus, nullptr, m, on_reply, &st, 0);
            if (r >= 0)
                ++st.in_flight;
        } else {
            sd_bus_message_set_expect_reply(m, 0);
            r = sd_bus_send(bus, m, nullptr);
        }
        sd_bus_message_unref(m);
        if (r < 0) {
            // The write queue is full: let it drain.
            sd_bus_flush(bus);
            continue;
        }
        ++sent;
        if (sent % 64 == 0) {
            sd_bus_flush(bus);
            while (sd_bus_process(bus, nullptr) > 0) {
            }
        }
    }
    // Collect what is still in flight, for a while.
    const auto drain = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (st.in_flight > 0 && std::chrono::steady_clock::now() < drain) {
        if (sd_bus_process(bus, nullptr) == 0)
            sd_bus_wait(bus, 100'000);
    }
    sd_bus_flush(bus);
    std::printf("SENT %ld OK %ld", sent, st.ok);
    for (const auto& [name, n] : st.errors)
        std::printf(" ERROR %s %ld", name.c_str(), n);
    std::printf("\n");
    sd_bus_flush_close_unref(bus);
    return 0;
}
