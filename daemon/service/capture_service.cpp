#include "service/capture_service.hpp"

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
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace promiscd::service {

using capture::BpfProgram;
using capture::FilterError;
using capture::FinishReason;
using capture::UniqueFd;
using core::Error;
using core::ErrorCode;
using core::quote;

namespace {

// 2 MiB, 64 KiB, 1000 bytes: sizes as the configuration would give them.
std::string size_text(std::size_t bytes) {
    if (bytes >= (std::size_t{1} << 20) && bytes % (std::size_t{1} << 20) == 0)
        return std::to_string(bytes >> 20) + " MiB";
    if (bytes >= 1024 && bytes % 1024 == 0)
        return std::to_string(bytes >> 10) + " KiB";
    return std::to_string(bytes) + " bytes";
}

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::system_category(), what);
}

bool no_such_device(const std::system_error& e) {
    const int code = e.code().value();
    return code == ENODEV || code == ENXIO;
}

// Frames of these link types start with an Ethernet header (loopback's is
// zeroed); every other link is captured cooked (SLL2).
bool needs_cooked(std::uint16_t hatype) {
    return hatype != ARPHRD_ETHER && hatype != ARPHRD_LOOPBACK;
}

// Format "socket": the filtered, locked packet socket the client keeps. It
// gets no ring (the client reads with recvmsg or maps its own), and it is
// bound only after the filter is locked, so it never queues an unfiltered
// frame. Blocking, as a client that reads with recvmsg expects.
UniqueFd open_client_socket(int ifindex, bool cooked, const BpfProgram& program) {
    UniqueFd fd(socket(AF_PACKET, (cooked ? SOCK_DGRAM : SOCK_RAW) | SOCK_CLOEXEC, 0));
    if (!fd)
        throw_errno(cooked ? "socket(AF_PACKET, SOCK_DGRAM)" : "socket(AF_PACKET)");
    capture::attach_filter(fd.get(), program);
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = ifindex;
    if (bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        throw_errno("bind to interface index " + std::to_string(ifindex));
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
    if (pipe2(fds, O_CLOEXEC) != 0)
        throw_errno("pipe2");
    Pipe p{UniqueFd(fds[0]), UniqueFd(fds[1])};
    if (fcntl(p.write.get(), F_SETFL, O_NONBLOCK) != 0)
        throw_errno("fcntl(O_NONBLOCK) on the capture pipe");
    // Best effort: over pipe-max-size or the user's pipe quota the kernel
    // refuses, and the default capacity still works.
    if (size > 0)
        (void)fcntl(p.write.get(), F_SETPIPE_SZ, size);
    return p;
}

std::string describe_capture(const CaptureInfo& c) {
    std::string s = "capture " + std::to_string(c.id) + " on " + quote(c.interface) + " (" +
                    std::string(to_string(c.format));
    if (!c.filter.empty())
        s += ", filter " + quote(c.filter);
    return s + ")";
}

} // namespace

CaptureService::CaptureService(LeaseService& leases, Options options)
    : leases_(leases), options_(std::move(options)), compiler_(leases.event(), options_.compiler) {
    sd_event_source* s = nullptr;
    // Captures end before the loop returns, while the front ends can still
    // tell their owners.
    int r = sd_event_add_exit(leases_.event(), &s, &CaptureService::on_exit, this);
    if (r < 0)
        throw std::system_error(-r, std::generic_category(), "cannot add the capture exit handler");
    exit_.reset(s);
    sd_event_source_set_description(s, "capture-shutdown");
    leases_.changes().subscribe(this);
    leases_.on_namespace_gone = [this](std::uint64_t inode) { namespace_gone(inode); };
}

void CaptureService::namespace_gone(std::uint64_t inode) {
    std::vector<std::uint64_t> tickets;
    for (const auto& [t, p] : opening_)
        if (p.request.netns_inode == inode)
            tickets.push_back(t);
    for (auto t : tickets) {
        Opened done = std::move(opening_.at(t).done);
        const std::string spec = opening_.at(t).request.netns;
        cancel_open(t);
        done(Error(ErrorCode::NoSuchInterface, "network namespace " + quote(spec) +
                                                   " went away while the capture was opening"));
    }
    std::vector<CaptureId> ids;
    for (const auto& [id, c] : captures_)
        if (c.info.netns == inode)
            ids.push_back(id);
    for (CaptureId id : ids)
        stop(id, FinishReason::NetnsGone);
}

