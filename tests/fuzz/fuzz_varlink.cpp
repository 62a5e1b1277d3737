// The varlink front end from the socket up to the operation call: bytes as a
// client writes them -> the server's framing (NUL-terminated messages, read
// in pieces), its size and depth limits, JSON, the message's fields,
// org.varlink.service, and org.promiscd.promisc's parameter decoding
// (decode_call). The handler stands in for the operations layer: it answers
// what was decoded, so replies are encoded and sent too.
//
// Checked besides the sanitizers: decoding fails only with core::Error, and
// every message the server sends is a JSON object carrying "parameters" or
// "error".

#include "config.h"
#include "core/errors.hpp"
#include "core/names.hpp"
#include "log.hpp"
#include "varlink/promisc_calls.hpp"
#include "varlink/varlink_server.hpp"
#include "varlink/varlink_service.hpp"
#include "varlink_description.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

using namespace promiscd;
using namespace promiscd::varlink;
using nlohmann::json;

namespace {

const std::string iface = PROMISCD_VARLINK_INTERFACE;

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "fuzz_varlink: %s\n", what.c_str());
    std::abort();
}

json describe(const Request& request) {
    return std::visit(
        [](const auto& r) -> json {
            using T = std::decay_t<decltype(r)>;
            if constexpr (std::is_same_v<T, calls::Acquire>)
                return {{"interface", core::display_name(r.request.interface)},
                        {"reason", r.request.reason},
                        {"wait", r.request.wait},
                        {"ttl", r.request.ttl ? json(*r.request.ttl) : json(nullptr)}};
            else if constexpr (std::is_same_v<T, calls::OpenCapture>)
                return {{"interface", core::display_name(r.request.interface)},
                        {"filter", r.request.filter},
                        {"snaplen", r.request.snaplen},
                        {"count", r.request.count}};
            else if constexpr (std::is_same_v<T, calls::SetLinkPolicy>)
                return {{"interface", core::display_name(r.interface)},
                        {"policy", std::string(core::to_string(r.policy))}};
            else if constexpr (std::is_same_v<T, calls::Revoke>)
                return {{"id", r.id}, {"reason", r.reason}};
            else if constexpr (std::is_same_v<T, calls::Renew>)
                return {{"id", r.id}, {"ttl", r.ttl}};
            else if constexpr (std::is_same_v<T, calls::Release> ||
                               std::is_same_v<T, calls::StopCapture>)
                return {{"id", r.id}};
            else
                return json::object();
        },
        request);
}

// The operations layer's stand-in: answers with what was decoded.
class Stub final : public Handler {
public:
    Stub() : service_({"promiscd", "promiscd-fuzz", PROMISCD_VERSION, "https://example.invalid"}) {
        service_.add_interface(iface, promisc_varlink_description);
    }
    void call(const std::shared_ptr<Connection>& c, Call call) override {
        if (service_.answer(*c, call))
            return;
        std::optional<DecodedCall> decoded;
        try {
            decoded = decode_call(call);
        } catch (const core::Error& e) {
            c->error(iface + "." + std::string(core::error_name(e.code())),
                     {{"message", e.what()}});
            return;
        } catch (const std::exception& e) {
            fail(std::string("decode_call threw something other than core::Error: ") + e.what());
        }
        if (!decoded)
            return Service::method_not_found(*c, call.method);
        if (std::holds_alternative<calls::Monitor>(decoded->request) && !call.more)
            return Service::expected_more(*c);
        json answer = describe(decoded->request);
        answer["interactive"] = decoded->interactive;
        if (call.more)
            c->reply(answer, true);
        c->reply(answer);
    }
    void closed(Connection&) override {}

private:
    Service service_;
};

struct World {
    EventPtr event;
    Stub stub;
    std::unique_ptr<Server> server;
    sockaddr_un address{};
    socklen_t address_len = 0;

    World() {
        log::set_console(true);
        log::set_level(log::Level::Error);
        sd_event* e = nullptr;
        if (sd_event_new(&e) < 0)
            fail("sd_event_new");
        event.reset(e);
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        // Autobind: the kernel picks a unique abstract address.
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa_family_t)) < 0 ||
            ::listen(fd, 16) < 0)
            fail("listen");
        address_len = sizeof address;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_len) < 0)
            fail("getsockname");
        Limits limits;
        // Small, so that inputs of a few KiB reach the limits.
        limits.max_message_bytes = 4096;
        limits.max_depth = 16;
        server = std::make_unique<Server>(event.get(), fd, stub, limits);
    }
};

World& world() {
    static World w;
    return w;
}

// Every message the server sent: NUL-terminated JSON objects with
// "parameters" (an object) or "error" (a string).
void check_replies(std::string& received, bool final) {
    size_t start = 0;
    for (size_t nul; (nul = received.find('\0', start)) != std::string::npos; start = nul + 1) {
        json msg = json::parse(received.begin() + start, received.begin() + nul, nullptr, false);
        if (msg.is_discarded() || !msg.is_object())
            fail("the server sent something that is not a JSON object");
        auto p = msg.find("parameters");
        auto e = msg.find("error");
        if (e != msg.end() ? !e->is_string() : (p == msg.end() || !p->is_object()))
            fail("the server sent a message with neither parameters nor an error: " + msg.dump());
    }
    received.erase(0, start);
    if (final && !received.empty())
        fail("the server sent an unterminated message");
}

void pump(World& w, int client, std::string& received) {
    for (int turns = 0;; ++turns) {
        if (turns > 100000)
            fail("the loop never settles");
        char buf[65536];
        while (client >= 0) {
            ssize_t n = ::recv(client, buf, sizeof buf, MSG_DONTWAIT);
            if (n <= 0)
                break;
            received.append(buf, static_cast<size_t>(n));
        }
        int r = sd_event_run(w.event.get(), 0);
        if (r < 0)
            fail("sd_event_run failed");
        if (r == 0)
            break;
    }
    check_replies(received, false);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    World& w = world();
    int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (client < 0 || ::connect(client, reinterpret_cast<sockaddr*>(&w.address), w.address_len) < 0)
        fail("connect");
    std::string received;
    pump(w, client, received);
    if (w.server->connections() != 1)
        fail("the connection was not accepted");
    // In three writes, so that messages also arrive cut in pieces.
    const size_t cuts[] = {0, size / 3, 2 * size / 3, size};
    bool open = true;
    for (int i = 0; i < 3 && open; ++i) {
        size_t at = cuts[i];
        while (at < cuts[i + 1]) {
            ssize_t n = ::send(client, data + at, cuts[i + 1] - at, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n < 0 && errno != EAGAIN) {
                open = false; // the server hung up (it does on invalid JSON)
                break;
            }
            if (n > 0)
                at += static_cast<size_t>(n);
            pump(w, client, received);
        }
    }
    ::shutdown(client, SHUT_WR);
    pump(w, client, received);
    ::close(client);
    pump(w, -1, received);
    if (w.server->connections() != 0)
        fail("the connection outlived its client");
    return 0;
}
