#include "promisc_client.hpp"

#include "config.h"
#include "promisc1_proxy.h"

#include <algorithm>
#include <deque>
#include <fcntl.h>
#include <map>
#include <sdbus-c++/sdbus-c++.h>
#include <set>
#include <systemd/sd-bus.h>
#include <unistd.h>

namespace promiscd::client {

namespace gen = ::org::promiscd::Promisc1;

namespace {

const std::string kBusName = PROMISCD_BUS_NAME;
const std::string kRootPath = PROMISCD_OBJECT_PATH;
const std::string kDBusError = "org.freedesktop.DBus.Error.";
const std::string kPropertiesIface = "org.freedesktop.DBus.Properties";
const std::string kObjectManagerIface = "org.freedesktop.DBus.ObjectManager";

using Props = std::map<std::string, sdbus::Variant>;

// sdbus-c++ 1.2 does not expose message flags; the raw sd_bus_message is a
// protected member, reachable through a pointer to member of a derived class.
struct MessageAccess : sdbus::Message {
    static sd_bus_message* raw(const sdbus::Message& m) {
        return static_cast<sd_bus_message*>(m.*(&MessageAccess::msg_));
    }
};

// An IProxy that forwards everything to a real proxy, and sets
// ALLOW_INTERACTIVE_AUTHORIZATION on the calls it creates. The generated
// proxies build every call (properties included) through createMethodCall(),
// so they get the flag without being changed.
class FlagProxy final : public sdbus::IProxy {
public:
    FlagProxy(sdbus::IConnection& connection, const std::string& destination,
              const std::string& path, bool interactive)
        : inner_(sdbus::createProxy(connection, destination, path)), interactive_(interactive) {}

