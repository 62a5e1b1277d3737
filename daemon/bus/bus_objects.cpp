#include "bus/bus_objects.hpp"

#include "core/names.hpp"
#include "log.hpp"
#include "promisc1_adaptor.h"

#include <sdbus-c++/sdbus-c++.h>

namespace promiscd::bus {

using namespace core;
namespace gen = ::org::promiscd::Promisc1;

namespace {

// An object of the tree: registered for its life, announced to the
// ObjectManager's watchers once the daemon announces anything. The most
// derived constructor calls publish() last (InterfacesAdded reads the
// properties, which are its virtual functions).
template <typename Adaptor>
class Published : public sdbus::AdaptorInterfaces<Adaptor, sdbus::ManagedObject_adaptor> {
public:
    Published(sdbus::IConnection& c, std::string path, const bool& announce)
        : sdbus::AdaptorInterfaces<Adaptor, sdbus::ManagedObject_adaptor>(c, std::move(path)),
          announce_(announce) {}
    Published(const Published&) = delete;
    Published& operator=(const Published&) = delete;

protected:
    ~Published() {
        if (announce_) {
            try {
                this->emitInterfacesRemovedSignal({Adaptor::INTERFACE_NAME});
            } catch (const sdbus::Error&) {
                // The bus is gone; nobody to tell.
            }
        }
        this->unregisterAdaptor();
    }

    void publish() {
        this->registerAdaptor();
        if (announce_)
            this->emitInterfacesAddedSignal({Adaptor::INTERFACE_NAME});
    }
    void changed(const std::vector<std::string>& names) {
        if (!names.empty())
            this->getObject().emitPropertiesChangedSignal(Adaptor::INTERFACE_NAME, names);
    }

private:
    const bool& announce_;
};

} // namespace

class BusObjects::LinkObject final : public Published<gen::Link_adaptor> {
public:
    LinkObject(sdbus::IConnection& c, const LinkView& v, const bool& announce)
        : Published(c, link_path(v.info.ifindex), announce), v_(v) {
        publish();
    }

    int index() const { return v_.info.ifindex; }
    void update(const LinkView& v) {
        std::vector<std::string> names;
        if (v.info.name != v_.info.name) {
            names.emplace_back("Name");
            names.emplace_back("NameBytes");
        }
        if (v.info.admin_flag != v_.info.admin_flag)
            names.emplace_back("AdminFlag");
        if (v.info.promiscuity != v_.info.promiscuity)
            names.emplace_back("Promiscuity");
        if ((v.info.promiscuity > 0) != (v_.info.promiscuity > 0))
            names.emplace_back("Promiscuous");
        if (v.origin != v_.origin)
            names.emplace_back("Origin");
        if (v.leases != v_.leases)
            names.emplace_back("Leases");
        if (v.policy != v_.policy)
            names.emplace_back("Policy");
        if (v.external_changes != v_.external_changes)
            names.emplace_back("ExternalChanges");
        v_ = v;
        changed(names);
    }

private:
    std::string Name() override { return display_name(v_.info.name); }
    std::vector<uint8_t> NameBytes() override {
        return std::vector<uint8_t>(v_.info.name.begin(), v_.info.name.end());
    }
    int32_t Index() override { return v_.info.ifindex; }
    bool AdminFlag() override { return v_.info.admin_flag; }
    uint32_t Promiscuity() override { return v_.info.promiscuity; }
    bool Promiscuous() override { return v_.info.promiscuity > 0; }
    std::string Origin() override { return std::string(to_string(v_.origin)); }
    uint32_t Leases() override { return v_.leases; }
    std::string Policy() override { return std::string(to_string(v_.policy)); }
    uint64_t ExternalChanges() override { return v_.external_changes; }

    LinkView v_;
};

class BusObjects::LeaseObject final : public Published<gen::Lease_adaptor> {
public:
    LeaseObject(sdbus::IConnection& c, BusFrontend& fe, service::LeaseService& service,
                const Lease& l, const bool& announce)
        : Published(c, lease_path(l.id), announce), fe_(fe), service_(service), lease_(l) {
        publish();
    }

