#include "varlink_service.hpp"

namespace promiscd::varlink {

namespace {

// The members the varlink specification gives org.varlink.service, in this
// project's words.
constexpr const char service_description[] =
    R"(# What every varlink service answers: what the service is, and the
# descriptions of the interfaces it implements.
interface org.varlink.service

# The service's vendor, product, version and home page, and its interfaces.
method GetInfo() -> (
  vendor: string,
  product: string,
  version: string,
  url: string,
  interfaces: []string
)

# The interface description (this text, for org.varlink.service).
method GetInterfaceDescription(interface: string) -> (description: string)

# The service does not implement this interface.
error InterfaceNotFound (interface: string)

# The interface has no method of this name.
error MethodNotFound (method: string)

# The interface has this method, but the service does not implement it.
error MethodNotImplemented (method: string)

# A parameter is missing, unknown or of the wrong type.
error InvalidParameter (parameter: string)

# The caller may not call this method.
error PermissionDenied ()

# The method sends more than one reply: it must be called with "more".
error ExpectedMore ()
)";

std::string error_name(std::string_view member) {
    return std::string(service_interface) + "." + std::string(member);
}

} // namespace

Service::Service(ServiceInfo info) : info_(std::move(info)) {}

void Service::add_interface(std::string name, std::string description) {
    interfaces_.emplace_back(std::move(name), std::move(description));
}

const char* Service::description() {
    return service_description;
}

void Service::method_not_found(Connection& c, const std::string& method) {
    c.error(error_name("MethodNotFound"), {{"method", method}});
}

void Service::invalid_parameter(Connection& c, const std::string& parameter) {
    c.error(error_name("InvalidParameter"), {{"parameter", parameter}});
}

void Service::expected_more(Connection& c) {
    c.error(error_name("ExpectedMore"));
}

bool Service::answer(Connection& c, const Call& call) const {
    const std::string& m = call.method;
    const auto dot = m.rfind('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == m.size()) {
        // Not "interface.Method": nothing to look up.
        invalid_parameter(c, "method");
        return true;
    }
    const std::string interface = m.substr(0, dot);
    const std::string member = m.substr(dot + 1);
    if (interface != service_interface) {
        for (const auto& [name, text] : interfaces_)
            if (name == interface)
                return false;
        c.error(error_name("InterfaceNotFound"), {{"interface", interface}});
        return true;
    }

    if (member == "GetInfo") {
        if (!call.parameters.empty()) {
            invalid_parameter(c, call.parameters.begin().key());
            return true;
        }
        json names = json::array({service_interface});
        for (const auto& [name, text] : interfaces_)
            names.push_back(name);
        c.reply({{"vendor", info_.vendor},
                 {"product", info_.product},
                 {"version", info_.version},
                 {"url", info_.url},
                 {"interfaces", std::move(names)}});
    } else if (member == "GetInterfaceDescription") {
        for (const auto& [key, value] : call.parameters.items()) {
            if (key != "interface" || !value.is_string()) {
                invalid_parameter(c, key);
                return true;
            }
        }
        auto it = call.parameters.find("interface");
        if (it == call.parameters.end()) {
            invalid_parameter(c, "interface");
            return true;
        }
        const auto& wanted = it->get_ref<const std::string&>();
        if (wanted == service_interface) {
            c.reply({{"description", service_description}});
            return true;
        }
        for (const auto& [name, text] : interfaces_) {
            if (name == wanted) {
                c.reply({{"description", text}});
                return true;
            }
        }
        c.error(error_name("InterfaceNotFound"), {{"interface", wanted}});
    } else {
        method_not_found(c, m);
    }
    return true;
}

} // namespace promiscd::varlink
