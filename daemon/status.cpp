#include "status.hpp"

#include <systemd/sd-daemon.h>

namespace promiscd {

Status::Status(service::LeaseService& leases, std::function<void()> also)
    : leases_(leases), also_(std::move(also)) {
    leases_.changes().subscribe(this);
}

Status::~Status() {
    leases_.changes().unsubscribe(this);
}

void Status::on_change(const service::Change&) {
    update();
}

void Status::update() {
    const auto& a = leases_.arbiter();
    std::string text = std::to_string(a.lease_count()) + " leases (" +
                       std::to_string(a.active_count()) + " active), promiscuous mode set on " +
                       std::to_string(a.daemon_set_links().size()) + " links";
    if (text != last_) {
        last_ = text;
        sd_notify(0, ("STATUS=" + text).c_str());
    }
    if (also_)
        also_();
}

} // namespace promiscd
