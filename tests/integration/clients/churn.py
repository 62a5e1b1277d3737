#!/usr/bin/python3
"""Acquire and release leases as fast as promiscd answers (python3-dbus), one
chain of calls per interface, all chains in flight at once: the daemon then
reads several requests in one turn of its loop, and makes many changes
before it reads their echoes from the kernel.

usage: churn.py ROUNDS INTERFACE...

Prints DONE <pairs> when every chain made ROUNDS Acquire+Release pairs, or
ERROR <dbus error name> <message> (exit status 1) at the first failure.
"""
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

BUS_NAME = "org.promiscd.Promisc1"
ROOT = "/org/promiscd/Promisc1"


def main():
    rounds = int(sys.argv[1])
    interfaces = sys.argv[2:]
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    manager = dbus.Interface(bus.get_object(BUS_NAME, ROOT), BUS_NAME + ".Manager")
    loop = GLib.MainLoop()
    state = {"pairs": 0, "running": len(interfaces), "failed": False}

    def fail(err):
        if not state["failed"]:
            state["failed"] = True
            print("ERROR", err.get_dbus_name(), err.get_dbus_message(), flush=True)
        loop.quit()

    def chain(interface, left):
        if left == 0:
            state["running"] -= 1
            if state["running"] == 0:
                loop.quit()
            return

        def released():
            state["pairs"] += 1
            chain(interface, left - 1)

        def acquired(path):
            lease = dbus.Interface(bus.get_object(BUS_NAME, path), BUS_NAME + ".Lease")
            lease.Release(reply_handler=released, error_handler=fail)

        manager.AcquireLease(interface, dbus.Dictionary({"reason": "churn"}, signature="sv"),
                             reply_handler=acquired, error_handler=fail)

    for interface in interfaces:
        chain(interface, rounds)
    loop.run()
    if state["failed"]:
        sys.exit(1)
    print("DONE", state["pairs"], flush=True)


if __name__ == "__main__":
    main()
