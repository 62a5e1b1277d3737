// org.varlink.certification served by promiscd's own varlink code: the same
// varlink::Server (framing, limits, one call at a time, oneway, more) and
// varlink::Service (org.varlink.service) the daemon runs, with a handler that
// checks every step of the certification sequence strictly and says in End
// whether all of a client's calls were right.
//   varlink_certification_server --varlink=unix:PATH
// The varlink project's reference clients take the same flag.
#include "certification.hpp"
#include "certification_description.h"
#include "event.hpp"
#include "log.hpp"
#include "varlink/varlink_server.hpp"
#include "varlink/varlink_service.hpp"

#include <csignal>
#include <cstdio>
#include <deque>
#include <iostream>
#include <map>
#include <string>
#include <sys/random.h>
#include <unistd.h>

namespace {

using namespace promiscd;
using namespace promiscd::certification;
using nlohmann::json;

const std::string prefix = interface_name + ".";
// Clients that never call End are forgotten, oldest first, beyond this.
constexpr size_t max_clients = 100;

std::string new_client_id() {
    unsigned char b[16];
    for (size_t got = 0; got < sizeof b;) {
        ssize_t n = ::getrandom(b + got, sizeof b - got, 0);
        if (n > 0)
            got += static_cast<size_t>(n);
    }
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40); // a random (v4) UUID
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
    char s[37];
    std::snprintf(s, sizeof s,
                  "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
                  b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
                  b[14], b[15]);
    return s;
}

class Certification final : public varlink::Handler {
public:
    Certification()
        : service_({"promiscd", "varlink certification service", "1",
                    "https://github.com/promiscd/promiscd"}) {
        service_.add_interface(interface_name, certification_description);
    }

    void call(const std::shared_ptr<varlink::Connection>& c, varlink::Call call) override {
        if (service_.answer(*c, call))
            return;
        const std::string method = call.method.substr(prefix.size());
        if (method == "Start") {
            start(*c, call);
            return;
        }
        size_t index = 0;
        const auto& steps = sequence();
        while (index < steps.size() && steps[index].method != method)
            ++index;
        if (index == steps.size() && method != "End") {
            varlink::Service::method_not_found(*c, call.method);
            return;
        }
        auto id = call.parameters.find("client_id");
        if (id == call.parameters.end() || !id->is_string()) {
            varlink::Service::invalid_parameter(*c, "client_id");
            return;
        }
        auto client = clients_.find(id->get<std::string>());
        if (client == clients_.end()) {
            say(id->get<std::string>(), method, "unknown client id");
            c->error(prefix + "ClientIdError");
            return;
        }
        json params = call.parameters;
        params.erase("client_id");
        if (method == "End")
            end(*c, client, params);
        else
            test(*c, call, client->first, client->second, index, std::move(params));
    }

    void closed(varlink::Connection&) override {}

private:
    struct Client {
        size_t next = 0; // the index of the step expected next
        bool ok = true;
    };
    using Clients = std::map<std::string, Client>;

    static void say(const std::string& client, const std::string& method, const std::string& what) {
        std::cerr << "certification: client " << client << ": " << method << ": " << what
                  << std::endl;
    }

    void start(varlink::Connection& c, const varlink::Call& call) {
        if (!call.parameters.empty()) {
            varlink::Service::invalid_parameter(c, call.parameters.begin().key());
            return;
        }
        if (clients_.size() >= max_clients) {
            clients_.erase(order_.front());
            order_.pop_front();
        }
        const std::string id = new_client_id();
        clients_[id] = Client{};
        order_.push_back(id);
        say(id, "Start", "ok");
        c.reply({{"client_id", id}});
    }

    // A wrong call is answered with CertificationError (wants, got) and
    // spoils End; the sequence goes on, so that one run shows every fault.
    void test(varlink::Connection& c, const varlink::Call& call, const std::string& id,
              Client& client, size_t index, json params) {
        const auto& steps = sequence();
        const Step& step = steps[index];
        auto refuse = [&](json wants, json got) {
            client.ok = false;
            say(id, step.method, "WRONG: wants " + wants.dump() + ", got " + got.dump());
            c.error(prefix + "CertificationError", {{"wants", wants}, {"got", got}});
        };
        if (index != client.next) {
            const std::string expected =
                client.next < steps.size() ? prefix + steps[client.next].method : prefix + "End";
            refuse({{"method", expected}}, {{"method", call.method}});
            return;
        }
        ++client.next;
        if (call.more != step.more || call.oneway != step.oneway) {
            refuse({{"more", step.more}, {"oneway", step.oneway}},
                   {{"more", call.more}, {"oneway", call.oneway}});
            return;
        }
        if (!matches(step.call, params)) {
            refuse(step.call, params);
            return;
        }
        say(id, step.method, "ok");
        for (size_t i = 0; i < step.replies.size(); ++i)
            c.reply(step.replies[i], i + 1 < step.replies.size());
    }

    void end(varlink::Connection& c, Clients::iterator client, const json& params) {
        const bool all_ok =
            client->second.ok && client->second.next == sequence().size() && params.empty();
        say(client->first, "End", all_ok ? "all ok" : "NOT all ok");
        std::erase(order_, client->first);
        clients_.erase(client);
        c.reply({{"all_ok", all_ok}});
    }

    varlink::Service service_;
    Clients clients_;
    std::deque<std::string> order_;
};

int on_signal(sd_event_source* s, const signalfd_siginfo*, void*) {
    return sd_event_exit(sd_event_source_get_event(s), 0);
}

} // namespace

int main(int argc, char** argv) {
    std::string address;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        if (arg.rfind("--varlink=", 0) == 0)
            address = arg.substr(10);
        else if (arg == "--varlink" && i + 1 < argc)
            address = argv[++i];
        else {
            std::cerr << "unknown argument '" << arg << "'\n";
            return 2;
        }
    }
    // unix:PATH, perhaps with ";mode=..." after it, as varlink addresses go.
    if (address.rfind("unix:", 0) != 0 || address.size() == 5 || address[5] == '@') {
        std::cerr << "usage: " << argv[0] << " --varlink=unix:PATH\n";
        return 2;
    }
    const std::string path = address.substr(5, address.find(';') - 5);

    try {
        log::set_console(true);
        sd_event* raw = nullptr;
        if (int r = sd_event_default(&raw); r < 0)
            throw std::system_error(-r, std::generic_category(), "sd_event_default");
        EventPtr event(raw);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, nullptr);
        sd_event_source* s = nullptr;
        sd_event_add_signal(event.get(), &s, SIGTERM, on_signal, nullptr);
        EventSourcePtr term(s);
        sd_event_add_signal(event.get(), &s, SIGINT, on_signal, nullptr);
        EventSourcePtr intr(s);

        Certification handler;
        varlink::Server server(event.get(), varlink::Server::listen_on(path), handler, {});
        std::cout << "listening on " << address << std::endl;
        int r = sd_event_loop(event.get());
        ::unlink(path.c_str());
        return r < 0 ? 1 : 0;
    } catch (const std::exception& e) {
        std::cerr << "varlink_certification_server: " << e.what() << "\n";
        return 1;
    }
}
