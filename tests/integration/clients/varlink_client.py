#!/usr/bin/python3
"""A minimal varlink client (python3 standard library only, not the
project's code), for tests.

usage: varlink_client.py SOCKET [--more] [--oneway] METHOD [PARAMETERS_JSON]
       varlink_client.py SOCKET --raw BYTES_AS_PYTHON_LITERAL

Prints every reply as one line:  REPLY <json>   or   ERROR <name> <json>
and  FD <n> <kind> <access>  for each file descriptor received with a reply
(fdinfo.describe: e.g. "FD 4 pipe r"; with --peek-fd
also  HEAD <hex>  for its first four bytes).
Then keeps the connection open and reads commands from stdin:
  call [--more] METHOD [PARAMETERS_JSON]   another call on the same connection
  quit / end of input                      close the connection
With --exit, it closes after the first final reply instead.
"""
import json
import os
import re
import select
import socket
import sys

sys.dont_write_bytecode = True  # (no __pycache__ in the source tree)
import fdinfo  # noqa: E402


def say(*words):
    # One write for the whole line: with PYTHONUNBUFFERED set, print() writes
    # each word on its own, and a test reading meanwhile sees half a line.
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


class Client:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.finals = 0
        self.fds = []

    def send(self, method, params=None, more=False, oneway=False):
        msg = {"method": method}
        if params is not None:
            msg["parameters"] = params
        if more:
            msg["more"] = True
        if oneway:
            msg["oneway"] = True
        self.sock.sendall(json.dumps(msg).encode() + b"\0")

    def read_replies(self):
        """Reads what is available; returns False on EOF."""
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, 65536, 16)
        except ConnectionResetError:
            return False
        for fd in fds:
            say("FD", fd, fdinfo.describe(fd))
            if PEEK:
                # The first bytes of a capture stream (pcapng starts 0a0d0d0a).
                ready, _, _ = select.select([fd], [], [], 5)
                say("HEAD", os.read(fd, 4).hex() if ready else "none")
            self.fds.append(fd)
        if not data:
            return False
        self.buf += data
        while b"\0" in self.buf:
            raw, self.buf = self.buf.split(b"\0", 1)
            msg = json.loads(raw)
            if "error" in msg:
                say("ERROR", msg["error"], json.dumps(msg.get("parameters", {})))
            else:
                say("REPLY", json.dumps(msg.get("parameters", {}), sort_keys=True))
            if not msg.get("continues"):
                self.finals += 1
        return True


def parse_call(args):
    more = oneway = False
    while args and args[0].startswith("--"):
        if args[0] == "--more":
            more = True
        elif args[0] == "--oneway":
            oneway = True
        args = args[1:]
    params = json.loads(args[1]) if len(args) > 1 else None
    return args[0], params, more, oneway


PEEK = False


def main():
    global PEEK
    path, *args = sys.argv[1:]
    PEEK = "--peek-fd" in args
    args = [a for a in args if a != "--peek-fd"]
    exit_after = "--exit" in args
    args = [a for a in args if a != "--exit"]
    c = Client(path)
    say("CONNECTED")
    try:
        if args and args[0] == "--raw":
            c.sock.sendall(eval(args[1]))  # noqa: S307 - test input from the test itself
        elif args:
            method, params, more, oneway = parse_call(args)
            c.send(method, params, more, oneway)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may refuse and close first; its answer is still readable
    if exit_after:
        while c.finals == 0 and c.read_replies():
            pass
        return 0 if c.finals else 1
    stdin_open = True
    while True:
        watch = [c.sock] + ([sys.stdin] if stdin_open else [])
        ready, _, _ = select.select(watch, [], [])
        if c.sock in ready and not c.read_replies():
            say("EOF")
            return 0
        if sys.stdin in ready:
            line = sys.stdin.readline()
            if not line or line.strip() == "quit":
                return 0
            m = re.match(r"call\s+(--more\s+)?(\S+)\s*(.*)$", line.strip())
            if m:
                params = json.loads(m.group(3)) if m.group(3) else None
                c.send(m.group(2), params, more=bool(m.group(1)))


if __name__ == "__main__":
    sys.exit(main())
