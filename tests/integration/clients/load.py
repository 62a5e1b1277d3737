#!/usr/bin/python3
"""Sustained load on promiscd from many clients, written with python3-dbus
and the standard library (not the project's code).

usage: load.py --varlink SOCKET --links A,B,... --seconds S
               [--dbus-clients N] [--varlink-clients M] [--captures K]
               [--ttl T] [--seed X]

Every client has its own connection (a bus connection of its own, or a
varlink socket) and loops: acquire a lease on a random link (ttl T), renew
it, release it. K capture clients (alternately D-Bus and varlink) loop:
open a capture with promisc on a random link, read it for a moment, stop
it. Each client has one call in flight at a time.

Commands on stdin:
  pause    stop starting calls; once none is in flight, print PAUSED
           (ignored once the end has begun: DONE follows instead)
  resume   go on (paused time does not count towards S)
At the end (S seconds of running time) it waits for the calls in flight,
closes every connection and prints:
  ERROR <op> <error name> <message>   for each unexpected error (the first 20)
  DONE ops=<n> seconds=<s> ops_per_s=<r> p50_ms=<x> p99_ms=<y> max_ms=<z>
       errors=<e> captures=<c>
(ops: acquire, renew and release calls; captures: captures opened and
stopped). Exit status 0 when there was no error.
"""
import argparse
import json
import os
import random
import socket
import sys
import time

import dbus
import dbus.bus
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib

BUS_NAME = "org.promiscd.Promisc1"
ROOT = "/org/promiscd/Promisc1"
MANAGER = BUS_NAME + ".Manager"
LEASE = BUS_NAME + ".Lease"
CAPTURE = BUS_NAME + ".Capture"
VL = "org.promiscd.promisc."


class Load:
    def __init__(self, args):
        self.args = args
        self.links = args.links.split(",")
        self.rng = random.Random(args.seed)
        self.latencies = []
        self.errors = []
        self.captures = 0
        self.inflight = 0
        self.paused = False
        self.stopping = False
        self.running_since = time.monotonic()
        self.ran = 0.0
        self.idle = []  # callbacks of clients waiting for a resume
        self.pending_input = b""
        self.loop = GLib.MainLoop()

    # -- bookkeeping
    def running_time(self):
        return self.ran + (0 if self.paused else time.monotonic() - self.running_since)

    def may_start(self, again):
        """True when a client may start its next call; otherwise keeps
        `again` for when it may."""
        if self.stopping or self.running_time() >= self.args.seconds:
            self.stopping = True
            self.check_end()
            return False
        if self.paused:
            self.idle.append(again)
            return False
        return True

    def started(self):
        self.inflight += 1
        return time.monotonic()

    def finished(self, t0, counted=True):
        self.inflight -= 1
        if counted:
            self.latencies.append(time.monotonic() - t0)
        if self.paused and self.inflight == 0 and not self.stopping:
            print("PAUSED", flush=True)
        self.check_end()

    def failed(self, op, name, message):
        self.errors.append((op, name, message))

    def check_end(self):
        if self.stopping and self.inflight == 0:
            GLib.idle_add(self.loop.quit)

    def command(self, source, condition):
        # Raw reads, split here: a buffered readline() could take two
        # commands from the descriptor and leave one where no watch sees it.
        data = os.read(sys.stdin.fileno(), 4096)
        if not data:
            return False
        self.pending_input += data
        while b"\n" in self.pending_input:
            line, self.pending_input = self.pending_input.split(b"\n", 1)
            self.obey(line.decode().strip())
        return True

    def obey(self, word):
        if self.stopping:
            pass  # the end has begun: connections close, DONE follows
        elif word == "pause" and not self.paused:
            self.ran += time.monotonic() - self.running_since
            self.paused = True
            if self.inflight == 0:
                print("PAUSED", flush=True)
        elif word == "resume" and self.paused:
            self.paused = False
            self.running_since = time.monotonic()
            waiting, self.idle = self.idle, []
            for again in waiting:
                GLib.idle_add(lambda a=again: a() and False)
            print("RESUMED", flush=True)

    def run(self):
        GLib.io_add_watch(sys.stdin, GLib.IO_IN | GLib.IO_HUP, self.command)
        address = os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
        clients = []
        for _ in range(self.args.dbus_clients):
            clients.append(DBusLeases(self, dbus.bus.BusConnection(address)))
        for _ in range(self.args.varlink_clients):
            clients.append(VarlinkLeases(self, self.args.varlink))
        for i in range(self.args.captures):
            if i % 2 == 0:
                clients.append(DBusCaptures(self, dbus.bus.BusConnection(address)))
            else:
                clients.append(VarlinkCaptures(self, self.args.varlink))
        print("STARTED", len(clients), flush=True)
        self.running_since = time.monotonic()
        for c in clients:
            GLib.idle_add(lambda c=c: c.next() and False)
        self.loop.run()
        for c in clients:
            c.close()
        ran = self.running_time()
        lat = sorted(self.latencies)

        def pct(p):
            return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else 0.0

        for op, name, message in self.errors[:20]:
            print("ERROR", op, name, message, flush=True)
        print("DONE ops=%d seconds=%.1f ops_per_s=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f "
              "errors=%d captures=%d" % (len(lat), ran, len(lat) / ran if ran else 0, pct(0.50),
                                         pct(0.99), 1000 * lat[-1] if lat else 0.0,
                                         len(self.errors), self.captures), flush=True)
        return 0 if not self.errors else 1


