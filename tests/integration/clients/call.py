#!/usr/bin/python3
"""Call one method on promiscd with python3-dbus and print the outcome:
  OK <result as JSON>            or
  ERROR <dbus error name> <message>   (exit status 1)
then, when the call succeeded, one line for the descriptors it brought:
  NEWFDS <count> [<kind> <access>]...   (fdinfo.describe of each; a file
  descriptor in the reply is one of them)

usage: call.py PATH INTERFACE METHOD SIGNATURE [ARG...]
SIGNATURE lists the top-level argument types (simple types and a{sv}, which
takes its value as JSON: {"key": ["t", 5]}).
"""
import json
import sys

import dbus

sys.dont_write_bytecode = True  # (no __pycache__ in the source tree)
import fdinfo  # noqa: E402

BUS_NAME = "org.promiscd.Promisc1"


def convert(sig, arg):
    if sig == "s":
        return dbus.String(arg)
    if sig == "o":
        return dbus.ObjectPath(arg)
    if sig == "t":
        return dbus.UInt64(int(arg))
    if sig == "u":
        return dbus.UInt32(int(arg))
    if sig == "b":
        return dbus.Boolean(arg == "true")
    if sig == "a{sv}":
        out = {}
        for key, (vsig, value) in json.loads(arg).items():
            out[key] = convert(vsig, value)
        return dbus.Dictionary(out, signature="sv")
    raise SystemExit("call.py: unsupported signature " + sig)


def split_signature(sig):
    parts, i = [], 0
    while i < len(sig):
        if sig.startswith("a{sv}", i):
            parts.append("a{sv}")
            i += 5
        else:
            parts.append(sig[i])
            i += 1
    return parts


def main():
    path, iface, method, sig, *args = sys.argv[1:]
    sigs = split_signature(sig)
    values = [convert(s, a) for s, a in zip(sigs, args)]
    obj = dbus.SystemBus().get_object(BUS_NAME, path)
    call = obj.get_dbus_method(method, iface)
    before = fdinfo.open_fds()
    try:
        result = call(*values)
    except dbus.DBusException as e:
        print("ERROR", e.get_dbus_name(), e.get_dbus_message(), flush=True)
        return 1
    brought = sorted(fdinfo.open_fds() - before)
    # A file descriptor (OpenCapture's) has no JSON form: say what it is.
    print("OK", json.dumps(result, default=lambda o: "<%s>" % type(o).__name__), flush=True)
    print("NEWFDS", len(brought), *[fdinfo.describe(fd) for fd in brought], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
