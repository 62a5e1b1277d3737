// The sequence of org.varlink.certification as data, for this suite's server
// and client alike: the reply each step gives (a step is called with what the
// previous one returned), and a comparison that knows varlink's types.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace promiscd::certification {

using nlohmann::json;

inline const std::string interface_name = "org.varlink.certification";

struct Step {
    std::string method;        // e.g. "Test05", without the interface
    json call;                 // its parameters, client_id left out
    std::vector<json> replies; // several for Test10 ("continues" on all but the last)
    bool more = false;         // the call must carry "more"
    bool oneway = false;       // ... or "oneway" (its reply is never sent)
};

// Test01 to Test11, in order.
const std::vector<Step>& sequence();

// Whether `got` is what `wants` describes, by varlink's types: an int must be
// an integer, a float may be written either way, strings, bools and enums are
// exact, objects have the same fields (a null one in `wants` is a nullable
// field that may also be absent), arrays the same elements in order.
bool matches(const json& wants, const json& got);

} // namespace promiscd::certification