    void update(const Lease& l) {
        std::vector<std::string> names;
        if (l.state != lease_.state)
            names.emplace_back("State");
        if (l.expires != lease_.expires)
            names.emplace_back("Expires");
        lease_ = l;
        changed(names);
    }
    void ended(EndReason r, const std::optional<Revocation>& by) {
        std::map<std::string, sdbus::Variant> details;
        if (by) {
            details.emplace("revoked_by", sdbus::Variant(display_name(by->by)));
            details.emplace("revoked_by_uid", sdbus::Variant(by->by_uid));
            details.emplace("message", sdbus::Variant(display_name(by->message)));
        }
        emitEnded(std::string(to_string(r)), details);
    }

private:
    const sdbus::Message& message() { return *getObject().getCurrentlyProcessedMessage(); }
    void Release(sdbus::Result<>&& result) override {
        fe_.lease_release(message(), lease_.id,
                          std::make_shared<sdbus::Result<>>(std::move(result)));
    }
    void Renew(sdbus::Result<>&& result, uint64_t ttl) override {
        fe_.lease_renew(message(), lease_.id, ttl,
                        std::make_shared<sdbus::Result<>>(std::move(result)));
    }
    std::string Interface() override { return display_name(lease_.interface); }
    std::string State() override { return std::string(to_string(lease_.state)); }
    std::string Owner() override { return label(lease_.owner); }
    uint32_t Uid() override { return lease_.owner.uid; }
    uint32_t Pid() override { return lease_.owner.pid; }
    std::string Reason() override { return lease_.reason; }
    uint64_t Acquired() override { return service_.realtime(lease_.acquired); }
    uint64_t Expires() override { return lease_.expires ? service_.realtime(*lease_.expires) : 0; }

    BusFrontend& fe_;
    service::LeaseService& service_;
    Lease lease_;
};

class BusObjects::CaptureObject final : public Published<gen::Capture_adaptor> {
public:
    CaptureObject(sdbus::IConnection& c, BusFrontend& fe, service::CaptureService* captures,
                  const service::CaptureInfo& info, const bool& announce)
        : Published(c, capture_path(info.id), announce), fe_(fe), captures_(captures), info_(info) {
        publish();
    }

    void counters_changed(const capture::RelayCounters& c) {
        std::vector<std::string> names;
        if (c.packets != info_.counters.packets)
            names.emplace_back("Packets");
        if (c.bytes != info_.counters.bytes)
            names.emplace_back("Bytes");
        if (c.drops != info_.counters.drops)
            names.emplace_back("Drops");
        info_.counters = c;
        changed(names);
    }
    void finished(capture::FinishReason r) { emitFinished(std::string(capture::to_string(r))); }

private:
    void Stop(sdbus::Result<>&& result) override {
        fe_.capture_stop(*getObject().getCurrentlyProcessedMessage(), info_.id,
                         std::make_shared<sdbus::Result<>>(std::move(result)));
    }
    // Counters are read when asked, so a Get is never behind the signals.
    capture::RelayCounters live() {
        if (auto c = captures_ ? captures_->counters(info_.id) : std::nullopt)
            return *c;
        return info_.counters;
    }
    std::string Interface() override { return display_name(info_.interface); }
    std::string Filter() override { return info_.filter; }
    std::string Format() override { return std::string(service::to_string(info_.format)); }
    uint64_t Packets() override { return live().packets; }
    uint64_t Bytes() override { return live().bytes; }
    uint64_t Drops() override { return live().drops; }

