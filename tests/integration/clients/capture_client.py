#!/usr/bin/python3
"""A promiscd capture client written with python3-dbus (not the project's own
code): opens captures, receives the fd (a dbus.types.UnixFd, .take()), and
reports what happens.

usage: capture_client.py INTERFACE [OPTIONS_JSON] [--out FILE] [--no-read]
                         [--open N] [--socket-frames N] [--tshark OUT]
                         [--hand-off OUT]

OPTIONS_JSON is the a{sv} as {"key": ["sig", value]}, e.g.
  {"filter": ["s", "udp port 9"], "count": ["t", 100]}

Prints one line per event on stdout:
  CAPTURE <path> <fd kind>       OpenCapture succeeded ("pipe" or "socket")
  ERROR <dbus error name> <message>   OpenCapture failed (exit status 1)
  FINISHED <path> <reason>       the capture's Finished signal
  REMOVED <path>                 InterfacesRemoved for the capture
  EOF <bytes>                    the stream ended; with --out, all of it is in FILE
  TSHARK <status>                with --tshark OUT: tshark read the fd to its end
  HANDED <pid>                   with --hand-off OUT: `cat >OUT` (own session) reads the fd
  STOPPED / CLOSED / FAILED <name> <message>   answers to stdin commands
With --open N, opens N captures on one connection (quota tests) and prints a
CAPTURE or ERROR line for each.
With --socket-frames N (format "socket"): receives N frames with recvmsg and
prints FRAME <hex>, then SOTYPE <raw|dgram>, then tries to replace the locked
filter: DETACH <errno name> and ATTACH <errno name> ("OK" if it worked).
Commands on stdin: stop, close (close the fd without reading it), read
(start reading after --no-read), quit.
"""
import argparse
import ctypes
import errno
import json
import os
import select
import socket
import struct
import subprocess
import sys

import dbus
import dbus.mainloop.glib
from gi.repository import GLib

BUS_NAME = "org.promiscd.Promisc1"
ROOT = "/org/promiscd/Promisc1"
CAPTURE = BUS_NAME + ".Capture"

SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27


def say(*words):
    # One write for the whole line: with PYTHONUNBUFFERED set, print() writes
    # each word on its own, and a test reading meanwhile sees half a line.
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def convert(sig, value):
    return {"s": dbus.String, "u": dbus.UInt32, "t": dbus.UInt64, "b": dbus.Boolean,
            "i": dbus.Int32, "y": dbus.Byte}[sig](value)


