#include "capture/capture_manager.hpp"

#include "capture/filter.hpp"
#include "capture/packet_socket.hpp"
#include "core/names.hpp"
#include "log.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <pcap/dlt.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace promiscd::capture {

using core::Error;
using core::ErrorCode;
using core::quote;

namespace {

// A pcapng option holds at most 65535 bytes; if_filter carries the filter.
constexpr std::size_t kMaxFilterLength = 16384;

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::system_category(), what);
}

bool no_such_device(const std::system_error& e) {
    const int code = e.code().value();
    return code == ENODEV || code == ENXIO;
}

// Format "socket": the filtered, locked packet socket the client keeps. It
// gets no ring (the client reads with recvmsg or maps its own), and it is
// bound only after the filter is locked, so it never queues an unfiltered
// frame. Blocking, as a client that reads with recvmsg expects.
UniqueFd open_client_socket(int ifindex, const std::string& filter, std::uint32_t snaplen) {
    UniqueFd fd(socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0));
    if (!fd) {
        throw_errno("socket(AF_PACKET)");
    }
    bool cooked = ifindex == 0;
    if (!cooked) {
        ifreq ifr{};
        ifr.ifr_ifindex = ifindex;
        if (ioctl(fd.get(), SIOCGIFNAME, &ifr) != 0) {
            throw_errno("no interface with index " + std::to_string(ifindex));
        }
        if (ioctl(fd.get(), SIOCGIFHWADDR, &ifr) != 0) {
            throw_errno(std::string("SIOCGIFHWADDR for interface '") + ifr.ifr_name + "'");
        }
        cooked =
            ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER && ifr.ifr_hwaddr.sa_family != ARPHRD_LOOPBACK;
    }
    if (cooked) {
        fd.reset(socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
        if (!fd) {
            throw_errno("socket(AF_PACKET, SOCK_DGRAM)");
        }
    }
    attach_filter(fd.get(), cooked ? compile_cooked_filter(filter, snaplen)
                                   : compile_filter(filter, DLT_EN10MB, snaplen));
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = ifindex;
    if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        throw_errno("bind to interface index " + std::to_string(ifindex));
    }
    return fd;
}

struct Pipe {
    UniqueFd read;
    UniqueFd write;
};

Pipe open_pipe(int size) {
    int fds[2];
    // Only the daemon's end is non-blocking: the client's end is a file
    // description of its own, and tools like tshark expect blocking reads.
    if (pipe2(fds, O_CLOEXEC) != 0) {
        throw_errno("pipe2");
    }
    Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
    if (fcntl(p.write.get(), F_SETFL, O_NONBLOCK) != 0) {
        throw_errno("fcntl(O_NONBLOCK) on the capture pipe");
    }
    // Best effort: over pipe-max-size or the user's pipe quota the kernel
    // refuses, and the default capacity still works.
    if (size > 0) {
        (void)fcntl(p.write.get(), F_SETPIPE_SZ, size);
    }
    return p;
}

std::string describe_capture(const CaptureInfo& c) {
    std::string s = "capture " + std::to_string(c.id) + " on " + quote(c.interface) + " (" +
                    std::string(to_string(c.format));
    if (!c.filter.empty()) {
        s += ", filter " + quote(c.filter);
    }
    return s + ")";
}

} // namespace

std::string_view to_string(Format format) {
    switch (format) {
    case Format::Pcapng:
        return "pcapng";
    case Format::Pcap:
        return "pcap";
    case Format::Socket:
        return "socket";
    }
    return "pcapng";
}

std::optional<Format> parse_format(std::string_view name) {
    for (Format f : {Format::Pcapng, Format::Pcap, Format::Socket}) {
        if (name == to_string(f)) {
            return f;
        }
    }
    return std::nullopt;
}

CaptureManager::CaptureManager(Service& service, Options options)
    : service_(service), options_(std::move(options)) {
    sd_event_source* s = nullptr;
    // Captures end before the loop returns, while the front ends can still
    // tell their owners.
    int r = sd_event_add_exit(service_.event(), &s, &CaptureManager::on_exit, this);
    if (r < 0) {
        throw std::system_error(-r, std::generic_category(), "cannot add the capture exit handler");
    }
    exit_.reset(s);
    sd_event_source_set_description(s, "capture-shutdown");
    service_.add_listener(this);
}

CaptureManager::~CaptureManager() {
    service_.remove_listener(this);
    // Listeners are gone or going; nobody is told any more.
    listeners_.clear();
    shutdown();
    doomed_.clear();
}

