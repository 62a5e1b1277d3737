#include "certification.hpp"

#include <numbers>

namespace promiscd::certification {

namespace {

json test09_mytype() {
    return {
        {"object",
         {{"method", "org.varlink.certification.Test09"},
          {"parameters", {{"map", {{"foo", "Foo"}, {"bar", "Bar"}}}}}}},
        {"enum", "two"},
        {"struct", {{"first", 1}, {"second", "2"}}},
        {"array", {"one", "two", "three"}},
        {"dictionary", {{"foo", "Foo"}, {"bar", "Bar"}}},
        {"stringset",
         {{"one", json::object()}, {"two", json::object()}, {"three", json::object()}}},
        {"nullable", nullptr},
        {"nullable_array_struct", nullptr},
        {"interface",
         {{"foo",
           {nullptr, {{"Foo", "foo"}, {"Bar", "bar"}}, nullptr, {{"one", "foo"}, {"two", "bar"}}}},
          {"anon", {{"foo", true}, {"bar", false}}}}},
    };
}

Step step(std::string method, json reply) {
    Step s;
    s.method = std::move(method);
    s.replies.push_back(std::move(reply));
    return s;
}

std::vector<Step> build() {
    const json four = {
        {"bool", false}, {"int", 2}, {"float", std::numbers::pi}, {"string", "a lot of string"}};
    const json set = {{"one", json::object()}, {"two", json::object()}, {"three", json::object()}};
    std::vector<Step> s;
    s.push_back(step("Test01", {{"bool", true}}));
    s.push_back(step("Test02", {{"int", 1}}));
    s.push_back(step("Test03", {{"float", 1.0}}));
    s.push_back(step("Test04", {{"string", "ping"}}));
    s.push_back(step("Test05", four));
    s.push_back(step("Test06", {{"struct", four}}));
    s.push_back(step("Test07", {{"map", {{"foo", "Foo"}, {"bar", "Bar"}}}}));
    s.push_back(step("Test08", {{"set", set}}));
    s.push_back(step("Test09", {{"mytype", test09_mytype()}}));

    Step ten;
    ten.method = "Test10";
    ten.more = true;
    json strings = json::array();
    for (int i = 1; i <= 10; ++i) {
        strings.push_back("Reply number " + std::to_string(i));
        ten.replies.push_back({{"string", strings.back()}});
    }
    s.push_back(std::move(ten));

    Step eleven = step("Test11", json::object());
    eleven.oneway = true;
    eleven.call = {{"last_more_replies", strings}};
    s.push_back(std::move(eleven));

    // Each call carries what the step before it returned.
    s[0].call = json::object();
    for (size_t i = 1; i < 10; ++i)
        s[i].call = s[i - 1].replies.front();
    return s;
}

} // namespace

const std::vector<Step>& sequence() {
    static const std::vector<Step> steps = build();
    return steps;
}

bool matches(const json& wants, const json& got) {
    switch (wants.type()) {
    case json::value_t::null:
        return got.is_null();
    case json::value_t::boolean:
    case json::value_t::string:
        return got.type() == wants.type() && got == wants;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
        return got.is_number_integer() && got == wants;
    case json::value_t::number_float:
        return got.is_number() && got.get<double>() == wants.get<double>();
    case json::value_t::array:
        if (!got.is_array() || got.size() != wants.size())
            return false;
        for (size_t i = 0; i < wants.size(); ++i)
            if (!matches(wants[i], got[i]))
                return false;
        return true;
    case json::value_t::object:
        if (!got.is_object())
            return false;
        for (const auto& [key, value] : wants.items()) {
            auto it = got.find(key);
            if (it == got.end() ? !value.is_null() : !matches(value, *it))
                return false;
        }
        for (const auto& [key, value] : got.items())
            if (!wants.contains(key))
                return false;
        return true;
    default:
        return false;
    }
}

} // namespace promiscd::certification