CaptureService::~CaptureService() {
    leases_.changes().unsubscribe(this);
    leases_.on_namespace_gone = nullptr;
    for (auto& [t, p] : opening_)
        compiler_.cancel(p.compile_ticket);
    opening_.clear();
    shutdown();
    doomed_.clear();
}

void CaptureService::validate(const CaptureRequest& r) const {
    if (r.interface != kAnyInterface)
        core::validate_interface_name(core::split_link(r.interface).name);
    if (r.snaplen == 0 || r.snaplen > kMaxSnaplen)
        throw Error(ErrorCode::InvalidArgument, "option 'snaplen' is " + std::to_string(r.snaplen) +
                                                    "; it must be between 1 and " +
                                                    std::to_string(kMaxSnaplen));
    if (r.filter.size() > kMaxFilterLength)
        throw Error(ErrorCode::InvalidArgument, "option 'filter' is longer than " +
                                                    std::to_string(kMaxFilterLength) + " bytes");
    if (r.format == CaptureFormat::Socket) {
        // The client reads the socket itself: the daemon neither counts its
        // frames nor maps a ring for it.
        if (r.count != 0)
            throw Error(ErrorCode::InvalidArgument,
                        "option 'count' does not apply to format 'socket'");
        if (r.buffer_size)
            throw Error(ErrorCode::InvalidArgument,
                        "option 'buffer_size' does not apply to format 'socket' (the client "
                        "sets up its own ring or receive buffer)");
    }
    const std::size_t max = leases_.arbiter().limits().max_capture_buffer;
    if (r.buffer_size && (*r.buffer_size < kMinCaptureBuffer || *r.buffer_size > max))
        throw Error(ErrorCode::InvalidArgument,
                    "option 'buffer_size' is " + std::to_string(*r.buffer_size) +
                        " bytes; it must be between " + std::to_string(kMinCaptureBuffer) +
                        " and " + std::to_string(max));
}

std::size_t CaptureService::memory_of(const CaptureRequest& r) const {
    if (r.format == CaptureFormat::Socket)
        return 0;
    return r.buffer_size.value_or(kDefaultCaptureBuffer);
}

void CaptureService::check_quota(std::uint32_t uid, const CaptureRequest& request) const {
    const auto& limits = leases_.arbiter().limits();
    unsigned held = 0;
    for (const auto& [id, c] : captures_)
        held += c.info.owner.uid == uid;
    for (const auto& [t, p] : opening_)
        held += p.owner.uid == uid;
    if (held >= limits.captures_per_uid)
        throw Error(ErrorCode::QuotaExceeded, "uid " + std::to_string(uid) + " already has " +
                                                  std::to_string(held) + " captures (limit " +
                                                  std::to_string(limits.captures_per_uid) + ")");
    const std::size_t all = captures_.size() + opening_.size();
    if (all >= limits.captures_total)
        throw Error(ErrorCode::QuotaExceeded, "the daemon already runs " + std::to_string(all) +
                                                  " captures (limit " +
                                                  std::to_string(limits.captures_total) + ")");
    const std::size_t want = memory_of(request);
    if (memory_ + want > limits.capture_memory_total)
        throw Error(ErrorCode::QuotaExceeded,
                    "captures already hold " + size_text(memory_) + " of kernel ring buffers; " +
                        size_text(want) + " more would pass the limit of " +
                        size_text(limits.capture_memory_total) + " (capture_memory_total)");
}

std::uint64_t CaptureService::open(const CaptureRequest& request, const core::Owner& owner,
                                   Opened done) {
    std::uint64_t ticket = 0;
    bool cooked = false;
    try {
        validate(request);
        check_quota(owner.uid, request);
        if (request.interface == kAnyInterface) {
            cooked = true;
        } else {
            auto link = leases_.arbiter().link_by_name(request.interface);
            if (!link)
                throw Error(ErrorCode::NoSuchInterface, "interface " +
                                                            core::describe_link(request.interface) +
                                                            " does not exist");
            cooked = needs_cooked(link->info.type);
        }
        ticket = next_ticket_++;
        PendingOpen p{request, owner, std::move(done), 0, memory_of(request)};
        memory_ += p.memory;
        // Its namespace stays watched until the capture ends.
        leases_.hold_namespace(request.netns_inode);
        opening_.emplace(ticket, std::move(p));
    } catch (const Error& e) {
        done(e);
        return 0;
    }
    capture::FilterJob job{request.filter, cooked, request.snaplen};
    auto ct = compiler_.compile(
        owner.uid, std::move(job),
        [this, ticket](capture::FilterCompiler::Result r) { compiled(ticket, std::move(r)); });
    auto it = opening_.find(ticket);
    if (it == opening_.end())
        return 0; // answered from inside compile()
    it->second.compile_ticket = ct;
    return ticket;
}