class DBusLeases:
    """acquire → renew → release, on its own bus connection."""

    def __init__(self, load, conn):
        self.load, self.conn, self.path = load, conn, None

    def call(self, path, iface, method, sig, args, done, op):
        t0 = self.load.started()

        def ok(*result):
            self.load.finished(t0)
            done(*result)

        def err(e):
            self.load.finished(t0)
            self.load.failed(op, e.get_dbus_name(), e.get_dbus_message())
            self.path = None
            self.next()

        self.conn.call_async(BUS_NAME, path, iface, method, sig, args, ok, err, timeout=60)

    def next(self):
        if not self.load.may_start(self.next):
            return
        if self.path is None:
            link = self.load.rng.choice(self.load.links)
            self.call(ROOT, MANAGER, "AcquireLease", "sa{sv}",
                      (link, {"ttl": dbus.UInt64(self.load.args.ttl)}), self.acquired, "acquire")
        else:
            self.call(self.path, LEASE, "Renew", "t", (dbus.UInt64(self.load.args.ttl),),
                      self.renewed, "renew")

    def acquired(self, path):
        self.path = path
        self.next()

    def renewed(self):
        self.call(self.path, LEASE, "Release", "", (), self.released, "release")

    def released(self):
        self.path = None
        self.next()

    def close(self):
        self.conn.close()


class VarlinkConnection:
    """One varlink connection, one call at a time, on the GLib loop."""

    def __init__(self, load, path):
        self.load = load
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.sock.setblocking(False)
        self.buf = b""
        self.fds = []
        self.pending = None
        self.watch = GLib.io_add_watch(self.sock.fileno(), GLib.IO_IN | GLib.IO_HUP,
                                       self.readable)

    def call(self, method, params, done, op, counted=True):
        t0 = self.load.started()
        self.pending = (done, op, t0, counted)
        self.sock.sendall(json.dumps({"method": VL + method, "parameters": params}).encode()
                          + b"\0")

    def readable(self, source, condition):
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, 65536, 8)
        except BlockingIOError:
            return True
        self.fds.extend(fds)
        if not data:
            if self.pending:
                done, op, t0, counted = self.pending
                self.pending = None
                self.load.finished(t0, counted)
                self.load.failed(op, "EOF", "the daemon closed the connection")
            return False
        self.buf += data
        while b"\0" in self.buf:
            raw, self.buf = self.buf.split(b"\0", 1)
            msg = json.loads(raw)
            if self.pending is None:
                self.load.failed("reply", "Unexpected", raw.decode(errors="replace")[:200])
                continue
            done, op, t0, counted = self.pending
            self.pending = None
            self.load.finished(t0, counted)
            if "error" in msg:
                self.load.failed(op, msg["error"], json.dumps(msg.get("parameters", {})))
                done(None)
            else:
                done(msg.get("parameters", {}))
        return True

    def take_fd(self):
        return self.fds.pop(0) if self.fds else None

    def close(self):
        GLib.source_remove(self.watch)
        self.sock.close()
        for fd in self.fds:
            os.close(fd)