void CaptureManager::validate(const CaptureRequest& r) const {
    if (r.interface != kAnyInterface) {
        core::validate_interface_name(r.interface);
    }
    if (r.snaplen == 0 || r.snaplen > kMaxSnaplen) {
        throw Error(ErrorCode::InvalidArgument, "option 'snaplen' is " + std::to_string(r.snaplen) +
                                                    "; it must be between 1 and " +
                                                    std::to_string(kMaxSnaplen));
    }
    if (r.filter.size() > kMaxFilterLength) {
        throw Error(ErrorCode::InvalidArgument, "option 'filter' is longer than " +
                                                    std::to_string(kMaxFilterLength) + " bytes");
    }
    if (r.format == Format::Socket) {
        // The client reads the socket itself: the daemon neither counts its
        // frames nor maps a ring for it.
        if (r.count != 0) {
            throw Error(ErrorCode::InvalidArgument,
                        "option 'count' does not apply to format 'socket'");
        }
        if (r.buffer_size) {
            throw Error(ErrorCode::InvalidArgument,
                        "option 'buffer_size' does not apply to format 'socket' (the client "
                        "sets up its own ring or receive buffer)");
        }
    }
    const std::size_t max = service_.arbiter().limits().max_capture_buffer;
    if (r.buffer_size && (*r.buffer_size < kMinCaptureBuffer || *r.buffer_size > max)) {
        throw Error(ErrorCode::InvalidArgument,
                    "option 'buffer_size' is " + std::to_string(*r.buffer_size) +
                        " bytes; it must be between " + std::to_string(kMinCaptureBuffer) +
                        " and " + std::to_string(max));
    }
}

OpenedCapture CaptureManager::open(const CaptureRequest& request, const core::Owner& owner) {
    validate(request);
    const unsigned limit = service_.arbiter().limits().captures_per_uid;
    const auto held = static_cast<unsigned>(
        std::count_if(captures_.begin(), captures_.end(),
                      [&](const auto& kv) { return kv.second.info.owner.uid == owner.uid; }));
    if (held >= limit) {
        throw Error(ErrorCode::QuotaExceeded, "uid " + std::to_string(owner.uid) + " already has " +
                                                  std::to_string(held) + " captures (limit " +
                                                  std::to_string(limit) + ")");
    }
    const bool any = request.interface == kAnyInterface;
    int ifindex = 0;
    if (!any) {
        const auto link = service_.arbiter().link_by_name(request.interface);
        if (!link) {
            throw Error(ErrorCode::NoSuchInterface,
                        "interface " + quote(request.interface) + " does not exist");
        }
        ifindex = link->info.ifindex;
    }

    const CaptureId id = next_id_++;
    UniqueFd client;
    std::optional<PacketSocket> socket;
    UniqueFd pipe_write;
    try {
        if (request.format == Format::Socket) {
            client = open_client_socket(ifindex, request.filter, request.snaplen);
        } else {
            socket.emplace(PacketSocketOptions{
                .ifindex = ifindex,
                .filter = request.filter,
                .snaplen = request.snaplen,
                .buffer_size = request.buffer_size.value_or(kDefaultCaptureBuffer)});
            Pipe p = open_pipe(options_.pipe_size);
            client = std::move(p.read);
            pipe_write = std::move(p.write);
        }
    } catch (const FilterError& e) {
        throw Error(ErrorCode::InvalidFilter, e.what());
    } catch (const std::invalid_argument& e) {
        throw Error(ErrorCode::InvalidArgument, e.what());
    } catch (const std::system_error& e) {
        if (no_such_device(e)) {
            throw Error(ErrorCode::NoSuchInterface,
                        "interface " + quote(request.interface) + " does not exist");
        }
        throw Error(ErrorCode::Failed,
                    "cannot capture on " + quote(request.interface) + ": " + e.what());
    }

    Capture c;
    c.info.id = id;
    c.info.interface = request.interface;
    c.info.ifindex = ifindex;
    c.info.filter = request.filter;
    c.info.format = request.format;
    c.info.owner = owner;
    // Only now, with the socket filtered and bound, is promiscuous mode worth
    // asking for; a refusal (quota) closes everything opened above.
    if (request.promisc && !any) {
        core::LeaseRequest lr;
        lr.interface = request.interface;
        lr.owner = owner;
        lr.reason = "capture " + std::to_string(id);
        c.info.lease = service_.acquire(lr);
    }
    try {
        if (request.format != Format::Socket) {
            c.relay = std::make_unique<Relay>(
                service_.event(), std::move(*socket), std::move(pipe_write),
                StreamInfo{.format = request.format == Format::Pcap ? StreamFormat::Pcap
                                                                    : StreamFormat::Pcapng,
                           .interface = request.interface,
                           .filter = request.filter,
                           .application = options_.application,
                           .count = request.count,
                           .settle_usec = options_.settle_usec},
                [this, id](FinishReason reason) { finished(id, reason); });
        }
    } catch (const std::exception& e) {
        release_lease(c, FinishReason::Error);
        throw Error(ErrorCode::Failed,
                    "cannot relay the capture on " + quote(request.interface) + ": " + e.what());
    }
    log::notice(describe_capture(c.info) + " opened for " + core::describe(owner) +
                (c.info.lease ? ", holding lease " + std::to_string(*c.info.lease) : ""));
    captures_.emplace(id, std::move(c));
    arm_ticker();
    return {id, std::move(client)};
}

