#include "bus/bus_objects.hpp"

#include "config.h"
#include "core/names.hpp"
#include "log.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace promiscd::bus {

using namespace core;
using Obj = BusObjects;

namespace {

const std::string root = PROMISCD_OBJECT_PATH;
const std::string link_prefix = root + "/link";
const std::string lease_prefix = root + "/lease";
const std::string capture_prefix = root + "/capture";
const std::string link_iface = std::string(PROMISCD_BUS_NAME) + ".Link";
const std::string lease_iface = std::string(PROMISCD_BUS_NAME) + ".Lease";
const std::string capture_iface = std::string(PROMISCD_BUS_NAME) + ".Capture";

// The number after `prefix`/ in path, if that is all there is.
bool id_of(const char* path, const std::string& prefix, uint64_t& id) {
    const size_t n = prefix.size();
    if (std::strncmp(path, prefix.c_str(), n) != 0 || path[n] != '/' || !path[n + 1])
        return false;
    id = 0;
    const char* p = path + n + 1;
    for (int digits = 0; *p; ++p, ++digits) {
        if (*p < '0' || *p > '9' || digits == 19)
            return false;
        id = id * 10 + static_cast<uint64_t>(*p - '0');
    }
    return true;
}

template <typename Map>
int list(const std::string& prefix, const Map& map, char*** nodes) {
    char** v = static_cast<char**>(std::calloc(map.size() + 1, sizeof(char*)));
    if (!v)
        return -ENOMEM;
    size_t i = 0;
    for (const auto& [id, obj] : map) {
        std::string path = prefix + "/" + std::to_string(id);
        v[i] = strdup(path.c_str());
        if (!v[i]) {
            for (size_t k = 0; k < i; ++k)
                std::free(v[k]);
            std::free(v);
            return -ENOMEM;
        }
        ++i;
    }
    *nodes = v;
    return 0;
}

// Each property once: how its value is appended. The vtables' getters and
// the signals that carry values (PropertiesChanged, InterfacesAdded) use the
// same appenders; building those signals here, rather than with
// sd_bus_emit_*(), costs a fraction (sd-bus would walk the vtables and call
// every getter through the object lookup).
template <typename O>
using Append = int (*)(sd_bus_message*, const O&);
template <typename O>
struct Prop {
    const char* name;
    const char* sig;
    Append<O> append;
};

template <typename O, Append<O> F>
int get(sd_bus*, const char*, const char*, const char*, sd_bus_message* reply, void* userdata,
        sd_bus_error*) {
    return F(reply, *static_cast<const O*>(userdata));
}

int str(sd_bus_message* m, const std::string& v) {
    return sd_bus_message_append(m, "s", v.c_str());
}

// Link
// A link of another namespace shows its own name and the kernel's index
// there; NetNS and NetNSInode say which namespace.
int l_name(sd_bus_message* m, const Obj::LinkObj& o) {
    return str(m, display_name(split_link(o.v.info.name).name));
}
int l_bytes(sd_bus_message* m, const Obj::LinkObj& o) {
    const auto name = split_link(o.v.info.name).name;
    return sd_bus_message_append_array(m, 'y', name.data(), name.size());
}
int l_index(sd_bus_message* m, const Obj::LinkObj& o) {
    return sd_bus_message_append(m, "i",
                                 o.v.info.netns ? o.v.info.netns_ifindex : o.v.info.ifindex);
}
int l_netns(sd_bus_message* m, const Obj::LinkObj& o) {
    return str(m, o.netns);
}
int l_netns_inode(sd_bus_message* m, const Obj::LinkObj& o) {
    return sd_bus_message_append(m, "t", o.v.info.netns);
}
int l_admin(sd_bus_message* m, const Obj::LinkObj& o) {
    return sd_bus_message_append(m, "b", int(o.v.info.admin_flag));
}
int l_promiscuity(sd_bus_message* m, const Obj::LinkObj& o) {
    return sd_bus_message_append(m, "u", o.v.info.promiscuity);
}
int l_promiscuous(sd_bus_message* m, const Obj::LinkObj& o) {
    return sd_bus_message_append(m, "b", int(o.v.info.promiscuity > 0));
}
int l_origin(sd_bus_message* m, const Obj::LinkObj& o) {
    return str(m, std::string(to_string(o.v.origin)));
}
int l_leases(sd_bus_message* m, const Obj::LinkObj& o) {
    return sd_bus_message_append(m, "u", o.v.leases);
}
int l_policy(sd_bus_message* m, const Obj::LinkObj& o) {
    return str(m, std::string(to_string(o.v.policy)));
}
int l_external(sd_bus_message* m, const Obj::LinkObj& o) {
    return sd_bus_message_append(m, "t", o.v.external_changes);
}
const Prop<Obj::LinkObj> link_props[] = {
    {"Name", "s", l_name},
    {"NameBytes", "ay", l_bytes},
    {"Index", "i", l_index},
    {"AdminFlag", "b", l_admin},
    {"Promiscuity", "u", l_promiscuity},
    {"Promiscuous", "b", l_promiscuous},
    {"Origin", "s", l_origin},
    {"Leases", "u", l_leases},
    {"Policy", "s", l_policy},
    {"ExternalChanges", "t", l_external},
    {"NetNS", "s", l_netns},
    {"NetNSInode", "t", l_netns_inode},
};

// Lease
int e_iface(sd_bus_message* m, const Obj::LeaseObj& o) {
    return str(m, display_name(split_link(o.l.interface).name));
}
int e_netns(sd_bus_message* m, const Obj::LeaseObj& o) {
    return str(m, o.l.netns);
}
int e_netns_inode(sd_bus_message* m, const Obj::LeaseObj& o) {
    return sd_bus_message_append(m, "t", split_link(o.l.interface).netns);
}
int e_state(sd_bus_message* m, const Obj::LeaseObj& o) {
    return str(m, std::string(to_string(o.l.state)));
}
int e_owner(sd_bus_message* m, const Obj::LeaseObj& o) {
    return str(m, label(o.l.owner));
}
int e_uid(sd_bus_message* m, const Obj::LeaseObj& o) {
    return sd_bus_message_append(m, "u", o.l.owner.uid);
}
int e_pid(sd_bus_message* m, const Obj::LeaseObj& o) {
    return sd_bus_message_append(m, "u", o.l.owner.pid);
}
int e_reason(sd_bus_message* m, const Obj::LeaseObj& o) {
    return str(m, o.l.reason);
}
int e_acquired(sd_bus_message* m, const Obj::LeaseObj& o) {
    return sd_bus_message_append(m, "t", o.self->leases().realtime(o.l.acquired));
}
int e_expires(sd_bus_message* m, const Obj::LeaseObj& o) {
    return sd_bus_message_append(m, "t", o.l.expires ? o.self->leases().realtime(*o.l.expires) : 0);
}
const Prop<Obj::LeaseObj> lease_props[] = {
    {"Interface", "s", e_iface},   {"State", "s", e_state},
    {"Owner", "s", e_owner},       {"Uid", "u", e_uid},
    {"Pid", "u", e_pid},           {"Reason", "s", e_reason},
    {"Acquired", "t", e_acquired}, {"Expires", "t", e_expires},
    {"NetNS", "s", e_netns},       {"NetNSInode", "t", e_netns_inode},
};

// Capture: counters are read when asked, so a Get is never behind the signals.
capture::RelayCounters live(const Obj::CaptureObj& o) {
    if (auto* cs = o.self->captures())
        if (auto c = cs->counters(o.c.id))
            return *c;
    return o.c.counters;
}
int c_iface(sd_bus_message* m, const Obj::CaptureObj& o) {
    return str(m, display_name(split_link(o.c.interface).name));
}
int c_netns_inode(sd_bus_message* m, const Obj::CaptureObj& o) {
    return sd_bus_message_append(m, "t", o.c.netns);
}
int c_filter(sd_bus_message* m, const Obj::CaptureObj& o) {
    return str(m, o.c.filter);
}
int c_format(sd_bus_message* m, const Obj::CaptureObj& o) {
    return str(m, std::string(service::to_string(o.c.format)));
}
int c_packets(sd_bus_message* m, const Obj::CaptureObj& o) {
    return sd_bus_message_append(m, "t", live(o).packets);
}
int c_bytes(sd_bus_message* m, const Obj::CaptureObj& o) {
    return sd_bus_message_append(m, "t", live(o).bytes);
}
int c_drops(sd_bus_message* m, const Obj::CaptureObj& o) {
    return sd_bus_message_append(m, "t", live(o).drops);
}
const Prop<Obj::CaptureObj> capture_props[] = {
    {"Interface", "s", c_iface},        {"Filter", "s", c_filter}, {"Format", "s", c_format},
    {"Packets", "t", c_packets},        {"Bytes", "t", c_bytes},   {"Drops", "t", c_drops},
    {"NetNSInode", "t", c_netns_inode},
};

// name -> value entries of a{sv}, for the named properties (all when empty).
template <typename O, size_t N>
int append_props(sd_bus_message* m, const Prop<O> (&props)[N], const O& o,
                 const std::vector<std::string>& only) {
    int r = sd_bus_message_open_container(m, 'a', "{sv}");
    for (const auto& p : props) {
        if (r < 0)
            break;
        if (!only.empty() && std::find(only.begin(), only.end(), p.name) == only.end())
            continue;
        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
            r = sd_bus_message_append(m, "s", p.name);
        if (r >= 0)
            r = sd_bus_message_open_container(m, 'v', p.sig);
        if (r >= 0)
            r = p.append(m, o);
        if (r >= 0)
            r = sd_bus_message_close_container(m);
        if (r >= 0)
            r = sd_bus_message_close_container(m);
    }
    return r < 0 ? r : sd_bus_message_close_container(m);
}

template <typename O, size_t N>
void properties_changed(sd_bus* bus, const std::string& path, const std::string& iface,
                        const Prop<O> (&props)[N], const O& o,
                        const std::vector<std::string>& names) {
    sd_bus_message* m = nullptr;
    if (sd_bus_message_new_signal(bus, &m, path.c_str(), "org.freedesktop.DBus.Properties",
                                  "PropertiesChanged") < 0)
        return;
    if (sd_bus_message_append(m, "s", iface.c_str()) >= 0 &&
        append_props(m, props, o, names) >= 0 && sd_bus_message_append(m, "as", 0) >= 0)
        sd_bus_send(bus, m, nullptr);
    sd_bus_message_unref(m);
}

template <typename O, size_t N>
void interfaces_added(sd_bus* bus, const std::string& path, const std::string& iface,
                      const Prop<O> (&props)[N], const O& o) {
    sd_bus_message* m = nullptr;
    if (sd_bus_message_new_signal(bus, &m, root.c_str(), "org.freedesktop.DBus.ObjectManager",
                                  "InterfacesAdded") < 0)
        return;
    int r = sd_bus_message_append(m, "o", path.c_str());
    if (r >= 0)
        r = sd_bus_message_open_container(m, 'a', "{sa{sv}}");
    if (r >= 0)
        r = sd_bus_message_open_container(m, 'e', "sa{sv}");
    if (r >= 0)
        r = sd_bus_message_append(m, "s", iface.c_str());
    if (r >= 0)
        r = append_props(m, props, o, {});
    if (r >= 0)
        r = sd_bus_message_close_container(m);
    if (r >= 0)
        r = sd_bus_message_close_container(m);
    if (r >= 0)
        sd_bus_send(bus, m, nullptr);
    sd_bus_message_unref(m);
}

void interfaces_removed(sd_bus* bus, const std::string& path, const std::string& iface) {
    sd_bus_emit_signal(bus, root.c_str(), "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved",
                       "oas", path.c_str(), 1, iface.c_str());
}

int lease_release(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* o = static_cast<Obj::LeaseObj*>(userdata);
    o->self->frontend().lease_release(m, o->l.id);
    return 1;
}

int lease_renew(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* o = static_cast<Obj::LeaseObj*>(userdata);
    uint64_t ttl = 0;
    int r = sd_bus_message_read(m, "t", &ttl);
    if (r < 0)
        return r;
    o->self->frontend().lease_renew(m, o->l.id, ttl);
    return 1;
}

int capture_stop(sd_bus_message* m, void* userdata, sd_bus_error*) {
    auto* o = static_cast<Obj::CaptureObj*>(userdata);
    o->self->frontend().capture_stop(m, o->c.id);
    return 1;
}

constexpr uint64_t emits = SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE;
constexpr uint64_t constant = SD_BUS_VTABLE_PROPERTY_CONST;
using L = Obj::LinkObj;
using E = Obj::LeaseObj;
using C = Obj::CaptureObj;

const sd_bus_vtable link_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Name", "s", (get<L, l_name>), 0, emits),
    SD_BUS_PROPERTY("NameBytes", "ay", (get<L, l_bytes>), 0, emits),
    SD_BUS_PROPERTY("Index", "i", (get<L, l_index>), 0, constant),
    SD_BUS_PROPERTY("AdminFlag", "b", (get<L, l_admin>), 0, emits),
    SD_BUS_PROPERTY("Promiscuity", "u", (get<L, l_promiscuity>), 0, emits),
    SD_BUS_PROPERTY("Promiscuous", "b", (get<L, l_promiscuous>), 0, emits),
    SD_BUS_PROPERTY("Origin", "s", (get<L, l_origin>), 0, emits),
    SD_BUS_PROPERTY("Leases", "u", (get<L, l_leases>), 0, emits),
    SD_BUS_PROPERTY("Policy", "s", (get<L, l_policy>), 0, emits),
    SD_BUS_PROPERTY("ExternalChanges", "t", (get<L, l_external>), 0, emits),
    SD_BUS_PROPERTY("NetNS", "s", (get<L, l_netns>), 0, constant),
    SD_BUS_PROPERTY("NetNSInode", "t", (get<L, l_netns_inode>), 0, constant),
    SD_BUS_VTABLE_END};

