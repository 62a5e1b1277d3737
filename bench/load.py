#!/usr/bin/python3
"""The long run of the load test with accounting.

Runs the integration test Hostile.SustainedLoadKeepsTheInvariantAndLeavesNothing
(the real stack: a private bus with the shipped policy, polkitd, 50 ifb links
in a namespace, promiscd as its own process, python3-dbus and plain-socket
varlink clients) for longer and with more clients than CI does, and prints
what it measured: operations per second, p50/p99 latency, the samples of the
invariant, and the daemon's memory and descriptors as it goes and after.

usage: sudo bench/load.py [--build DIR] [--seconds N] [--clients N] [--as-root]
"""
import argparse
import os
import subprocess
import sys


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build", default="build", help="the meson build directory (default: build)")
    p.add_argument("--seconds", type=int, default=120, help="running time (default: 120)")
    p.add_argument("--clients", type=int, default=200,
                   help="lease clients, half on each transport (default: 200)")
    p.add_argument("--as-root", action="store_true",
                   help="clients run as root (polkit is never asked) instead of a user it allows")
    a = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/load.py: needs root (namespaces, a private bus, polkitd)")
    test = os.path.join(a.build, "tests", "integration", "itest_hostile")
    if not os.access(test, os.X_OK):
        sys.exit("bench/load.py: %s not found: build first (meson compile -C %s)" % (test, a.build))
    env = dict(os.environ, PROMISCD_LOAD_SECONDS=str(a.seconds),
               PROMISCD_LOAD_CLIENTS=str(a.clients), PROMISCD_LOAD_TRACE="1",
               PROMISCD_LOAD_AS_ROOT="1" if a.as_root else "0")
    r = subprocess.run([test, "--gtest_filter=Hostile.SustainedLoadKeepsTheInvariantAndLeavesNothing"],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    keep = ("load:", "sample ", "[       OK ]", "[  FAILED  ]", "Failure", "Which is", "Expected")
    for line in r.stdout.splitlines():
        if line.startswith(keep) or "Failure" in line:
            print(line)
    if r.returncode != 0:
        print("bench/load.py: the run failed; its whole output:\n" + r.stdout[-20000:])
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
