#include "service/changes.hpp"

#include <algorithm>

namespace promiscd::service {

std::string_view to_string(CaptureFormat format) {
    switch (format) {
    case CaptureFormat::Pcapng:
        return "pcapng";
    case CaptureFormat::Pcap:
        return "pcap";
    case CaptureFormat::Socket:
        return "socket";
    }
    return "pcapng";
}

std::optional<CaptureFormat> parse_format(std::string_view name) {
    for (CaptureFormat f : {CaptureFormat::Pcapng, CaptureFormat::Pcap, CaptureFormat::Socket})
        if (name == to_string(f))
            return f;
    return std::nullopt;
}

void ChangeStream::unsubscribe(ChangeListener* l) {
    // Nulled rather than erased: a delivery may be walking the list.
    std::replace(listeners_.begin(), listeners_.end(), l, static_cast<ChangeListener*>(nullptr));
    if (!delivering_)
        std::erase(listeners_, nullptr);
}

ChangeStream::ChangeStream(sd_event* event) {
    if (sd_event_add_defer(event, &defer_, &ChangeStream::on_defer, this) < 0) {
        defer_ = nullptr; // delivered at once instead
        return;
    }
    sd_event_source_set_priority(defer_, SD_EVENT_PRIORITY_IMPORTANT);
    sd_event_source_set_description(defer_, "change-stream");
    sd_event_source_set_enabled(defer_, SD_EVENT_OFF);
}

ChangeStream::~ChangeStream() {
    if (defer_)
        sd_event_source_disable_unref(defer_);
}

int ChangeStream::on_defer(sd_event_source*, void* userdata) {
    static_cast<ChangeStream*>(userdata)->flush();
    return 0;
}

void ChangeStream::publish(Change change) {
    queue_.push_back(std::move(change));
    if (delivering_)
        return;
    if (defer_) {
        sd_event_source_set_enabled(defer_, SD_EVENT_ONESHOT);
        return;
    }
    flush();
}

void ChangeStream::flush() {
    if (delivering_ || queue_.empty())
        return;
    if (defer_)
        sd_event_source_set_enabled(defer_, SD_EVENT_OFF);
    delivering_ = true;
    for (size_t i = 0; i < queue_.size(); ++i) {
        ++published_;
        // By index: a listener may subscribe (growing the vector) meanwhile.
        for (size_t k = 0; k < listeners_.size(); ++k)
            if (listeners_[k])
                listeners_[k]->on_change(queue_[i]);
    }
    queue_.clear();
    delivering_ = false;
    std::erase(listeners_, nullptr);
}

} // namespace promiscd::service