const sd_bus_vtable lease_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Interface", "s", (get<E, e_iface>), 0, constant),
    SD_BUS_PROPERTY("State", "s", (get<E, e_state>), 0, emits),
    SD_BUS_PROPERTY("Owner", "s", (get<E, e_owner>), 0, constant),
    SD_BUS_PROPERTY("Uid", "u", (get<E, e_uid>), 0, constant),
    SD_BUS_PROPERTY("Pid", "u", (get<E, e_pid>), 0, constant),
    SD_BUS_PROPERTY("Reason", "s", (get<E, e_reason>), 0, constant),
    SD_BUS_PROPERTY("Acquired", "t", (get<E, e_acquired>), 0, constant),
    SD_BUS_PROPERTY("Expires", "t", (get<E, e_expires>), 0, emits),
    SD_BUS_PROPERTY("NetNS", "s", (get<E, e_netns>), 0, constant),
    SD_BUS_PROPERTY("NetNSInode", "t", (get<E, e_netns_inode>), 0, constant),
    SD_BUS_METHOD("Release", "", "", lease_release, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_METHOD_WITH_NAMES("Renew", "t", SD_BUS_PARAM(ttl), "", , lease_renew,
                             SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_SIGNAL_WITH_NAMES("Ended", "sa{sv}", SD_BUS_PARAM(reason) SD_BUS_PARAM(details), 0),
    SD_BUS_VTABLE_END};

const sd_bus_vtable capture_vtable[] = {
    SD_BUS_VTABLE_START(0),
    SD_BUS_PROPERTY("Interface", "s", (get<C, c_iface>), 0, constant),
    SD_BUS_PROPERTY("Filter", "s", (get<C, c_filter>), 0, constant),
    SD_BUS_PROPERTY("Format", "s", (get<C, c_format>), 0, constant),
    SD_BUS_PROPERTY("Packets", "t", (get<C, c_packets>), 0, emits),
    SD_BUS_PROPERTY("Bytes", "t", (get<C, c_bytes>), 0, emits),
    SD_BUS_PROPERTY("Drops", "t", (get<C, c_drops>), 0, emits),
    SD_BUS_PROPERTY("NetNSInode", "t", (get<C, c_netns_inode>), 0, constant),
    SD_BUS_METHOD("Stop", "", "", capture_stop, SD_BUS_VTABLE_UNPRIVILEGED),
    SD_BUS_SIGNAL_WITH_NAMES("Finished", "s", SD_BUS_PARAM(reason), 0),
    SD_BUS_VTABLE_END};

} // namespace

