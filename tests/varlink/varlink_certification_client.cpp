// The client side of org.varlink.certification, on promiscd's own varlink
// client (client::VarlinkClient, what promiscctl and libpromisc use): Start,
// Test01 to Test11 (each called with what the previous step returned; Test10
// with "more", Test11 "oneway"), End; every reply checked against the
// sequence. Then the errors a service sends, with their parameters.
//   varlink_certification_client --varlink=unix:PATH
// Exits 0 only when End said all_ok and nothing else went wrong.
#include "certification.hpp"
#include "client/varlink_client.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <string>

namespace {

using namespace promiscd;
using namespace promiscd::certification;
using nlohmann::json;

const std::string prefix = interface_name + ".";
int failures = 0;

void fail(const std::string& what) {
    ++failures;
    std::cout << "FAILED: " << what << std::endl;
}

// The error a call must end with; returns its parameters (null when the call
// did not fail with that error).
json expect_error(client::VarlinkClient& c, const std::string& method, const json& params,
                  const std::string& error) {
    try {
        auto r = c.call(method, params);
        fail(method + " " + params.dump() + ": wanted " + error + ", got a reply " + r.dump());
    } catch (const client::VarlinkError& e) {
        if (e.name() == error) {
            std::cout << method << ": " << e.name() << " " << e.parameters().dump() << std::endl;
            return e.parameters();
        }
        fail(method + " " + params.dump() + ": wanted " + error + ", got " + e.name() + " " +
             e.parameters().dump());
    }
    return nullptr;
}

bool run_sequence(client::VarlinkClient& c) {
    const std::string id = c.call(prefix + "Start").at("client_id").get<std::string>();
    std::cout << "Start: '" << id << "'" << std::endl;

    json previous = json::object(); // what the last step returned: the next one's parameters
    for (const Step& step : sequence()) {
        json params = previous;
        params["client_id"] = id;
        if (step.oneway) {
            c.call_oneway(prefix + step.method, params);
            std::cout << step.method << ": sent oneway" << std::endl;
            continue;
        }
        std::vector<json> replies;
        if (step.more) {
            c.call_more(prefix + step.method, params);
            for (;;) {
                auto r = c.wait(std::chrono::seconds(30));
                if (!r.error.empty())
                    client::VarlinkClient::raise(r);
                replies.push_back(r.parameters);
                if (!r.continues)
                    break;
                if (replies.size() > step.replies.size()) {
                    fail(step.method + ": more than " + std::to_string(step.replies.size()) +
                         " replies");
                    return false;
                }
            }
        } else {
            replies.push_back(c.call(prefix + step.method, params));
        }
        std::cout << step.method << ": " << json(replies).dump() << std::endl;
        if (replies.size() != step.replies.size())
            fail(step.method + ": " + std::to_string(replies.size()) + " replies, wanted " +
                 std::to_string(step.replies.size()));
        for (size_t i = 0; i < replies.size() && i < step.replies.size(); ++i)
            if (!matches(step.replies[i], replies[i]))
                fail(step.method + ": reply " + replies[i].dump() + ", wanted " +
                     step.replies[i].dump());
        if (step.more) {
            json strings = json::array();
            for (const auto& r : replies)
                strings.push_back(r.value("string", ""));
            previous = {{"last_more_replies", strings}};
        } else {
            previous = replies.front();
        }
    }
    const bool all_ok = c.call(prefix + "End", {{"client_id", id}}).at("all_ok").get<bool>();
    std::cout << "End: all_ok " << (all_ok ? "true" : "false") << std::endl;
    return all_ok;
}

// Errors with parameters, as the client layer hands them to its callers.
void check_errors(client::VarlinkClient& c) {
    expect_error(c, prefix + "Test01", {{"client_id", "not-a-client-id"}},
                 prefix + "ClientIdError");

    // A second client that answers Test02 wrongly.
    const std::string id = c.call(prefix + "Start").at("client_id").get<std::string>();
    c.call(prefix + "Test01", {{"client_id", id}});
    json p = expect_error(c, prefix + "Test02", {{"client_id", id}, {"bool", false}},
                          prefix + "CertificationError");
    if (!p.is_null() && !(p.is_object() && p.contains("wants") && p.contains("got")))
        fail("CertificationError without wants and got: " + p.dump());

    // A oneway call is never answered, not even when the service cannot make
    // sense of it: the next reply read belongs to the next call.
    c.call_oneway(prefix + "Test01", 5);
    json info = json::object();
    try {
        info = c.call("org.varlink.service.GetInfo");
    } catch (const client::VarlinkError& e) {
        fail("GetInfo after a oneway call with parameters 5: " + e.name() + " " +
             e.parameters().dump() + " (the oneway call was answered)");
    }
    std::cout << "GetInfo: " << info.dump() << std::endl;
    auto interfaces = info.value("interfaces", json::array());
    for (const char* want : {"org.varlink.service", "org.varlink.certification"})
        if (std::find(interfaces.begin(), interfaces.end(), want) == interfaces.end())
            fail(std::string("GetInfo does not list ") + want);

    auto description =
        c.call("org.varlink.service.GetInterfaceDescription", {{"interface", interface_name}})
            .value("description", "");
    if (description.find("interface org.varlink.certification") == std::string::npos ||
        description.find("method Test11(") == std::string::npos)
        fail("GetInterfaceDescription: not the certification interface: " + description);

    // Which of the two a service sends for an interface it does not have is
    // not fixed by the specification; either must name what was wrong.
    try {
        c.call("org.varlink.service.GetInterfaceDescription", {{"interface", "org.example.nope"}});
        fail("GetInterfaceDescription of org.example.nope succeeded");
    } catch (const client::VarlinkError& e) {
        std::cout << "GetInterfaceDescription(org.example.nope): " << e.name() << " "
                  << e.parameters().dump() << std::endl;
        const bool named = (e.name() == "org.varlink.service.InterfaceNotFound" &&
                            e.parameters().value("interface", "") == "org.example.nope") ||
                           (e.name() == "org.varlink.service.InvalidParameter" &&
                            e.parameters().value("parameter", "") == "interface");
        if (!named)
            fail("GetInterfaceDescription(org.example.nope): " + e.name() + " " +
                 e.parameters().dump());
    }

    json m =
        expect_error(c, prefix + "Nope", {{"client_id", id}}, "org.varlink.service.MethodNotFound");
    if (!m.is_null() && !m.value("method", "").ends_with("Nope"))
        fail("MethodNotFound does not name the method: " + m.dump());
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
    if (address.rfind("unix:", 0) != 0 || address.size() == 5) {
        std::cerr << "usage: " << argv[0] << " --varlink=unix:PATH\n";
        return 2;
    }
    const std::string path = address.substr(5, address.find(';') - 5);
    try {
        client::VarlinkClient c(path);
        if (!run_sequence(c))
            fail("End did not say all_ok");
        check_errors(c);
    } catch (const client::Error& e) {
        fail(std::string("unexpected error ") + e.name() + ": " + e.what());
    } catch (const std::exception& e) {
        fail(e.what());
    }
    std::cout << (failures == 0 ? "PASS" : "FAIL") << std::endl;
    return failures == 0 ? 0 : 1;
}