void CaptureService::cancel_open(std::uint64_t ticket) {
    auto it = opening_.find(ticket);
    if (it == opening_.end())
        return;
    compiler_.cancel(it->second.compile_ticket);
    memory_ -= it->second.memory;
    leases_.drop_namespace(it->second.request.netns_inode);
    opening_.erase(it);
}

void CaptureService::compiled(std::uint64_t ticket, capture::FilterCompiler::Result result) {
    auto it = opening_.find(ticket);
    if (it == opening_.end())
        return;
    PendingOpen p = std::move(it->second);
    opening_.erase(it);
    memory_ -= p.memory;
    if (auto* fe = std::get_if<FilterError>(&result)) {
        leases_.drop_namespace(p.request.netns_inode);
        p.done(Error(ErrorCode::InvalidFilter, fe->what()));
        return;
    }
    const auto& program = std::get<BpfProgram>(result);
    // The world may have moved while the filter compiled: check again.
    std::variant<OpenedCapture, Error> out = Error(ErrorCode::Failed, "not opened");
    try {
        check_quota(p.owner.uid, p.request);
        bool cooked = true;
        if (p.request.interface != kAnyInterface) {
            auto link = leases_.arbiter().link_by_name(p.request.interface);
            if (!link)
                throw Error(ErrorCode::NoSuchInterface,
                            "interface " + core::describe_link(p.request.interface) +
                                " does not exist");
            cooked = needs_cooked(link->info.type);
        }
        out = open_now(p.request, p.owner, program, cooked, p.memory);
    } catch (const Error& e) {
        leases_.drop_namespace(p.request.netns_inode);
        out = e;
    }
    p.done(std::move(out));
}