BusObjects::BusObjects(sd_bus* bus, BusFrontend& frontend, service::LeaseService& leases,
                       service::CaptureService* captures, uint64_t max_queued)
    : bus_(bus), frontend_(frontend), service_(leases), captures_service_(captures),
      max_queued_(max_queued) {
    auto add = [this](int r, const char* what) {
        if (r < 0)
            throw std::system_error(-r, std::generic_category(), what);
    };
    sd_bus_slot* s = nullptr;
    add(sd_bus_add_fallback_vtable(bus_, &s, link_prefix.c_str(), link_iface.c_str(), link_vtable,
                                   &BusObjects::find_link, this),
        "cannot register the Link objects");
    slots_.push_back(s);
    add(sd_bus_add_node_enumerator(bus_, &s, link_prefix.c_str(), &BusObjects::list_links, this),
        "cannot enumerate the Link objects");
    slots_.push_back(s);
    add(sd_bus_add_fallback_vtable(bus_, &s, lease_prefix.c_str(), lease_iface.c_str(),
                                   lease_vtable, &BusObjects::find_lease, this),
        "cannot register the Lease objects");
    slots_.push_back(s);
    add(sd_bus_add_node_enumerator(bus_, &s, lease_prefix.c_str(), &BusObjects::list_leases, this),
        "cannot enumerate the Lease objects");
    slots_.push_back(s);
    add(sd_bus_add_fallback_vtable(bus_, &s, capture_prefix.c_str(), capture_iface.c_str(),
                                   capture_vtable, &BusObjects::find_capture, this),
        "cannot register the Capture objects");
    slots_.push_back(s);
    add(sd_bus_add_node_enumerator(bus_, &s, capture_prefix.c_str(), &BusObjects::list_captures,
                                   this),
        "cannot enumerate the Capture objects");
    slots_.push_back(s);
    service_.changes().subscribe(this);
}