class VarlinkLeases:
    def __init__(self, load, path):
        self.load, self.conn, self.id = load, VarlinkConnection(load, path), None

    def next(self):
        if not self.load.may_start(self.next):
            return
        if self.id is None:
            link = self.load.rng.choice(self.load.links)
            self.conn.call("Acquire", {"interface": link, "ttl": self.load.args.ttl},
                           self.acquired, "acquire")
        else:
            self.conn.call("Renew", {"id": self.id, "ttl": self.load.args.ttl}, self.renewed,
                           "renew")

    def acquired(self, reply):
        self.id = reply["lease"]["id"] if reply else None
        self.next()

    def renewed(self, reply):
        if reply is None:
            self.id = None
            return self.next()
        self.conn.call("Release", {"id": self.id}, self.released, "release")

    def released(self, reply):
        self.id = None
        self.next()

    def close(self):
        self.conn.close()


class Reader:
    """Drains a capture's descriptor for a moment, then calls `then`."""

    def __init__(self, load, fd, then):
        self.load, self.fd, self.then = load, fd, then
        os.set_blocking(fd, False)
        self.watch = GLib.io_add_watch(fd, GLib.IO_IN | GLib.IO_HUP, self.drain)
        GLib.timeout_add(load.rng.randint(200, 600), self.stop)

    def drain(self, source, condition):
        try:
            return bool(os.read(self.fd, 65536))
        except BlockingIOError:
            return True
        except OSError:
            return False

    def stop(self):
        if self.load.paused and not self.load.stopping:
            self.load.idle.append(self.stop)  # nothing changes while paused
            return False
        GLib.source_remove(self.watch)
        self.then()
        return False

    def close(self):
        os.close(self.fd)


class DBusCaptures:
    def __init__(self, load, conn):
        self.load, self.conn, self.reader = load, conn, None

    def next(self):
        if not self.load.may_start(self.next):
            return
        link = self.load.rng.choice(self.load.links)
        t0 = self.load.started()

        def opened(fd, path):
            self.load.finished(t0, counted=False)
            self.reader = Reader(self.load, fd.take(), lambda: self.stop(path))

        def err(e):
            self.load.finished(t0, counted=False)
            self.load.failed("open-capture", e.get_dbus_name(), e.get_dbus_message())
            self.next()

        self.conn.call_async(BUS_NAME, ROOT, MANAGER, "OpenCapture", "sa{sv}",
                             (link, {"promisc": True}), opened, err, timeout=60)

    def stop(self, path):
        t0 = self.load.started()

        def done(*_):
            self.load.finished(t0, counted=False)
            self.load.captures += 1
            self.reader.close()
            self.reader = None
            self.next()

        def err(e):
            self.load.failed("stop-capture", e.get_dbus_name(), e.get_dbus_message())
            done()

        self.conn.call_async(BUS_NAME, path, CAPTURE, "Stop", "", (), done, err, timeout=60)

    def close(self):
        if self.reader:
            self.reader.close()
        self.conn.close()


class VarlinkCaptures:
    def __init__(self, load, path):
        self.load, self.conn, self.reader = load, VarlinkConnection(load, path), None

    def next(self):
        if not self.load.may_start(self.next):
            return
        link = self.load.rng.choice(self.load.links)
        self.conn.call("OpenCapture", {"interface": link, "promisc": True}, self.opened,
                       "open-capture", counted=False)

    def opened(self, reply):
        fd = self.conn.take_fd()
        if reply is None or fd is None:
            if reply is not None:
                self.load.failed("open-capture", "NoDescriptor", "a reply without its fd")
            return self.next()
        self.reader = Reader(self.load, fd, lambda: self.stop(reply["capture"]))

    def stop(self, capture):
        def done(reply):
            self.load.captures += 1
            self.reader.close()
            self.reader = None
            self.next()

        self.conn.call("StopCapture", {"id": capture}, done, "stop-capture", counted=False)

    def close(self):
        if self.reader:
            self.reader.close()
        self.conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--varlink", required=True)
    p.add_argument("--links", required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--dbus-clients", type=int, default=100)
    p.add_argument("--varlink-clients", type=int, default=100)
    p.add_argument("--captures", type=int, default=10)
    p.add_argument("--ttl", type=int, default=60)
    p.add_argument("--seed", type=int, default=1)
    DBusGMainLoop(set_as_default=True)
    return Load(p.parse_args()).run()


if __name__ == "__main__":
    sys.exit(main())
