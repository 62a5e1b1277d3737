#!/usr/bin/python3
"""Print every signal promiscd emits, one line each, flushed (python3-dbus):
  READY                                  subscribed
  ADDED <path> <interface...>            ObjectManager.InterfacesAdded
  REMOVED <path> <interface...>          ObjectManager.InterfacesRemoved
  CHANGED <path> <prop>=<value> ...      Properties.PropertiesChanged
  ENDED <path> <reason>                  Lease.Ended
  FLAG <interface> on|off <by>           Manager.FlagChanged
  CONFLICT <interface> <clears>          Manager.Conflict
"""
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

BUS_NAME = "org.promiscd.Promisc1"


def say(*words):
    # One write for the whole line: with PYTHONUNBUFFERED set, print() writes
    # each word on its own, and a test reading meanwhile sees half a line.
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def main():
    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()

    def on_signal(*args, member=None, path=None, **_):
        if member == "InterfacesAdded":
            say("ADDED", str(args[0]), *sorted(str(i) for i in args[1].keys()))
        elif member == "InterfacesRemoved":
            say("REMOVED", str(args[0]), *[str(i) for i in args[1]])
        elif member == "PropertiesChanged":
            say("CHANGED", path, *sorted("%s=%s" % (k, v) for k, v in args[1].items()))
        elif member == "Ended":
            say("ENDED", path, str(args[0]))
        elif member == "Conflict":
            say("CONFLICT", str(args[0]), int(args[1]))
        elif member == "FlagChanged":
            say("FLAG", str(args[0]), "on" if args[1] else "off", str(args[2]))

    bus.add_signal_receiver(on_signal, bus_name=BUS_NAME, member_keyword="member",
                            path_keyword="path")
    # Round trip to the bus so the match is in place before READY.
    bus.get_object("org.freedesktop.DBus", "/org/freedesktop/DBus").GetId(
        dbus_interface="org.freedesktop.DBus")
    say("READY")
    GLib.MainLoop().run()


if __name__ == "__main__":
    sys.exit(main())