    sdbus::MethodCall createMethodCall(const std::string& interfaceName,
                                       const std::string& methodName) override {
        auto call = inner_->createMethodCall(interfaceName, methodName);
        if (interactive_) {
            int r = sd_bus_message_set_allow_interactive_authorization(MessageAccess::raw(call), 1);
            if (r < 0)
                throw sdbus::Error(kDBusError + "Failed", "cannot allow interactive authorization");
        }
        return call;
    }
    sdbus::MethodReply callMethod(const sdbus::MethodCall& message, uint64_t timeout) override {
        return inner_->callMethod(message, timeout);
    }
    sdbus::PendingAsyncCall callMethod(const sdbus::MethodCall& message,
                                       sdbus::async_reply_handler callback,
                                       uint64_t timeout) override {
        return inner_->callMethod(message, std::move(callback), timeout);
    }
    void registerSignalHandler(const std::string& interfaceName, const std::string& signalName,
                               sdbus::signal_handler handler) override {
        inner_->registerSignalHandler(interfaceName, signalName, std::move(handler));
    }
    void unregisterSignalHandler(const std::string& interfaceName,
                                 const std::string& signalName) override {
        inner_->unregisterSignalHandler(interfaceName, signalName);
    }
    void finishRegistration() override { inner_->finishRegistration(); }
    void unregister() override { inner_->unregister(); }
    sdbus::IConnection& getConnection() const override { return inner_->getConnection(); }
    const std::string& getObjectPath() const override { return inner_->getObjectPath(); }
    const sdbus::Message* getCurrentlyProcessedMessage() const override {
        return inner_->getCurrentlyProcessedMessage();
    }

private:
    std::unique_ptr<sdbus::IProxy> inner_;
    bool interactive_;
};

// Holds the FlagProxy so that it exists before the generated interfaces that
// keep a reference to it (base classes are built in declaration order).
struct ProxyHolder {
    ProxyHolder(sdbus::IConnection& c, const std::string& path, bool interactive)
        : proxy(std::make_unique<FlagProxy>(c, kBusName, path, interactive)) {}
    std::unique_ptr<FlagProxy> proxy;
};

// The generated proxies register their signal handlers, but nothing
// subscribes them (finishRegistration() is never called): signals reach the
// client through its single match, installed before any request so that none
// is lost between a reply and a per-object subscription.
class ManagerRemote final : private ProxyHolder, public gen::Manager_proxy {
public:
    ManagerRemote(sdbus::IConnection& c, bool interactive)
        : ProxyHolder(c, kRootPath, interactive), Manager_proxy(*proxy) {}

private:
    void onConflict(const std::string&, const uint32_t&) override {}
    void onFlagChanged(const std::string&, const bool&, const std::string&) override {}
};

class LeaseRemote final : private ProxyHolder,
                          public gen::Lease_proxy,
                          public sdbus::Properties_proxy {
public:
    LeaseRemote(sdbus::IConnection& c, const std::string& path, bool interactive)
        : ProxyHolder(c, path, interactive), Lease_proxy(*proxy), Properties_proxy(*proxy) {}

private:
    void onEnded(const std::string&, const std::map<std::string, sdbus::Variant>&) override {}
    void onPropertiesChanged(const std::string&, const Props&,
                             const std::vector<std::string>&) override {}
};

class CaptureRemote final : private ProxyHolder,
                            public gen::Capture_proxy,
                            public sdbus::Properties_proxy {
public:
    CaptureRemote(sdbus::IConnection& c, const std::string& path, bool interactive)
        : ProxyHolder(c, path, interactive), Capture_proxy(*proxy), Properties_proxy(*proxy) {}

private:
    void onFinished(const std::string&) override {}
    void onPropertiesChanged(const std::string&, const Props&,
                             const std::vector<std::string>&) override {}
};

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

uint64_t realtime_usec() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

std::string unreachable_message(const sdbus::Error& e) {
    const std::string& name = e.getName();
    if (name == kDBusError + "ServiceUnknown" || name == kDBusError + "NameHasNoOwner")
        return "promiscd is not running (nobody owns " + kBusName + " on the system bus)";
    if (starts_with(name, kDBusError + "Spawn."))
        return "promiscd could not be started: " + e.getMessage();
    if (name == kDBusError + "NoReply" || name == kDBusError + "Timeout" ||
        name == kDBusError + "TimedOut" || name == "System.Error.ETIMEDOUT")
        return "promiscd did not answer: " + e.getMessage();
    return "lost the connection to the system bus: " + e.getMessage();
}

Error translate(const sdbus::Error& e) {
    ErrorKind kind = error_kind(e.getName());
    std::string message =
        kind == ErrorKind::DaemonUnreachable ? unreachable_message(e) : e.getMessage();
    if (message.empty())
        message = e.getName();
    return Error(kind, e.getName(), message);
}

// Runs a bus call, turning sdbus-c++'s errors into client::Error.
template <typename F>
auto guarded(F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const sdbus::Error& e) {
        throw translate(e);
    }
}

template <typename T>
void take(const Props& props, const char* key, T& out) {
    auto it = props.find(key);
    if (it != props.end() && it->second.containsValueOfType<T>())
        out = it->second.get<T>();
}

void update_from(LinkInfo& l, const Props& p) {
    take(p, "Name", l.name);
    take(p, "Index", l.index);
    take(p, "AdminFlag", l.admin_flag);
    take(p, "Promiscuity", l.promiscuity);
    take(p, "Promiscuous", l.promiscuous);
    take(p, "Origin", l.origin);
    take(p, "Leases", l.leases);
    take(p, "Policy", l.policy);
    if (auto it = p.find("ExternalChanges");
        it != p.end() && it->second.containsValueOfType<std::uint64_t>())
        l.external_changes = it->second.get<std::uint64_t>();
    take(p, "NetNS", l.netns);
    take(p, "NetNSInode", l.netns_inode);
}

void update_from(LeaseInfo& l, const Props& p) {
    take(p, "Interface", l.interface);
    take(p, "State", l.state);
    take(p, "Owner", l.owner);
    take(p, "Uid", l.uid);
    take(p, "Pid", l.pid);
    take(p, "Reason", l.reason);
    take(p, "Acquired", l.acquired_usec);
    take(p, "Expires", l.expires_usec);
    take(p, "NetNS", l.netns);
    take(p, "NetNSInode", l.netns_inode);
}

void update_from(CaptureInfo& c, const Props& p) {
    take(p, "Interface", c.interface);
    take(p, "Filter", c.filter);
    take(p, "Format", c.format);
    take(p, "Packets", c.packets);
    take(p, "Bytes", c.bytes);
    take(p, "Drops", c.drops);
}

// Ended's details, when the daemon sends them (the contract added them):
// for a revocation, who revoked the lease and why.
void read_end_details(sdbus::Message& msg, LeaseEnd& end) {
    Props details;
    try {
        msg >> details;
    } catch (const sdbus::Error&) {
        return; // none, or not a{sv}: the reason alone
    }
    take(details, "revoked_by", end.revoked_by);
    take(details, "message", end.message);
    if (auto it = details.find("revoked_by_uid");
        it != details.end() && it->second.containsValueOfType<uint32_t>())
        end.revoked_by_uid = it->second.get<uint32_t>();
}

std::vector<std::string> keys(const Props& p) {
    std::vector<std::string> out;
    for (const auto& [k, v] : p)
        out.push_back(k);
    return out;
}

const std::string kLinkIface = gen::Link_proxy::INTERFACE_NAME;
const std::string kLeaseIface = gen::Lease_proxy::INTERFACE_NAME;
const std::string kCaptureIface = gen::Capture_proxy::INTERFACE_NAME;
const std::string kManagerIface = gen::Manager_proxy::INTERFACE_NAME;

// A signal as received, parsed inside sd-bus's dispatch and handled after
// it, so that callbacks may make calls of their own.
struct Signal {
    enum class Kind {
        Added,
        Removed,
        Changed,
        Ended,
        Finished,
        Conflict,
        FlagChanged,
        OwnerChanged
    };
    Kind kind = Kind::Changed;
    uint64_t timestamp = 0;
    std::string path;
    std::map<std::string, Props> added; // Added: interface → properties
    std::vector<std::string> removed;   // Removed: interfaces
    std::string interface;              // Changed: whose properties
    Props props;                        // Changed
    std::string text;                   // Finished reason, Conflict/FlagChanged link
    uint32_t number = 0;                // Conflict clears
    LeaseEnd end;                       // Ended: the reason and its details
    bool on = false;                    // FlagChanged: the flag after the change
    std::string by;                     // FlagChanged: "promiscd" or "another agent"
    std::string old_owner, new_owner;   // OwnerChanged
};

template <typename T>
void prune(std::vector<std::weak_ptr<T>>& v) {
    v.erase(std::remove_if(v.begin(), v.end(), [](const auto& w) { return w.expired(); }), v.end());
}

template <typename T>
std::vector<std::shared_ptr<T>> live(const std::vector<std::weak_ptr<T>>& v) {
    std::vector<std::shared_ptr<T>> out;
    for (const auto& w : v)
        if (auto s = w.lock())
            out.push_back(std::move(s));
    return out;
}

} // namespace