    BusFrontend& fe_;
    service::CaptureService* captures_;
    service::CaptureInfo info_;
};

// ---------------------------------------------------------------- projection

BusObjects::BusObjects(sdbus::IConnection& connection, BusFrontend& frontend,
                       service::LeaseService& leases, service::CaptureService* captures)
    : connection_(connection), frontend_(frontend), service_(leases), captures_service_(captures) {
    service_.changes().subscribe(this);
}

BusObjects::~BusObjects() {
    service_.changes().unsubscribe(this);
    announce_ = false; // the daemon is going: nobody is told any more
    reaper_.reset();
    doomed_captures_.clear();
    doomed_leases_.clear();
    doomed_links_.clear();
    captures_.clear();
    leases_.clear();
    links_.clear();
}

void BusObjects::on_change(const service::Change& change) {
    // A failing emit (the bus went away) must not stop the rest.
    try {
        apply(change);
    } catch (const sdbus::Error& e) {
        log::warning("cannot publish a change on the bus: " + e.getMessage());
    } catch (const std::exception& e) {
        log::warning(std::string("cannot publish a change on the bus: ") + e.what());
    }
}

void BusObjects::apply(const service::Change& change) {
    using namespace service;
    // A link index the kernel gave out again while the old object waits to
    // be reaped: the old one goes first (links have no methods to be inside).
    auto free_path = [this](int ifindex) {
        std::erase_if(doomed_links_, [&](const auto& l) { return l->index() == ifindex; });
    };
    if (const auto* a = std::get_if<LinkAdded>(&change)) {
        free_path(a->link.info.ifindex);
        auto& slot = links_[a->link.info.ifindex];
        if (slot)
            slot->update(a->link);
        else
            slot = std::make_unique<LinkObject>(connection_, a->link, announce_);
    } else if (const auto* c = std::get_if<LinkChanged>(&change)) {
        if (auto it = links_.find(c->link.info.ifindex); it != links_.end()) {
            it->second->update(c->link);
        } else {
            free_path(c->link.info.ifindex);
            links_.emplace(c->link.info.ifindex,
                           std::make_unique<LinkObject>(connection_, c->link, announce_));
        }
    } else if (const auto* r = std::get_if<LinkRemoved>(&change)) {
        if (auto it = links_.find(r->ifindex); it != links_.end()) {
            doomed_links_.push_back(std::move(it->second));
            links_.erase(it);
            schedule_reap();
        }
    } else if (const auto* la = std::get_if<LeaseAdded>(&change)) {
        if (!leases_.count(la->lease.id))
            leases_.emplace(la->lease.id,
                            std::make_unique<LeaseObject>(connection_, frontend_, service_,
                                                          la->lease, announce_));
    } else if (const auto* lc = std::get_if<LeaseChanged>(&change)) {
        if (auto it = leases_.find(lc->lease.id); it != leases_.end())
            it->second->update(lc->lease);
    } else if (const auto* le = std::get_if<service::LeaseEnded>(&change)) {
        if (auto it = leases_.find(le->lease.id); it != leases_.end()) {
            it->second->ended(le->reason, le->revocation);
            doomed_leases_.push_back(std::move(it->second));
            leases_.erase(it);
            schedule_reap();
        }
    } else if (const auto* f = std::get_if<FlagChanged>(&change)) {
        frontend_.emit_flag_changed(display_name(f->name), f->on,
                                    f->by_daemon ? "promiscd" : "another agent");
    } else if (const auto* k = std::get_if<Conflict>(&change)) {
        frontend_.emit_conflict(display_name(k->name), k->clears);
    } else if (const auto* cs = std::get_if<CaptureStarted>(&change)) {
        captures_.emplace(cs->capture.id,
                          std::make_unique<CaptureObject>(connection_, frontend_, captures_service_,
                                                          cs->capture, announce_));
    } else if (const auto* cc = std::get_if<CaptureCounters>(&change)) {
        if (auto it = captures_.find(cc->capture.id); it != captures_.end())
            it->second->counters_changed(cc->capture.counters);
    } else if (const auto* cf = std::get_if<CaptureFinished>(&change)) {
        if (auto it = captures_.find(cf->capture.id); it != captures_.end()) {
            it->second->counters_changed(cf->capture.counters);
            it->second->finished(cf->reason);
            // Finished first, InterfacesRemoved when the object is reaped: a
            // capture may end inside its own Stop().
            doomed_captures_.push_back(std::move(it->second));
            captures_.erase(it);
            schedule_reap();
        }
    }
}

void BusObjects::schedule_reap() {
    if (!reaper_) {
        sd_event_source* s = nullptr;
        if (sd_event_add_defer(service_.event(), &s, &BusObjects::on_reap, this) < 0)
            return; // cannot defer: unregistered with the projection instead
        reaper_.reset(s);
        sd_event_source_set_description(s, "bus-object-reaper");
    }
    sd_event_source_set_enabled(reaper_.get(), SD_EVENT_ONESHOT);
}

int BusObjects::on_reap(sd_event_source*, void* userdata) {
    auto* self = static_cast<BusObjects*>(userdata);
    self->doomed_captures_.clear();
    self->doomed_leases_.clear();
    self->doomed_links_.clear();
    return 0;
}

} // namespace promiscd::bus