BusObjects::~BusObjects() {
    service_.changes().unsubscribe(this);
    for (auto* s : slots_)
        sd_bus_slot_unref(s);
}

int BusObjects::find_link(sd_bus*, const char* path, const char*, void* userdata, void** found,
                          sd_bus_error*) {
    auto* self = static_cast<BusObjects*>(userdata);
    uint64_t id = 0;
    if (!id_of(path, link_prefix, id))
        return 0;
    auto it = self->links_.find(static_cast<int>(id));
    if (it == self->links_.end())
        return 0;
    *found = &it->second;
    return 1;
}

int BusObjects::find_lease(sd_bus*, const char* path, const char*, void* userdata, void** found,
                           sd_bus_error*) {
    auto* self = static_cast<BusObjects*>(userdata);
    uint64_t id = 0;
    if (!id_of(path, lease_prefix, id))
        return 0;
    auto it = self->leases_.find(id);
    if (it == self->leases_.end())
        return 0;
    *found = &it->second;
    return 1;
}

int BusObjects::find_capture(sd_bus*, const char* path, const char*, void* userdata, void** found,
                             sd_bus_error*) {
    auto* self = static_cast<BusObjects*>(userdata);
    uint64_t id = 0;
    if (!id_of(path, capture_prefix, id))
        return 0;
    auto it = self->captures_.find(id);
    if (it == self->captures_.end())
        return 0;
    *found = &it->second;
    return 1;
}

