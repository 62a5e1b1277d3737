#!/usr/bin/python3
"""Many promiscd clients at once, written with python3-dbus (not the
project's code): N separate bus connections each ask for a lease on INTERFACE
at the same moment, and hold what they got until all have an answer.

usage: many_leases.py N INTERFACE
Prints one line:  OK <n> [ERROR <name> <n>]...
"""
import collections
import os
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

BUS_NAME = "org.promiscd.Promisc1"
ROOT = "/org/promiscd/Promisc1"


def main():
    n, interface = int(sys.argv[1]), sys.argv[2]
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    address = os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
    buses = [dbus.bus.BusConnection(address) for _ in range(n)]
    results = collections.Counter()
    loop = GLib.MainLoop()

    def done(key):
        results[key] += 1
        if sum(results.values()) == n:
            loop.quit()

    for bus in buses:
        manager = dbus.Interface(bus.get_object(BUS_NAME, ROOT, introspect=False),
                                 BUS_NAME + ".Manager")
        manager.AcquireLease(interface, dbus.Dictionary({}, signature="sv"),
                             reply_handler=lambda path: done("OK"),
                             error_handler=lambda e: done(e.get_dbus_name()),
                             timeout=120)
    loop.run()
    line = "OK %d" % results.pop("OK", 0)
    for name, count in sorted(results.items()):
        line += " ERROR %s %d" % (name, count)
    print(line, flush=True)


if __name__ == "__main__":
    sys.exit(main())
