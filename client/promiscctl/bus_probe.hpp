// Whether promiscd and polkitd can be reached on the system bus: what
// --transport=auto and the polkit agent decide on, before any connection
// to promiscd is made.
#pragma once

namespace promiscd::ctl {

// Whether the system bus is reachable and promiscd is on it or activatable.
bool dbus_available();
// Whether polkitd is on the system bus (or can be started there).
bool polkit_available();

} // namespace promiscd::ctl