void CaptureManager::release_lease(Capture& c, FinishReason why) {
    if (!c.info.lease) {
        return;
    }
    // Cleared first: the release comes back here as a LeaseEnded command.
    const core::LeaseId lease = *c.info.lease;
    c.info.lease.reset();
    core::EndReason reason = core::EndReason::Released;
    if (why == FinishReason::OwnerGone) {
        reason = core::EndReason::OwnerGone;
    } else if (why == FinishReason::DaemonShutdown) {
        reason = core::EndReason::DaemonShutdown;
    }
    try {
        service_.release(lease, reason);
    } catch (const Error& e) {
        log::warning("capture " + std::to_string(c.info.id) + ": cannot release lease " +
                     std::to_string(lease) + ": " + e.what());
    }
}

bool CaptureManager::stop(CaptureId id, FinishReason reason) {
    auto it = captures_.find(id);
    if (it == captures_.end() || it->second.ending) {
        return false;
    }
    Capture& c = it->second;
    c.ending = true;
    // Promiscuous mode ends now, not when the reader has taken the tail.
    release_lease(c, reason);
    if (c.relay) {
        c.relay->finish(reason); // may call finished() at once
    } else {
        finished(id, reason);
    }
    return true;
}

void CaptureManager::finished(CaptureId id, FinishReason reason) {
    auto it = captures_.find(id);
    if (it == captures_.end()) {
        return;
    }
    Capture c = std::move(it->second);
    captures_.erase(it);
    release_lease(c, reason);
    if (c.relay) {
        c.info.counters = c.relay->counters();
        doomed_.push_back(std::move(c.relay));
        schedule_reap();
    }
    log::notice(describe_capture(c.info) + " finished: " + std::string(to_string(reason)) + " (" +
                std::to_string(c.info.counters.packets) + " frames, " +
                std::to_string(c.info.counters.bytes) + " bytes, " +
                std::to_string(c.info.counters.drops) + " dropped)");
    for (auto* l : std::vector<CaptureListener*>(listeners_)) {
        l->on_capture_finished(c.info, reason);
    }
    if (captures_.empty() && ticker_) {
        sd_event_source_set_enabled(ticker_.get(), SD_EVENT_OFF);
    }
}

void CaptureManager::owner_gone(const std::string& transport, const std::string& owner_id) {
    std::vector<CaptureId> ids;
    for (const auto& [id, c] : captures_) {
        if (c.info.owner.transport == transport && c.info.owner.id == owner_id) {
            ids.push_back(id);
        }
    }
    for (CaptureId id : ids) {
        stop(id, FinishReason::OwnerGone);
    }
}

void CaptureManager::shutdown() {
    std::vector<CaptureId> ids;
    for (const auto& [id, c] : captures_) {
        ids.push_back(id);
    }
    for (CaptureId id : ids) {
        auto it = captures_.find(id);
        if (it == captures_.end()) {
            continue;
        }
        it->second.ending = true;
        release_lease(it->second, FinishReason::DaemonShutdown);
        if (it->second.relay) {
            // Keeps the reason of a capture that was already ending.
            it->second.relay->finish_now(FinishReason::DaemonShutdown);
        } else {
            finished(id, FinishReason::DaemonShutdown);
        }
    }
}

const CaptureInfo* CaptureManager::find(CaptureId id) const {
    auto it = captures_.find(id);
    return it == captures_.end() ? nullptr : &it->second.info;
}

