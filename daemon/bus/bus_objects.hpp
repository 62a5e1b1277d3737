// The D-Bus object tree as a projection of the change stream: a Link object
// per link, a Lease object for every lease whatever created it, a Capture
// object per capture, and the root's signals (Conflict, FlagChanged).
//
// The objects are sd-bus fallback vtables with node enumerators, as systemd's
// own daemons serve their units, sessions and links: one registration per
// kind, not one per object, so a change costs one signal and no
// registration, and 10,000 leases cost what their records do. Their
// interfaces are the XML contract's (a test compares the introspection).
#pragma once

#include "bus/bus_frontend.hpp"
#include "event.hpp"
#include "service/capture_service.hpp"
#include "service/changes.hpp"

#include <systemd/sd-bus.h>
#include <unordered_map>

namespace promiscd::bus {

class BusObjects final : public service::ChangeListener {
public:
    // max_queued: messages the bus connection may hold unsent (dbus-daemon
    // stopped or hung) before further signals are dropped, counted and logged
    // rather than queued without end (sd-bus would hold 384k); method replies
    // are never dropped. Configuration: dbus.max_queued_messages.
    BusObjects(sd_bus* bus, BusFrontend& frontend, service::LeaseService& leases,
               service::CaptureService* captures, uint64_t max_queued);
    ~BusObjects() override;
    BusObjects(const BusObjects&) = delete;
    BusObjects& operator=(const BusObjects&) = delete;

    // From now on objects are announced (InterfacesAdded/Removed); before,
    // while the daemon starts and nobody can know it yet, they only exist.
    void announce() { announce_ = true; }
    void on_change(const service::Change& change) override;

    size_t objects() const { return links_.size() + leases_.size() + captures_.size(); }
    size_t link_objects() const { return links_.size(); }
    size_t lease_objects() const { return leases_.size(); }

    // What each object serves (public for the vtables' callbacks).
    struct LinkObj {
        core::LinkView v;
        std::string netns; // as the first client named its namespace; empty: promiscd's own
    };
    struct LeaseObj {
        core::Lease l;
        BusObjects* self;
    };
    struct CaptureObj {
        service::CaptureInfo c;
        BusObjects* self;
    };
    BusFrontend& frontend() { return frontend_; }
    service::LeaseService& leases() { return service_; }
    service::CaptureService* captures() { return captures_service_; }

private:
    void apply(const service::Change& change);
    // Whether this change's signals must be dropped: the bus is not reading.
    bool congested();
    static int find_link(sd_bus*, const char* path, const char*, void* userdata, void** found,
                         sd_bus_error*);
    static int find_lease(sd_bus*, const char* path, const char*, void* userdata, void** found,
                          sd_bus_error*);
    static int find_capture(sd_bus*, const char* path, const char*, void* userdata, void** found,
                            sd_bus_error*);
    static int list_links(sd_bus*, const char* prefix, void* userdata, char*** nodes,
                          sd_bus_error*);
    static int list_leases(sd_bus*, const char* prefix, void* userdata, char*** nodes,
                           sd_bus_error*);
    static int list_captures(sd_bus*, const char* prefix, void* userdata, char*** nodes,
                             sd_bus_error*);

    sd_bus* bus_;
    BusFrontend& frontend_;
    service::LeaseService& service_;
    service::CaptureService* captures_service_;
    bool announce_ = false;
    uint64_t max_queued_;
    bool congested_ = false;
    uint64_t dropped_ = 0; // changes unannounced in this congestion
    std::unordered_map<int, LinkObj> links_;
    std::unordered_map<core::LeaseId, LeaseObj> leases_;
    std::unordered_map<service::CaptureId, CaptureObj> captures_;
    std::vector<sd_bus_slot*> slots_;
};

} // namespace promiscd::bus
