#!/usr/bin/python3
"""A promiscd client written with python3-dbus (not the project's own code):
takes a lease, holds it while connected, and reports what happens.

usage: lease_holder.py INTERFACE [--ttl SEC] [--reason TEXT] [--wait]
                                 [--netns NETNS] [--no-interactive]

Prints one line per event on stdout:
  LEASE <path> <state>          the lease was granted
  ERROR <dbus error name> <message>   AcquireLease failed (exit status 1)
  STATE <state>                 PropertiesChanged on the lease
  EXPIRES <usec>                PropertiesChanged on Expires
  ENDED <reason> [k=v...]       the lease's Ended signal and its details
  RELEASED / RENEWED / REVOKED / FAILED <name> <message>   answers to stdin commands
Commands on stdin, one per line: release, renew SEC, revoke REASON (the
Manager's RevokeLease on its own lease), quit.
"""
import argparse
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

BUS_NAME = "org.promiscd.Promisc1"
ROOT = "/org/promiscd/Promisc1"


def say(*words):
    # One write for the whole line: with PYTHONUNBUFFERED set, print() writes
    # each word on its own, and a test reading meanwhile sees half a line.
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("interface")
    ap.add_argument("--ttl", type=int)
    ap.add_argument("--reason")
    ap.add_argument("--wait", action="store_true")
    ap.add_argument("--netns")
    args = ap.parse_args()

    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    manager = dbus.Interface(bus.get_object(BUS_NAME, ROOT), BUS_NAME + ".Manager")
    options = {}
    if args.ttl is not None:
        options["ttl"] = dbus.UInt64(args.ttl)
    if args.reason is not None:
        options["reason"] = dbus.String(args.reason)
    if args.wait:
        options["wait"] = dbus.Boolean(True)
    if args.netns is not None:
        options["netns"] = dbus.String(args.netns)
    try:
        path = manager.AcquireLease(args.interface, dbus.Dictionary(options, signature="sv"))
    except dbus.DBusException as e:
        say("ERROR", e.get_dbus_name(), e.get_dbus_message())
        return 1

    loop = GLib.MainLoop()
    # Follow the well-known name: after a daemon restart the lease is adopted
    # at the same path by the new owner of the name.
    obj = bus.get_object(BUS_NAME, path, follow_name_owner_changes=True)
    lease = dbus.Interface(obj, BUS_NAME + ".Lease")
    props = dbus.Interface(obj, "org.freedesktop.DBus.Properties")

    def on_changed(iface, changed, invalidated):
        if "State" in changed:
            say("STATE", str(changed["State"]))
        if "Expires" in changed:
            say("EXPIRES", int(changed["Expires"]))

    def on_ended(reason, details=None):
        extra = ["%s=%s" % (k, details[k]) for k in sorted(details or {})]
        say("ENDED", str(reason), *extra)

    props.connect_to_signal("PropertiesChanged", on_changed)
    lease.connect_to_signal("Ended", on_ended)
    say("LEASE", str(path), str(props.Get(BUS_NAME + ".Lease", "State")))

    def on_stdin(source, condition):
        line = sys.stdin.readline()
        if not line:
            loop.quit()
            return False
        cmd = line.split()
        try:
            if cmd[0] == "release":
                lease.Release()
                say("RELEASED")
            elif cmd[0] == "renew":
                lease.Renew(dbus.UInt64(int(cmd[1])))
                say("RENEWED")
            elif cmd[0] == "revoke":
                manager.RevokeLease(path, " ".join(cmd[1:]))
                say("REVOKED")
            elif cmd[0] == "quit":
                loop.quit()
                return False
        except dbus.DBusException as e:
            say("FAILED", e.get_dbus_name(), e.get_dbus_message())
        return True

    GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_stdin)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