std::vector<CaptureInfo> CaptureManager::captures() const {
    std::vector<CaptureInfo> out;
    for (const auto& [id, c] : captures_) {
        out.push_back(c.info);
    }
    return out;
}

std::optional<RelayCounters> CaptureManager::counters(CaptureId id) {
    auto it = captures_.find(id);
    if (it == captures_.end()) {
        return std::nullopt;
    }
    return it->second.relay ? it->second.relay->counters() : RelayCounters{};
}

void CaptureManager::on_command(const core::Command& command) {
    const auto* ended = std::get_if<core::LeaseEnded>(&command);
    if (!ended) {
        return;
    }
    for (auto& [id, c] : captures_) {
        if (c.info.lease != ended->lease.id) {
            continue;
        }
        c.info.lease.reset();
        switch (ended->reason) {
        case core::EndReason::OwnerGone:
            stop(id, FinishReason::OwnerGone);
            break;
        case core::EndReason::DaemonShutdown:
            stop(id, FinishReason::DaemonShutdown);
            break;
        default:
            // Revoked by an administrator or released by its owner: the
            // capture goes on, without promiscuous mode.
            log::notice(describe_capture(c.info) + " goes on without its lease " +
                        std::to_string(ended->lease.id) + " (" +
                        std::string(core::to_string(ended->reason)) + ")");
            break;
        }
        return; // stop() may have changed the map
    }
}

void CaptureManager::on_link_removed(int ifindex, const std::string& /*name*/) {
    std::vector<CaptureId> ids;
    for (const auto& [id, c] : captures_) {
        if (c.info.ifindex == ifindex && c.info.ifindex != 0) {
            ids.push_back(id);
        }
    }
    for (CaptureId id : ids) {
        stop(id, FinishReason::LinkRemoved);
    }
}

void CaptureManager::arm_ticker() {
    std::uint64_t now = 0;
    if (sd_event_now(service_.event(), CLOCK_MONOTONIC, &now) < 0) {
        return;
    }
    if (!ticker_) {
        sd_event_source* s = nullptr;
        if (sd_event_add_time(service_.event(), &s, CLOCK_MONOTONIC,
                              now + options_.counter_interval_usec, 0, &CaptureManager::on_tick,
                              this) < 0) {
            log::warning("cannot add the capture counter timer; counters are not reported live");
            return;
        }
        ticker_.reset(s);
        sd_event_source_set_description(s, "capture-counters");
        return;
    }
    int enabled = SD_EVENT_OFF;
    sd_event_source_get_enabled(ticker_.get(), &enabled);
    if (enabled == SD_EVENT_OFF) {
        sd_event_source_set_time(ticker_.get(), now + options_.counter_interval_usec);
        sd_event_source_set_enabled(ticker_.get(), SD_EVENT_ONESHOT);
    }
}

int CaptureManager::on_tick(sd_event_source* s, std::uint64_t usec, void* userdata) {
    auto* self = static_cast<CaptureManager*>(userdata);
    self->tick();
    if (!self->captures_.empty()) {
        sd_event_source_set_time(s, usec + self->options_.counter_interval_usec);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    }
    return 0;
}

void CaptureManager::tick() {
    std::vector<CaptureInfo> changed;
    for (auto& [id, c] : captures_) {
        if (!c.relay || c.relay->ended()) {
            continue;
        }
        const RelayCounters now = c.relay->counters();
        if (now != c.info.counters) {
            c.info.counters = now;
            changed.push_back(c.info);
        }
    }
    for (const auto& info : changed) {
        for (auto* l : std::vector<CaptureListener*>(listeners_)) {
            l->on_capture_counters(info);
        }
    }
}

void CaptureManager::schedule_reap() {
    if (!reaper_) {
        sd_event_source* s = nullptr;
        if (sd_event_add_defer(service_.event(), &s, &CaptureManager::on_reap, this) < 0) {
            return; // freed with the manager instead; the fds are closed already
        }
        reaper_.reset(s);
        sd_event_source_set_description(s, "capture-reaper");
    }
    sd_event_source_set_enabled(reaper_.get(), SD_EVENT_ONESHOT);
}

int CaptureManager::on_reap(sd_event_source*, void* userdata) {
    static_cast<CaptureManager*>(userdata)->doomed_.clear();
    return 0;
}

int CaptureManager::on_exit(sd_event_source*, void* userdata) {
    static_cast<CaptureManager*>(userdata)->shutdown();
    return 0;
}

} // namespace promiscd::capture
