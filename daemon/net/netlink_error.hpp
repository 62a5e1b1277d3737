// The error every rtnetlink adapter throws: a message that names the link or the
// operation, and the errno the kernel (or the socket) gave, for callers that map it.
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>

namespace promiscd::net {

class NetlinkError : public std::runtime_error {
public:
    // errnum is a positive errno; what() is "<context>: <strerror(errnum)>".
    NetlinkError(int errnum, const std::string& context)
        : std::runtime_error(context + ": " + std::strerror(errnum)), errnum_(errnum) {}

    int errnum() const noexcept { return errnum_; }

private:
    int errnum_;
};

} // namespace promiscd::net
