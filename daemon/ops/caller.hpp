// Who is asking, as every transport describes it to the operations layer:
// identified by the transport (the bus driver, SO_PEERCRED), never by
// anything the client sent.
#pragma once

#include "auth/authorizer.hpp"
#include "core/arbiter.hpp"

#include <string>
#include <sys/types.h>
#include <vector>

namespace promiscd::ops {

struct Caller {
    std::string transport; // "dbus" or "varlink"
    std::string id;        // the D-Bus unique name, or the varlink connection number
    uint32_t uid = 0;
    uint32_t pid = 0;
    std::string command; // /proc/PID/comm, for display only
    auth::Subject subject;
    bool interactive = false;  // the caller allows interactive authorization
    std::vector<gid_t> groups; // when the transport tells (varlink)

    core::Owner owner() const { return {transport, id, uid, pid, command}; }
    bool owns(const core::Owner& o) const { return o.transport == transport && o.id == id; }
    auth::Caller for_auth() const {
        auth::Caller c;
        c.subject = subject;
        c.uid = uid;
        c.pid = pid;
        c.command = command;
        c.interactive = interactive;
        c.groups = groups;
        return c;
    }
};

} // namespace promiscd::ops