// ------------------------------------------------------------------ helpers

UniqueFd& UniqueFd::operator=(UniqueFd&& o) noexcept {
    if (this != &o)
        reset(o.release());
    return *this;
}

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0)
        ::close(fd_);
    fd_ = fd;
}

std::string lease_path(std::uint64_t id) {
    return kRootPath + "/lease/" + std::to_string(id);
}

std::optional<std::uint64_t> id_of_path(std::string_view path) {
    auto slash = path.rfind('/');
    if (slash == std::string_view::npos || slash + 1 == path.size())
        return std::nullopt;
    std::uint64_t id = 0;
    for (char c : path.substr(slash + 1)) {
        if (c < '0' || c > '9' || id > (UINT64_MAX - 9) / 10)
            return std::nullopt;
        id = id * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return id;
}

// ------------------------------------------------------------------ state

struct Lease::State {
    std::unique_ptr<LeaseRemote> remote;
    LeaseInfo info;
    bool ended = false;
    LeaseEnd end_info;
    std::function<void(const std::string&, const std::string&)> on_state;
    std::function<void(const std::string&)> on_ended;

    void end(const LeaseEnd& how) {
        if (ended)
            return;
        ended = true;
        end_info = how;
        if (on_ended)
            on_ended(how.reason);
    }

    void handle(const Signal& s) {
        if (s.path != info.path || ended)
            return;
        if (s.kind == Signal::Kind::Changed && s.interface == kLeaseIface) {
            std::string before = info.state;
            update_from(info, s.props);
            if (info.state != before && on_state)
                on_state(before, info.state);
        } else if (s.kind == Signal::Kind::Ended) {
            end(s.end);
        } else if (s.kind == Signal::Kind::Removed) {
            // Ended always comes first; this is for a daemon that did not send it.
            if (std::find(s.removed.begin(), s.removed.end(), kLeaseIface) != s.removed.end())
                end({});
        }
    }
};

struct Capture::State {
    std::unique_ptr<CaptureRemote> remote;
    UniqueFd fd;
    CaptureInfo info;
    bool finished = false;
    std::string finish_reason;
    std::function<void(const std::string&)> on_finished;

    void finish(const std::string& reason) {
        if (finished)
            return;
        finished = true;
        finish_reason = reason;
        if (on_finished)
            on_finished(reason);
    }

    void handle(const Signal& s) {
        if (s.path != info.path || finished)
            return;
        if (s.kind == Signal::Kind::Changed && s.interface == kCaptureIface)
            update_from(info, s.props);
        else if (s.kind == Signal::Kind::Finished)
            finish(s.text);
        else if (s.kind == Signal::Kind::Removed &&
                 std::find(s.removed.begin(), s.removed.end(), kCaptureIface) != s.removed.end())
            finish("");
    }
};

struct Watcher::State {
    Client::Impl* impl = nullptr;
    std::map<std::string, LinkInfo> links;
    std::map<std::string, LeaseInfo> leases;
    std::map<std::string, CaptureInfo> captures;
    std::function<void(const Event&)> on_event;
    bool flag_signals = false; // the daemon emits Manager.FlagChanged

    void emit(Event e) {
        if (on_event)
            on_event(e);
    }
    void load();
    void reload(uint64_t timestamp);
    void handle(const Signal& s);
    void fill_command(LeaseInfo& l);
};

struct Client::Impl {
    Options options;
    std::unique_ptr<sdbus::IConnection> connection;
    std::unique_ptr<ManagerRemote> manager;
    std::unique_ptr<sdbus::IProxy> driver; // org.freedesktop.DBus
    sdbus::Slot signal_match;
    sdbus::Slot owner_match;
    std::deque<Signal> queue;
    std::vector<std::weak_ptr<Lease::State>> leases;
    std::vector<std::weak_ptr<Capture::State>> captures;
    std::vector<std::weak_ptr<Watcher::State>> watchers;
    std::vector<std::function<void(bool)>> presence;

    void subscribe();
    void on_signal(sdbus::Message& msg);
    void on_owner_changed(sdbus::Message& msg);
    void deliver(const Signal& s);
    std::vector<LinkInfo> list_links();
    std::vector<LeaseInfo> list_leases();
};

void Client::Impl::subscribe() {
    if (signal_match)
        return;
    // One match for everything the daemon emits under its root; the bus
    // resolves the well-known sender to its current owner, so the match
    // survives a restart of the daemon.
    guarded([&] {
        signal_match = connection->addMatch("type='signal',sender='" + kBusName +
                                                "',path_namespace='" + kRootPath + "'",
                                            [this](sdbus::Message& m) { on_signal(m); });
        owner_match = connection->addMatch(
            "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
            "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" +
                kBusName + "'",
            [this](sdbus::Message& m) { on_owner_changed(m); });
    });
}

void Client::Impl::on_signal(sdbus::Message& msg) {
    Signal s;
    s.timestamp = realtime_usec();
    std::string iface = msg.getInterfaceName();
    std::string member = msg.getMemberName();
    s.path = msg.getPath();
    try {
        if (iface == kObjectManagerIface && member == "InterfacesAdded") {
            sdbus::ObjectPath path;
            msg >> path >> s.added;
            s.kind = Signal::Kind::Added;
            s.path = path;
        } else if (iface == kObjectManagerIface && member == "InterfacesRemoved") {
            sdbus::ObjectPath path;
            msg >> path >> s.removed;
            s.kind = Signal::Kind::Removed;
            s.path = path;
        } else if (iface == kPropertiesIface && member == "PropertiesChanged") {
            std::vector<std::string> invalidated;
            msg >> s.interface >> s.props >> invalidated;
            s.kind = Signal::Kind::Changed;
        } else if (iface == kLeaseIface && member == "Ended") {
            msg >> s.end.reason;
            s.kind = Signal::Kind::Ended;
            read_end_details(msg, s.end);
        } else if (iface == kCaptureIface && member == "Finished") {
            msg >> s.text;
            s.kind = Signal::Kind::Finished;
        } else if (iface == kManagerIface && member == "Conflict") {
            msg >> s.text >> s.number;
            s.kind = Signal::Kind::Conflict;
        } else if (iface == kManagerIface && member == "FlagChanged") {
            msg >> s.text >> s.on >> s.by;
            s.kind = Signal::Kind::FlagChanged;
        } else {
            return;
        }
    } catch (const sdbus::Error&) {
        return; // not the contract's signature: not something we can describe
    }
    queue.push_back(std::move(s));
}

void Client::Impl::on_owner_changed(sdbus::Message& msg) {
    Signal s;
    s.timestamp = realtime_usec();
    s.kind = Signal::Kind::OwnerChanged;
    std::string name;
    try {
        msg >> name >> s.old_owner >> s.new_owner;
    } catch (const sdbus::Error&) {
        return;
    }
    if (name == kBusName)
        queue.push_back(std::move(s));
}

void Client::Impl::deliver(const Signal& s) {
    // Copies: a callback may drop a handle (or add one) while this runs.
    for (const auto& l : live(leases))
        l->handle(s);
    for (const auto& c : live(captures))
        c->handle(s);
    for (const auto& w : live(watchers))
        w->handle(s);
    if (s.kind == Signal::Kind::OwnerChanged) {
        auto callbacks = presence;
        if (!s.old_owner.empty())
            for (const auto& cb : callbacks)
                cb(false);
        if (!s.new_owner.empty())
            for (const auto& cb : callbacks)
                cb(true);
    }
    prune(leases);
    prune(captures);
    prune(watchers);
}

// The properties of one object (for what a List* tuple does not carry).
Props get_all(sdbus::IConnection& connection, const std::string& path, const std::string& iface) {
    Props out;
    auto proxy = sdbus::createProxy(connection, kBusName, path);
    proxy->callMethod("GetAll")
        .onInterface("org.freedesktop.DBus.Properties")
        .withArguments(iface)
        .storeResultsTo(out);
    return out;
}

std::vector<LinkInfo> Client::Impl::list_links() {
    auto raw = guarded([&] { return manager->ListLinks(); });
    std::vector<LinkInfo> out;
    out.reserve(raw.size());
    for (const auto& r : raw) {
        LinkInfo l;
        l.path = std::get<0>(r);
        l.index = std::get<1>(r);
        l.name = std::get<2>(r);
        l.admin_flag = std::get<3>(r);
        l.promiscuity = std::get<4>(r);
        l.promiscuous = std::get<5>(r);
        l.origin = std::get<6>(r);
        l.leases = std::get<7>(r);
        l.policy = std::get<8>(r);
        // ListLinks' tuple does not say which namespace: a link of another
        // one has a path of promiscd's numbering, not its kernel index.
        if (l.path != kRootPath + "/link/" + std::to_string(l.index))
            guarded([&] { update_from(l, get_all(*connection, l.path, kLinkIface)); });
        out.push_back(std::move(l));
    }
    return out;
}

std::vector<LeaseInfo> Client::Impl::list_leases() {
    auto raw = guarded([&] { return manager->ListLeases(); });
    std::vector<LeaseInfo> out;
    out.reserve(raw.size());
    for (const auto& r : raw) {
        LeaseInfo l;
        l.path = std::get<0>(r);
        l.id = std::get<1>(r);
        l.interface = std::get<2>(r);
        l.state = std::get<3>(r);
        l.owner = std::get<4>(r);
        l.uid = std::get<5>(r);
        l.pid = std::get<6>(r);
        l.command = std::get<7>(r);
        l.reason = std::get<8>(r);
        l.acquired_usec = std::get<9>(r);
        l.expires_usec = std::get<10>(r);
        out.push_back(std::move(l));
    }
    // Nor does ListLeases': the leases on a name that links of other
    // namespaces have are asked their namespace (only those).
    std::set<std::string> other_ns;
    if (!out.empty())
        for (const auto& l : list_links())
            if (l.netns_inode != 0)
                other_ns.insert(l.name);
    for (auto& l : out)
        if (other_ns.count(l.interface))
            guarded([&] { update_from(l, get_all(*connection, l.path, kLeaseIface)); });
    return out;
}

// ------------------------------------------------------------------ watcher

void Watcher::State::load() {
    links.clear();
    leases.clear();
    for (auto& l : impl->list_links())
        links.emplace(l.path, std::move(l));
    for (auto& l : impl->list_leases())
        leases.emplace(l.path, std::move(l));
    // Whether this daemon announces flag changes itself, before the first
    // one comes: its contract says so.
    try {
        auto root = sdbus::createProxy(*impl->connection, kBusName, kRootPath);
        std::string xml;
        root->callMethod("Introspect")
            .onInterface("org.freedesktop.DBus.Introspectable")
            .storeResultsTo(xml);
        flag_signals =
            flag_signals || xml.find("<signal name=\"FlagChanged\"") != std::string::npos;
    } catch (const sdbus::Error&) {
        // Not said: FlagChanged events will tell when they come.
    }
}

void Watcher::State::fill_command(LeaseInfo& l) {
    // Signals carry no command name; ListLeases does. A lease already gone
    // keeps an empty one.
    try {
        for (const auto& x : impl->list_leases())
            if (x.path == l.path)
                l.command = x.command;
    } catch (const Error&) {
    }
}

void Watcher::State::reload(uint64_t timestamp) {
    auto old_links = std::move(links);
    auto old_leases = std::move(leases);
    try {
        load();
    } catch (const Error&) {
        // Gone again already; the next start reloads.
        links = std::move(old_links);
        leases = std::move(old_leases);
        return;
    }
    for (const auto& [path, l] : old_leases)
        if (!leases.count(path)) {
            Event e;
            e.type = Event::Type::LeaseEnded;
            e.timestamp_usec = timestamp;
            e.lease = l;
            emit(e);
        }
    for (const auto& [path, l] : leases)
        if (!old_leases.count(path)) {
            Event e;
            e.type = Event::Type::LeaseGranted;
            e.timestamp_usec = timestamp;
            e.lease = l;
            emit(e);
        }
    for (const auto& [path, l] : old_links)
        if (!links.count(path)) {
            Event e;
            e.type = Event::Type::LinkRemoved;
            e.timestamp_usec = timestamp;
            e.link = l;
            emit(e);
        }
    for (const auto& [path, l] : links)
        if (!old_links.count(path)) {
            Event e;
            e.type = Event::Type::LinkAdded;
            e.timestamp_usec = timestamp;
            e.link = l;
            emit(e);
        }
}

void Watcher::State::handle(const Signal& s) {
    Event e;
    e.timestamp_usec = s.timestamp;
    switch (s.kind) {
    case Signal::Kind::Added:
        for (const auto& [iface, props] : s.added) {
            if (iface == kLinkIface) {
                LinkInfo l;
                l.path = s.path;
                update_from(l, props);
                // Already known: the daemon republishing after a restart.
                bool known = links.count(s.path) > 0;
                links[s.path] = l;
                if (!known) {
                    e.type = Event::Type::LinkAdded;
                    e.link = l;
                    emit(e);
                }
            } else if (iface == kLeaseIface) {
                LeaseInfo l;
                l.path = s.path;
                l.id = id_of_path(s.path).value_or(0);
                update_from(l, props);
                bool known = leases.count(s.path) > 0;
                if (known)
                    l.command = leases[s.path].command;
                else
                    fill_command(l);
                leases[s.path] = l;
                if (!known) {
                    e.type = Event::Type::LeaseGranted;
                    e.lease = l;
                    emit(e);
                }
            } else if (iface == kCaptureIface) {
                CaptureInfo c;
                c.path = s.path;
                c.id = id_of_path(s.path).value_or(0);
                update_from(c, props);
                captures[s.path] = c;
                e.type = Event::Type::CaptureStarted;
                e.capture = c;
                emit(e);
            }
        }
        break;
    case Signal::Kind::Removed:
        for (const auto& iface : s.removed) {
            if (iface == kLinkIface) {
                if (auto it = links.find(s.path); it != links.end()) {
                    e.type = Event::Type::LinkRemoved;
                    e.link = it->second;
                    links.erase(it);
                    emit(e);
                }
            } else if (iface == kLeaseIface) {
                // Normally Ended came first and the lease is gone already.
                if (auto it = leases.find(s.path); it != leases.end()) {
                    e.type = Event::Type::LeaseEnded;
                    e.lease = it->second;
                    leases.erase(it);
                    emit(e);
                }
            } else if (iface == kCaptureIface) {
                if (auto it = captures.find(s.path); it != captures.end()) {
                    e.type = Event::Type::CaptureFinished;
                    e.capture = it->second;
                    captures.erase(it);
                    emit(e);
                }
            }
        }
        break;
    case Signal::Kind::Changed:
        e.changed = keys(s.props);
        if (s.interface == kLinkIface) {
            auto& l = links[s.path];
            if (l.path.empty())
                l.path = s.path;
            e.type = Event::Type::LinkChanged;
            e.previous_link = l;
            update_from(l, s.props);
            e.link = l;
            emit(e);
        } else if (s.interface == kLeaseIface) {
            auto& l = leases[s.path];
            if (l.path.empty()) {
                l.path = s.path;
                l.id = id_of_path(s.path).value_or(0);
            }
            e.type = Event::Type::LeaseChanged;
            e.previous_lease = l;
            update_from(l, s.props);
            e.lease = l;
            emit(e);
        } else if (s.interface == kCaptureIface) {
            auto& c = captures[s.path];
            if (c.path.empty()) {
                c.path = s.path;
                c.id = id_of_path(s.path).value_or(0);
            }
            update_from(c, s.props);
            e.type = Event::Type::CaptureChanged;
            e.capture = c;
            emit(e);
        }
        break;
    case Signal::Kind::Ended: {
        e.type = Event::Type::LeaseEnded;
        e.reason = s.end.reason;
        e.end = s.end;
        if (auto it = leases.find(s.path); it != leases.end()) {
            e.lease = it->second;
            leases.erase(it);
        } else {
            e.lease.path = s.path;
            e.lease.id = id_of_path(s.path).value_or(0);
        }
        emit(e);
        break;
    }
    case Signal::Kind::Finished: {
        e.type = Event::Type::CaptureFinished;
        e.reason = s.text;
        if (auto it = captures.find(s.path); it != captures.end()) {
            e.capture = it->second;
            captures.erase(it);
        } else {
            e.capture.path = s.path;
            e.capture.id = id_of_path(s.path).value_or(0);
        }
        emit(e);
        break;
    }
    case Signal::Kind::Conflict:
        e.type = Event::Type::Conflict;
        e.interface = s.text;
        e.clears = s.number;
        emit(e);
        break;
    case Signal::Kind::FlagChanged:
        flag_signals = true;
        e.type = Event::Type::FlagChanged;
        e.interface = s.text;
        e.flag_on = s.on;
        e.by = s.by;
        emit(e);
        break;
    case Signal::Kind::OwnerChanged:
        if (!s.old_owner.empty()) {
            e.type = Event::Type::DaemonStopped;
            emit(e);
        }
        if (!s.new_owner.empty()) {
            e.type = Event::Type::DaemonStarted;
            emit(e);
            reload(s.timestamp);
        }
        break;
    }
}

Watcher::Watcher(std::shared_ptr<State> state) : state_(std::move(state)) {}
Watcher::~Watcher() = default;

void Watcher::on_event(std::function<void(const Event&)> cb) {
    state_->on_event = std::move(cb);
}

bool Watcher::reports_flag_changes() const {
    return state_->flag_signals;
}

std::vector<LinkInfo> Watcher::links() const {
    std::vector<LinkInfo> out;
    for (const auto& [path, l] : state_->links)
        out.push_back(l);
    return out;
}

std::vector<LeaseInfo> Watcher::leases() const {
    std::vector<LeaseInfo> out;
    for (const auto& [path, l] : state_->leases)
        out.push_back(l);
    return out;
}

// ------------------------------------------------------------------ lease

Lease::Lease(std::shared_ptr<State> state) : state_(std::move(state)) {}

Lease::~Lease() {
    if (state_->ended)
        return;
    try {
        state_->remote->Release();
    } catch (const sdbus::Error&) {
        // Already ended, or the daemon is gone; either way nothing is held,
        // and leaving the bus ends the lease too.
    }
}

const std::string& Lease::path() const noexcept {
    return state_->info.path;
}
std::uint64_t Lease::id() const noexcept {
    return state_->info.id;
}
const LeaseInfo& Lease::info() const noexcept {
    return state_->info;
}
bool Lease::ended() const noexcept {
    return state_->ended;
}
const std::string& Lease::end_reason() const noexcept {
    return state_->end_info.reason;
}
const LeaseEnd& Lease::end() const noexcept {
    return state_->end_info;
}

void Lease::on_state_changed(
    std::function<void(const std::string& from, const std::string& to)> cb) {
    state_->on_state = std::move(cb);
}

void Lease::on_ended(std::function<void(const std::string& reason)> cb) {
    state_->on_ended = std::move(cb);
}

void Lease::release() {
    if (state_->ended)
        throw Error(ErrorKind::NoSuchLease, {},
                    "lease " + std::to_string(id()) + " has already ended");
    guarded([&] { state_->remote->Release(); });
    // The caller asked for it: no callback, and the Ended signal that
    // follows is ignored.
    state_->ended = true;
    state_->end_info = LeaseEnd{"released", {}, {}, {}};
}

void Lease::renew(std::uint64_t ttl_sec) {
    guarded([&] { state_->remote->Renew(ttl_sec); });
}

bool Lease::refresh() {
    try {
        auto props = state_->remote->GetAll(kLeaseIface);
        std::string before = state_->info.state;
        update_from(state_->info, props);
        if (state_->info.state != before && state_->on_state)
            state_->on_state(before, state_->info.state);
        return true;
    } catch (const sdbus::Error& e) {
        if (error_kind(e.getName()) == ErrorKind::DaemonUnreachable)
            throw translate(e);
        return false;
    }
}

// ------------------------------------------------------------------ capture

Capture::Capture(std::shared_ptr<State> state) : state_(std::move(state)) {}

Capture::~Capture() = default;

const std::string& Capture::path() const noexcept {
    return state_->info.path;
}
std::uint64_t Capture::id() const noexcept {
    return state_->info.id;
}
const UniqueFd& Capture::fd() const noexcept {
    return state_->fd;
}
UniqueFd Capture::take_fd() noexcept {
    return std::move(state_->fd);
}
const CaptureInfo& Capture::info() const noexcept {
    return state_->info;
}
bool Capture::finished() const noexcept {
    return state_->finished;
}
const std::string& Capture::finish_reason() const noexcept {
    return state_->finish_reason;
}

void Capture::on_finished(std::function<void(const std::string& reason)> cb) {
    state_->on_finished = std::move(cb);
}

void Capture::stop() {
    guarded([&] { state_->remote->Stop(); });
}

// ------------------------------------------------------------------ client

Client::Client() : Client(Options{}) {}

Client::Client(Options options) : impl_(std::make_unique<Impl>()) {
    impl_->options = options;
    try {
        impl_->connection = sdbus::createSystemBusConnection();
    } catch (const sdbus::Error& e) {
        throw Error(ErrorKind::DaemonUnreachable, e.getName(),
                    "cannot connect to the system bus: " + e.getMessage());
    }
    if (options.interactive) {
        // Someone may be typing a password before the daemon can answer.
        impl_->connection->setMethodCallTimeout(std::chrono::minutes(5));
    }
    impl_->manager = std::make_unique<ManagerRemote>(*impl_->connection, options.interactive);
    impl_->driver =
        sdbus::createProxy(*impl_->connection, "org.freedesktop.DBus", "/org/freedesktop/DBus");
}

Client::~Client() = default;

bool Client::daemon_running() {
    return guarded([&] {
        bool has = false;
        impl_->driver->callMethod("NameHasOwner")
            .onInterface("org.freedesktop.DBus")
            .withArguments(kBusName)
            .storeResultsTo(has);
        return has;
    });
}

std::vector<LinkInfo> Client::list_links() {
    return impl_->list_links();
}

std::vector<LeaseInfo> Client::list_leases() {
    return impl_->list_leases();
}

std::unique_ptr<Lease> Client::acquire(const std::string& interface, const LeaseOptions& options) {
    impl_->subscribe();
    Props opts;
    if (options.ttl_sec)
        opts.emplace("ttl", sdbus::Variant(options.ttl_sec));
    if (!options.reason.empty())
        opts.emplace("reason", sdbus::Variant(options.reason));
    if (options.wait)
        opts.emplace("wait", sdbus::Variant(true));
    if (!options.netns.empty())
        opts.emplace("netns", sdbus::Variant(options.netns));
    std::string path =
        guarded([&] { return std::string(impl_->manager->AcquireLease(interface, opts)); });

    auto state = std::make_shared<Lease::State>();
    state->info.path = path;
    state->info.id = id_of_path(path).value_or(0);
    state->info.interface = interface;
    state->info.reason = options.reason;
    state->remote =
        std::make_unique<LeaseRemote>(*impl_->connection, path, impl_->options.interactive);
    // Registered before anything is dispatched: the signals queued since the
    // reply (InterfacesAdded, a quick state change or end) reach it.
    impl_->leases.push_back(state);
    try {
        update_from(state->info, state->remote->GetAll(kLeaseIface));
    } catch (const sdbus::Error& e) {
        // Ended already: the queued Ended signal will say why.
        if (error_kind(e.getName()) == ErrorKind::DaemonUnreachable)
            throw translate(e);
    }
    return std::unique_ptr<Lease>(new Lease(std::move(state)));
}

void Client::release(const std::string& path) {
    LeaseRemote remote(*impl_->connection, path, impl_->options.interactive);
    try {
        remote.Release();
    } catch (const sdbus::Error& e) {
        // No object at that path: the lease does not exist (any more).
        if (e.getName() == kDBusError + "UnknownObject" ||
            e.getName() == kDBusError + "UnknownMethod" ||
            e.getName() == kDBusError + "UnknownInterface") {
            auto id = id_of_path(path);
            throw Error(ErrorKind::NoSuchLease, e.getName(),
                        id ? "there is no lease " + std::to_string(*id)
                           : "there is no lease at " + path);
        }
        throw translate(e);
    }
}

void Client::revoke(const std::string& path, const std::string& reason) {
    guarded([&] { impl_->manager->RevokeLease(sdbus::ObjectPath(path), reason); });
}

void Client::set_policy(const std::string& interface, const std::string& policy) {
    guarded([&] { impl_->manager->SetLinkPolicy(interface, policy); });
}

std::unique_ptr<Capture> Client::open_capture(const std::string& interface,
                                              const CaptureOptions& options) {
    impl_->subscribe();
    Props opts;
    if (!options.filter.empty())
        opts.emplace("filter", sdbus::Variant(options.filter));
    if (options.snaplen)
        opts.emplace("snaplen", sdbus::Variant(options.snaplen));
    opts.emplace("promisc", sdbus::Variant(options.promisc));
    if (!options.format.empty())
        opts.emplace("format", sdbus::Variant(options.format));
    if (options.buffer_size)
        opts.emplace("buffer_size", sdbus::Variant(options.buffer_size));
    if (options.count)
        opts.emplace("count", sdbus::Variant(options.count));
    if (!options.netns.empty())
        opts.emplace("netns", sdbus::Variant(options.netns));
    auto [fd, path] = guarded([&] { return impl_->manager->OpenCapture(interface, opts); });

    auto state = std::make_shared<Capture::State>();
    // sdbus-c++ dup()s received fds without O_CLOEXEC; a capture pipe must
    // not leak into programs this process starts.
    state->fd.reset(fd.release());
    ::fcntl(state->fd.get(), F_SETFD, FD_CLOEXEC);
    state->info.path = path;
    state->info.id = id_of_path(path).value_or(0);
    state->info.interface = interface;
    state->info.filter = options.filter;
    state->remote =
        std::make_unique<CaptureRemote>(*impl_->connection, path, impl_->options.interactive);
    impl_->captures.push_back(state);
    try {
        update_from(state->info, state->remote->GetAll(kCaptureIface));
    } catch (const sdbus::Error& e) {
        if (error_kind(e.getName()) == ErrorKind::DaemonUnreachable)
            throw translate(e);
    }
    return std::unique_ptr<Capture>(new Capture(std::move(state)));
}

std::unique_ptr<Watcher> Client::watch() {
    impl_->subscribe();
    auto state = std::make_shared<Watcher::State>();
    state->impl = impl_.get();
    state->load();
    impl_->watchers.push_back(state);
    return std::unique_ptr<Watcher>(new Watcher(std::move(state)));
}

void Client::on_daemon_presence(std::function<void(bool running)> cb) {
    impl_->subscribe();
    impl_->presence.push_back(std::move(cb));
}

Client::PollData Client::poll_data() const {
    auto p = guarded([&] { return impl_->connection->getEventLoopPollData(); });
    return {p.fd, p.events, p.timeout_usec};
}

void Client::dispatch() {
    for (;;) {
        try {
            while (impl_->connection->processPendingRequest()) {
            }
        } catch (const sdbus::Error& e) {
            throw Error(ErrorKind::DaemonUnreachable, e.getName(),
                        "lost the connection to the system bus: " + e.getMessage());
        }
        if (impl_->queue.empty())
            return;
        // Callbacks may call the daemon, which can queue more signals: loop.
        while (!impl_->queue.empty()) {
            Signal s = std::move(impl_->queue.front());
            impl_->queue.pop_front();
            impl_->deliver(s);
        }
    }
}

} // namespace promiscd::client