OpenedCapture CaptureService::open_now(const CaptureRequest& request, const core::Owner& owner,
                                       const BpfProgram& program, bool cooked, std::size_t memory) {
    const bool any = request.interface == kAnyInterface;
    int ifindex = 0;      // promiscd's index
    int kernel_index = 0; // the kernel's, in the link's namespace
    if (!any) {
        const auto link = leases_.arbiter().link_by_name(request.interface);
        ifindex = link->info.ifindex;
        kernel_index = link->info.netns != 0 ? link->info.netns_ifindex : ifindex;
    }

    const CaptureId id = next_id_++;
    UniqueFd client;
    std::optional<capture::PacketSocket> socket;
    UniqueFd pipe_write;
    try {
        if (request.format == CaptureFormat::Socket) {
            // A packet socket sees the namespace it was made in.
            leases_.run_in_namespace(request.netns_inode, [&] {
                client = open_client_socket(kernel_index, cooked, program);
            });
        } else {
            capture::PacketSocketOptions o;
            o.ifindex = kernel_index;
            o.filter = request.filter;
            o.snaplen = request.snaplen;
            o.buffer_size = request.buffer_size.value_or(kDefaultCaptureBuffer);
            o.cooked = cooked;
            o.program = program;
            o.program_cooked = cooked;
            leases_.run_in_namespace(request.netns_inode, [&] { socket.emplace(o); });
            Pipe p = open_pipe(options_.pipe_size);
            client = std::move(p.read);
            pipe_write = std::move(p.write);
        }
    } catch (const FilterError& e) {
        throw Error(ErrorCode::InvalidFilter, e.what());
    } catch (const std::invalid_argument& e) {
        throw Error(ErrorCode::InvalidArgument, e.what());
    } catch (const std::system_error& e) {
        if (no_such_device(e))
            throw Error(ErrorCode::NoSuchInterface,
                        "interface " + core::describe_link(request.interface) + " does not exist");
        throw Error(ErrorCode::Failed,
                    "cannot capture on " + quote(request.interface) + ": " + e.what());
    }

    Capture c;
    c.info.id = id;
    c.info.interface = request.interface;
    c.info.ifindex = ifindex;
    c.info.netns = request.netns_inode;
    c.info.filter = request.filter;
    c.info.format = request.format;
    c.info.owner = owner;
    c.memory = memory;
    // Only now, with the socket filtered and bound, is promiscuous mode worth
    // asking for; a refusal (quota) closes everything opened above.
    if (request.promisc && !any) {
        core::LeaseRequest lr;
        lr.interface = request.interface;
        lr.owner = owner;
        lr.reason = "capture " + std::to_string(id);
        lr.capture = true;
        lr.netns = request.netns; // crash recovery reopens it to clear the flag
        c.info.lease = leases_.acquire(lr);
    }
    try {
        if (request.format != CaptureFormat::Socket) {
            c.relay = std::make_unique<capture::Relay>(
                leases_.event(), std::move(*socket), std::move(pipe_write),
                capture::StreamInfo{.format = request.format == CaptureFormat::Pcap
                                                  ? capture::StreamFormat::Pcap
                                                  : capture::StreamFormat::Pcapng,
                                    .interface = core::display_name(request.interface),
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
    memory_ += memory;
    CaptureInfo info = c.info;
    captures_.emplace(id, std::move(c));
    arm_ticker();
    leases_.changes().publish(CaptureStarted{std::move(info)});
    return {id, std::move(client)};
}

void CaptureService::release_lease(Capture& c, FinishReason why) {
    if (!c.info.lease)
        return;
    // Cleared first: the release comes back here as a LeaseEnded change.
    const core::LeaseId lease = *c.info.lease;
    c.info.lease.reset();
    core::EndReason reason = core::EndReason::Released;
    if (why == FinishReason::OwnerGone)
        reason = core::EndReason::OwnerGone;
    else if (why == FinishReason::DaemonShutdown)
        reason = core::EndReason::DaemonShutdown;
    else if (why == FinishReason::NetnsGone)
        reason = core::EndReason::NetnsGone;
    try {
        leases_.release(lease, reason);
    } catch (const Error& e) {
        log::warning("capture " + std::to_string(c.info.id) + ": cannot release lease " +
                     std::to_string(lease) + ": " + e.what());
    }
}

bool CaptureService::stop(CaptureId id, FinishReason reason) {
    auto it = captures_.find(id);
    if (it == captures_.end() || it->second.ending)
        return false;
    Capture& c = it->second;
    c.ending = true;
    // Promiscuous mode ends now, not when the reader has taken the tail.
    release_lease(c, reason);
    if (c.relay)
        c.relay->finish(reason); // may call finished() at once
    else
        finished(id, reason);
    return true;
}

void CaptureService::finished(CaptureId id, FinishReason reason) {
    auto it = captures_.find(id);
    if (it == captures_.end())
        return;
    Capture c = std::move(it->second);
    captures_.erase(it);
    memory_ -= c.memory;
    release_lease(c, reason);
    leases_.drop_namespace(c.info.netns);
    if (c.relay) {
        c.info.counters = c.relay->counters();
        doomed_.push_back(std::move(c.relay));
        schedule_reap();
    }
    log::notice(describe_capture(c.info) + " finished: " + std::string(to_string(reason)) + " (" +
                std::to_string(c.info.counters.packets) + " frames, " +
                std::to_string(c.info.counters.bytes) + " bytes, " +
                std::to_string(c.info.counters.drops) + " dropped)");
    if (captures_.empty() && ticker_)
        sd_event_source_set_enabled(ticker_.get(), SD_EVENT_OFF);
    leases_.changes().publish(CaptureFinished{c.info, reason});
}

void CaptureService::owner_gone(const std::string& transport, const std::string& owner_id) {
    std::vector<std::uint64_t> tickets;
    for (const auto& [t, p] : opening_)
        if (p.owner.transport == transport && p.owner.id == owner_id)
            tickets.push_back(t);
    for (auto t : tickets)
        cancel_open(t);
    std::vector<CaptureId> ids;
    for (const auto& [id, c] : captures_)
        if (c.info.owner.transport == transport && c.info.owner.id == owner_id)
            ids.push_back(id);
    for (CaptureId id : ids)
        stop(id, FinishReason::OwnerGone);
}

void CaptureService::shutdown() {
    std::vector<CaptureId> ids;
    for (const auto& [id, c] : captures_)
        ids.push_back(id);
    for (CaptureId id : ids) {
        auto it = captures_.find(id);
        if (it == captures_.end())
            continue;
        it->second.ending = true;
        release_lease(it->second, FinishReason::DaemonShutdown);
        if (it->second.relay)
            // Keeps the reason of a capture that was already ending.
            it->second.relay->finish_now(FinishReason::DaemonShutdown);
        else
            finished(id, FinishReason::DaemonShutdown);
    }
}

const CaptureInfo* CaptureService::find(CaptureId id) const {
    auto it = captures_.find(id);
    return it == captures_.end() ? nullptr : &it->second.info;
}

std::vector<CaptureInfo> CaptureService::captures() const {
    std::vector<CaptureInfo> out;
    for (const auto& [id, c] : captures_)
        out.push_back(c.info);
    return out;
}

std::optional<capture::RelayCounters> CaptureService::counters(CaptureId id) {
    auto it = captures_.find(id);
    if (it == captures_.end())
        return std::nullopt;
    return it->second.relay ? it->second.relay->counters() : capture::RelayCounters{};
}

void CaptureService::on_change(const Change& change) {
    if (const auto* ended = std::get_if<LeaseEnded>(&change)) {
        if (!ended->lease.capture)
            return;
        for (auto& [id, c] : captures_) {
            if (c.info.lease != ended->lease.id)
                continue;
            c.info.lease.reset();
            switch (ended->reason) {
            case core::EndReason::OwnerGone:
                stop(id, FinishReason::OwnerGone);
                break;
            case core::EndReason::DaemonShutdown:
                stop(id, FinishReason::DaemonShutdown);
                break;
            default:
                // Revoked by an administrator or expired: the capture goes
                // on, without promiscuous mode.
                log::notice(describe_capture(c.info) + " goes on without its lease " +
                            std::to_string(ended->lease.id) + " (" +
                            std::string(core::to_string(ended->reason)) + ")");
                break;
            }
            return; // stop() may have changed the map
        }
    } else if (const auto* removed = std::get_if<LinkRemoved>(&change)) {
        std::vector<CaptureId> ids;
        for (const auto& [id, c] : captures_)
            if (c.info.ifindex == removed->ifindex && c.info.ifindex != 0)
                ids.push_back(id);
        for (CaptureId id : ids)
            stop(id, FinishReason::LinkRemoved);
    }
}

void CaptureService::arm_ticker() {
    const std::uint64_t now = loop_now(leases_.event());
    if (!ticker_) {
        sd_event_source* s = nullptr;
        if (sd_event_add_time(leases_.event(), &s, CLOCK_MONOTONIC,
                              now + options_.counter_interval_usec, 0, &CaptureService::on_tick,
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

int CaptureService::on_tick(sd_event_source* s, std::uint64_t usec, void* userdata) {
    auto* self = static_cast<CaptureService*>(userdata);
    self->tick();
    if (!self->captures_.empty()) {
        sd_event_source_set_time(s, usec + self->options_.counter_interval_usec);
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    }
    return 0;
}

void CaptureService::tick() {
    std::vector<CaptureInfo> changed;
    for (auto& [id, c] : captures_) {
        if (!c.relay || c.relay->ended())
            continue;
        const capture::RelayCounters now = c.relay->counters();
        if (now != c.info.counters) {
            c.info.counters = now;
            changed.push_back(c.info);
        }
    }
    for (auto& info : changed)
        leases_.changes().publish(CaptureCounters{std::move(info)});
}

void CaptureService::schedule_reap() {
    if (!reaper_) {
        sd_event_source* s = nullptr;
        if (sd_event_add_defer(leases_.event(), &s, &CaptureService::on_reap, this) < 0)
            return; // freed with the service instead; the fds are closed already
        reaper_.reset(s);
        sd_event_source_set_description(s, "capture-reaper");
    }
    sd_event_source_set_enabled(reaper_.get(), SD_EVENT_ONESHOT);
}

int CaptureService::on_reap(sd_event_source*, void* userdata) {
    static_cast<CaptureService*>(userdata)->doomed_.clear();
    return 0;
}

int CaptureService::on_exit(sd_event_source*, void* userdata) {
    static_cast<CaptureService*>(userdata)->shutdown();
    return 0;
}

} // namespace promiscd::service
