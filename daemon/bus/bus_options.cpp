#include "bus/bus_options.hpp"

namespace promiscd::bus {

ops::Options options_from(const std::map<std::string, sdbus::Variant>& options) {
    ops::Options out;
    for (const auto& [key, v] : options) {
        const std::string t = v.peekValueType();
        ops::Value value;
        if (t == "s")
            value = ops::Value::string(v.get<std::string>());
        else if (t == "b")
            value = ops::Value::boolean(v.get<bool>());
        else if (t == "y")
            value = ops::Value::unsigned_(v.get<uint8_t>());
        else if (t == "q")
            value = ops::Value::unsigned_(v.get<uint16_t>());
        else if (t == "u")
            value = ops::Value::unsigned_(v.get<uint32_t>());
        else if (t == "t")
            value = ops::Value::unsigned_(v.get<uint64_t>());
        else if (t == "n")
            value = ops::Value::signed_(v.get<int16_t>());
        else if (t == "i")
            value = ops::Value::signed_(v.get<int32_t>());
        else if (t == "x")
            value = ops::Value::signed_(v.get<int64_t>());
        else
            value = ops::Value::other("D-Bus type '" + t + "'");
        out.emplace(key, std::move(value));
    }
    return out;
}

} // namespace promiscd::bus
