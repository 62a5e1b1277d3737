// org.varlink.service, which every varlink service answers: what the service
// is, which interfaces it implements and their descriptions, and the
// protocol's own errors for calls nobody here can answer. promiscd and the
// certification test service share it, so the suite tests what the daemon says.
#pragma once

#include "varlink/varlink_server.hpp"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace promiscd::varlink {

inline constexpr std::string_view service_interface = "org.varlink.service";

struct ServiceInfo {
    std::string vendor;
    std::string product;
    std::string version;
    std::string url;
};

class Service {
public:
    explicit Service(ServiceInfo info);

    // An interface this service implements, with its description (the IDL
    // text GetInterfaceDescription returns). GetInfo lists them in this order,
    // after org.varlink.service.
    void add_interface(std::string name, std::string description);

    // Answers the call when it is org.varlink.service's, is not a method name
    // at all, or names an interface this service does not implement; returns
    // false, answering nothing, for a call of one of add_interface()'s.
    bool answer(Connection& c, const Call& call) const;

    // The protocol's errors, with the parameters the specification gives them.
    static void method_not_found(Connection& c, const std::string& method);
    static void invalid_parameter(Connection& c, const std::string& parameter);
    static void expected_more(Connection& c);

    // org.varlink.service's own description.
    static const char* description();

private:
    ServiceInfo info_;
    std::vector<std::pair<std::string, std::string>> interfaces_;
};

} // namespace promiscd::varlink