int BusObjects::list_links(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error*) {
    return list(link_prefix, static_cast<BusObjects*>(userdata)->links_, nodes);
}
int BusObjects::list_leases(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error*) {
    return list(lease_prefix, static_cast<BusObjects*>(userdata)->leases_, nodes);
}
int BusObjects::list_captures(sd_bus*, const char*, void* userdata, char*** nodes, sd_bus_error*) {
    return list(capture_prefix, static_cast<BusObjects*>(userdata)->captures_, nodes);
}

bool BusObjects::congested() {
    uint64_t queued = 0;
    if (sd_bus_get_n_queued_write(bus_, &queued) < 0)
        return false;
    if (!congested_ && queued >= max_queued_) {
        congested_ = true;
        log::warning("the bus has not read the last " + std::to_string(queued) +
                     " messages: signals are dropped until it reads again");
    } else if (congested_ && queued < max_queued_ / 2) {
        congested_ = false;
        log::notice("the bus reads again; " + std::to_string(dropped_) +
                    " changes were not signalled meanwhile (GetManagedObjects has them)");
        dropped_ = 0;
    }
    return congested_;
}

void BusObjects::on_change(const service::Change& change) {
    // The objects follow every change; only the signals are dropped.
    const bool announcing = announce_;
    if (announce_ && congested()) {
        announce_ = false;
        ++dropped_;
    }
    // A failing emit (the bus went away) must not stop the rest.
    try {
        apply(change);
    } catch (const std::exception& e) {
        log::warning(std::string("cannot publish a change on the bus: ") + e.what());
    }
    announce_ = announcing;
}