def try_replace_filter(sock):
    def attempt(fn):
        try:
            fn()
            return "OK"
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e.errno))

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8),
                    ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]

    accept_all = (SockFilter * 1)(SockFilter(0x06, 0, 0, 0xFFFFFFFF))  # ret #-1
    fprog = struct.pack("HL", 1, ctypes.addressof(accept_all))
    say("DETACH", attempt(lambda: sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)))
    say("ATTACH", attempt(lambda: sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("interface")
    ap.add_argument("options", nargs="?", default="{}")
    ap.add_argument("--out")
    ap.add_argument("--no-read", action="store_true")
    ap.add_argument("--open", type=int, default=0)
    ap.add_argument("--socket-frames", type=int, default=0)
    ap.add_argument("--tshark")
    ap.add_argument("--hand-off")
    args = ap.parse_args()

    dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
    bus = dbus.SystemBus()
    manager = dbus.Interface(bus.get_object(BUS_NAME, ROOT), BUS_NAME + ".Manager")
    options = dbus.Dictionary({k: convert(s, v) for k, (s, v) in json.loads(args.options).items()},
                              signature="sv")

    def on_finished(reason, path=None):
        say("FINISHED", path, str(reason))

    def on_removed(path, interfaces):
        if CAPTURE in interfaces:
            say("REMOVED", str(path))

    bus.add_signal_receiver(on_finished, signal_name="Finished", dbus_interface=CAPTURE,
                            bus_name=BUS_NAME, path_keyword="path")
    bus.add_signal_receiver(on_removed, signal_name="InterfacesRemoved",
                            dbus_interface="org.freedesktop.DBus.ObjectManager",
                            bus_name=BUS_NAME)

    kept = []
    for _ in range(max(args.open, 1)):
        try:
            fd, path = manager.OpenCapture(args.interface, options)
        except dbus.DBusException as e:
            say("ERROR", e.get_dbus_name(), e.get_dbus_message())
            if args.open == 0:
                return 1
            continue
        fd = fd.take()
        kind = os.readlink("/proc/self/fd/%d" % fd).split(":")[0]
        say("CAPTURE", str(path), kind)
        kept.append((fd, path))
    if args.open:
        # Hold them until told to quit.
        for line in sys.stdin:
            if line.strip() == "quit":
                break
        return 0

    fd, path = kept[0]
    capture = dbus.Interface(bus.get_object(BUS_NAME, path), CAPTURE)

    if args.socket_frames:
        sock = socket.socket(fileno=fd)
        for _ in range(args.socket_frames):
            ready, _, _ = select.select([sock], [], [], 30)
            if not ready:
                say("TIMEOUT")
                break
            data, _, _, _ = sock.recvmsg(65536)
            say("FRAME", data.hex())
        stype = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
        say("SOTYPE", "raw" if stype == socket.SOCK_RAW else "dgram")
        try_replace_filter(sock)

    if args.tshark:
        # tshark reads the daemon's pipe itself, as its standard input.
        with open(args.tshark, "wb") as result:
            status = subprocess.call(["tshark", "-r", "-", "-T", "json", "-x"], stdin=fd,
                                     stdout=result, stderr=subprocess.DEVNULL)
        os.close(fd)
        fd = -1
        say("TSHARK", status)

    if args.hand_off:
        # Another process reads the stream from now on (as when a tool hands
        # the fd to Wireshark); it outlives this one, the capture's owner.
        with open(args.hand_off, "wb") as result:
            reader = subprocess.Popen(["cat"], stdin=fd, stdout=result, start_new_session=True)
        os.close(fd)
        fd = -1
        say("HANDED", reader.pid)

    out = open(args.out, "wb") if args.out else None
    state = {"fd": fd, "bytes": 0, "watch": None}
    loop = GLib.MainLoop()

    def on_readable(source, condition):
        try:
            data = os.read(state["fd"], 1 << 20)
        except BlockingIOError:
            return True
        if not data:
            if out:
                out.close()
            say("EOF", state["bytes"])
            os.close(state["fd"])
            state["fd"] = -1
            state["watch"] = None
            return False
        state["bytes"] += len(data)
        if out:
            out.write(data)
        return True

    def start_reading():
        if state["watch"] is None and state["fd"] >= 0 and not args.socket_frames:
            state["watch"] = GLib.io_add_watch(state["fd"], GLib.IO_IN | GLib.IO_HUP, on_readable)

    if not args.no_read:
        start_reading()

    def command(cmd):
        try:
            if cmd[0] == "stop":
                capture.Stop()
                say("STOPPED")
            elif cmd[0] == "close":
                if state["watch"] is not None:
                    GLib.source_remove(state["watch"])
                    state["watch"] = None
                os.close(state["fd"])
                state["fd"] = -1
                say("CLOSED")
            elif cmd[0] == "read":
                start_reading()
            elif cmd[0] == "quit":
                loop.quit()
                return False
        except dbus.DBusException as e:
            say("FAILED", e.get_dbus_name(), e.get_dbus_message())
        return True

    pending = {"text": ""}

    def on_stdin(source, condition):
        # os.read, not readline(): a buffered reader could keep a second
        # command that arrived with the first, and the watch would not fire
        # for it again.
        data = os.read(sys.stdin.fileno(), 4096)
        if not data:
            loop.quit()
            return False
        pending["text"] += data.decode()
        *lines, pending["text"] = pending["text"].split("\n")
        for line in lines:
            if line.split() and not command(line.split()):
                return False
        return True

    GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, on_stdin)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
