// The D-Bus object tree as a projection of the change stream: a Link object
// per link, a Lease object for every lease whatever created it, a Capture
// object per capture, and the root's signals (Conflict, FlagChanged). Each
// change touches only the objects it names.
#pragma once

#include "bus/bus_frontend.hpp"
#include "event.hpp"
#include "service/capture_service.hpp"
#include "service/changes.hpp"

#include <map>
#include <memory>
#include <sdbus-c++/IConnection.h>
#include <vector>

namespace promiscd::bus {

class BusObjects final : public service::ChangeListener {
public:
    BusObjects(sdbus::IConnection& connection, BusFrontend& frontend, service::LeaseService& leases,
               service::CaptureService* captures);
    ~BusObjects() override;
    BusObjects(const BusObjects&) = delete;
    BusObjects& operator=(const BusObjects&) = delete;

    // From now on objects are announced (InterfacesAdded/Removed); before,
    // while the daemon starts and nobody can know it yet, they are only
    // registered.
    void announce() { announce_ = true; }
    void on_change(const service::Change& change) override;

    size_t objects() const { return links_.size() + leases_.size() + captures_.size(); }

    class LinkObject;
    class LeaseObject;
    class CaptureObject;

private:
    void apply(const service::Change& change);
    void schedule_reap();
    static int on_reap(sd_event_source* s, void* userdata);

    sdbus::IConnection& connection_;
    BusFrontend& frontend_;
    service::LeaseService& service_;
    service::CaptureService* captures_service_;
    bool announce_ = false;
    std::map<int, std::unique_ptr<LinkObject>> links_;
    std::map<core::LeaseId, std::unique_ptr<LeaseObject>> leases_;
    std::map<service::CaptureId, std::unique_ptr<CaptureObject>> captures_;
    // Objects whose lease, link or capture is gone are unregistered from a
    // deferred event source: a lease may end inside its own method call, and
    // sd-bus must not lose the object it is dispatching to.
    std::vector<std::unique_ptr<LinkObject>> doomed_links_;
    std::vector<std::unique_ptr<LeaseObject>> doomed_leases_;
    std::vector<std::unique_ptr<CaptureObject>> doomed_captures_;
    EventSourcePtr reaper_;
};

} // namespace promiscd::bus