void BusObjects::apply(const service::Change& change) {
    using namespace service;
    if (const auto* a = std::get_if<LinkAdded>(&change)) {
        const int idx = a->link.info.ifindex;
        const bool fresh = !links_.count(idx);
        std::string netns;
        if (a->link.info.netns)
            if (const auto* ns = service_.namespace_of(a->link.info.netns))
                netns = ns->spec;
        links_[idx] = LinkObj{a->link, std::move(netns)};
        if (fresh && announce_)
            sd_bus_emit_interfaces_added(bus_, link_path(idx).c_str(), link_iface.c_str(), nullptr);
    } else if (const auto* c = std::get_if<LinkChanged>(&change)) {
        const int idx = c->link.info.ifindex;
        auto it = links_.find(idx);
        if (it == links_.end()) {
            apply(LinkAdded{c->link});
            return;
        }
        const LinkView& b = it->second.v;
        const LinkView& v = c->link;
        std::vector<std::string> names;
        if (split_link(v.info.name).name != split_link(b.info.name).name) {
            names.emplace_back("Name");
            names.emplace_back("NameBytes");
        }
        if (v.info.admin_flag != b.info.admin_flag)
            names.emplace_back("AdminFlag");
        if (v.info.promiscuity != b.info.promiscuity)
            names.emplace_back("Promiscuity");
        if ((v.info.promiscuity > 0) != (b.info.promiscuity > 0))
            names.emplace_back("Promiscuous");
        if (v.origin != b.origin)
            names.emplace_back("Origin");
        if (v.leases != b.leases)
            names.emplace_back("Leases");
        if (v.policy != b.policy)
            names.emplace_back("Policy");
        if (v.external_changes != b.external_changes)
            names.emplace_back("ExternalChanges");
        it->second.v = v;
        if (announce_ && !names.empty())
            properties_changed(bus_, link_path(idx), link_iface, link_props, it->second, names);
    } else if (const auto* r = std::get_if<LinkRemoved>(&change)) {
        if (links_.erase(r->ifindex) && announce_)
            sd_bus_emit_interfaces_removed(bus_, link_path(r->ifindex).c_str(), link_iface.c_str(),
                                           nullptr);
    } else if (const auto* la = std::get_if<LeaseAdded>(&change)) {
        auto [it, fresh] = leases_.emplace(la->lease.id, LeaseObj{la->lease, this});
        if (fresh && announce_)
            interfaces_added(bus_, lease_path(la->lease.id), lease_iface, lease_props, it->second);
    } else if (const auto* lc = std::get_if<LeaseChanged>(&change)) {
        auto it = leases_.find(lc->lease.id);
        if (it == leases_.end())
            return;
        std::vector<std::string> names;
        if (lc->lease.state != it->second.l.state)
            names.emplace_back("State");
        if (lc->lease.expires != it->second.l.expires)
            names.emplace_back("Expires");
        it->second.l = lc->lease;
        if (announce_ && !names.empty())
            properties_changed(bus_, lease_path(lc->lease.id), lease_iface, lease_props, it->second,
                               names);
    } else if (const auto* le = std::get_if<service::LeaseEnded>(&change)) {
        if (!leases_.erase(le->lease.id) || !announce_)
            return;
        const std::string path = lease_path(le->lease.id);
        sd_bus_message* m = nullptr;
        if (sd_bus_message_new_signal(bus_, &m, path.c_str(), lease_iface.c_str(), "Ended") >= 0) {
            sd_bus_message_append(m, "s", std::string(to_string(le->reason)).c_str());
            sd_bus_message_open_container(m, 'a', "{sv}");
            if (const auto& by = le->revocation) {
                sd_bus_message_append(m, "{sv}", "revoked_by", "s", display_name(by->by).c_str());
                sd_bus_message_append(m, "{sv}", "revoked_by_uid", "u", by->by_uid);
                sd_bus_message_append(m, "{sv}", "message", "s", display_name(by->message).c_str());
            }
            sd_bus_message_close_container(m);
            sd_bus_send(bus_, m, nullptr);
            sd_bus_message_unref(m);
        }
        interfaces_removed(bus_, path, lease_iface);
    } else if (const auto* f = std::get_if<FlagChanged>(&change)) {
        if (announce_)
            frontend_.emit_flag_changed(display_name(f->name), f->on,
                                        f->by_daemon ? "promiscd" : "another agent");
    } else if (const auto* k = std::get_if<Conflict>(&change)) {
        if (announce_)
            frontend_.emit_conflict(display_name(k->name), k->clears);
    } else if (const auto* cs = std::get_if<CaptureStarted>(&change)) {
        auto [it, fresh] = captures_.emplace(cs->capture.id, CaptureObj{cs->capture, this});
        if (fresh && announce_)
            interfaces_added(bus_, capture_path(cs->capture.id), capture_iface, capture_props,
                             it->second);
    } else if (const auto* cc = std::get_if<CaptureCounters>(&change)) {
        auto it = captures_.find(cc->capture.id);
        if (it == captures_.end())
            return;
        const auto& o = it->second.c.counters;
        const auto& n = cc->capture.counters;
        std::vector<std::string> names;
        if (n.packets != o.packets)
            names.emplace_back("Packets");
        if (n.bytes != o.bytes)
            names.emplace_back("Bytes");
        if (n.drops != o.drops)
            names.emplace_back("Drops");
        it->second.c.counters = n;
        if (announce_ && !names.empty())
            properties_changed(bus_, capture_path(cc->capture.id), capture_iface, capture_props,
                               it->second, names);
    } else if (const auto* cf = std::get_if<CaptureFinished>(&change)) {
        auto it = captures_.find(cf->capture.id);
        if (it == captures_.end())
            return;
        const std::string path = capture_path(cf->capture.id);
        // The final counters, then Finished, then the object goes.
        apply(CaptureCounters{cf->capture});
        if (announce_)
            sd_bus_emit_signal(bus_, path.c_str(), capture_iface.c_str(), "Finished", "s",
                               std::string(capture::to_string(cf->reason)).c_str());
        captures_.erase(cf->capture.id);
        if (announce_)
            interfaces_removed(bus_, path, capture_iface);
    }
}

} // namespace promiscd::bus
