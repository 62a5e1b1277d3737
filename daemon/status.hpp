// systemd's STATUS= line as a projection of the change stream: how many
// leases (and how many active), and on how many links promiscd set the flag.
// Sent only when the text changes; each change costs O(1).
#pragma once

#include "service/lease_service.hpp"

#include <functional>
#include <string>

namespace promiscd {

class Status final : public service::ChangeListener {
public:
    // `also` runs after every change (the daemon's idle check).
    Status(service::LeaseService& leases, std::function<void()> also = {});
    ~Status() override;
    Status(const Status&) = delete;
    Status& operator=(const Status&) = delete;

    void on_change(const service::Change& change) override;
    void update();
    const std::string& text() const { return last_; }

private:
    service::LeaseService& leases_;
    std::function<void()> also_;
    std::string last_;
};

} // namespace promiscd
