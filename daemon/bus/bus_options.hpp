// The a{sv} options of AcquireLease and OpenCapture as the operations layer
// reads them (ops/requests.hpp checks and decodes them). Apart from the front
// end so that it can be tested and fuzzed without a bus.
#pragma once

#include "ops/requests.hpp"

#include <map>
#include <sdbus-c++/Types.h>
#include <string>

namespace promiscd::bus {

// Every D-Bus type is kept, the unexpected ones by name, so that the message
// about a wrong type says what was sent.
ops::Options options_from(const std::map<std::string, sdbus::Variant>& options);

} // namespace promiscd::bus
