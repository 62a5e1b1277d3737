#!/usr/bin/python3
"""Capture benchmark: CPU time per captured frame, and loss, for promiscd and
the tools it competes with. Needs root (network namespaces, packet sockets).

    sudo bench/run.py --build build

For each frame size (64 and 1500 bytes) and each capturer, a sender in one
network namespace (pinned to CPU 0) sends as fast as it can over a veth pair
for a fixed time; the capturer runs in the other namespace:
  bare      bench/bare_relay (TPACKET_V3 ring -> pcapng on a pipe) | cat >/dev/null
  promiscd  promiscd pcapng capture; bench/capture_sink opens it over D-Bus
            and hands the pipe to cat >/dev/null
  tcpdump   tcpdump -w - | cat >/dev/null
  dumpcap   dumpcap -w - | cat >/dev/null
Every capturer gets a 4 MiB kernel buffer. Two placements:
  own core   capturer and reader pinned to CPU 1: the CPU time they use
             (from /proc/PID/task/*/schedstat, nanoseconds) per captured frame,
             and the loss (frames sent but not captured);
  shared     capturer and reader pinned to CPU 0, with the sender: the loss.
Medians of --runs runs. Prints a Markdown report (machine, command, tables).
"""
import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

BUS_NAME = "org.promiscd.Promisc1"
TOOLS = ["bare", "promiscd", "tcpdump", "dumpcap"]
BUFFER_BYTES = 4 << 20


def sh(*argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw).stdout


def cpu_ns(pids):
    """Time on CPU, in ns, of every thread of these processes."""
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir("/proc/%d/task" % pid):
                with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                    total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


class Stack:
    """Two namespaces joined by a veth pair, a private bus, and promiscd."""

    def __init__(self, build, tmp):
        self.tmp = tmp
        tag = str(os.getpid())
        self.ns_snd, self.ns_cap = "pdbs" + tag, "pdbc" + tag
        self.procs = []
        sh("ip", "netns", "add", self.ns_snd)
        sh("ip", "netns", "add", self.ns_cap)
        for ns in (self.ns_snd, self.ns_cap):
            # No IPv6: nothing but the benchmark's frames on the link.
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "-n", self.ns_snd, "link", "add", "name", "bsnd", "type", "veth", "peer",
           "name", "bcap", "netns", self.ns_cap)
        sh("ip", "-n", self.ns_snd, "link", "set", "bsnd", "up")
        sh("ip", "-n", self.ns_cap, "link", "set", "bcap", "up")
        self.mac = sh("ip", "netns", "exec", self.ns_cap, "cat",
                      "/sys/class/net/bcap/address").strip()

        socket = os.path.join(tmp, "bus")
        config = os.path.join(tmp, "bus.conf")
        with open(config, "w") as f:
            f.write("""<busconfig><type>system</type><listen>unix:path=%s</listen>
<auth>EXTERNAL</auth><policy context="default"><allow user="*"/><allow own="*"/>
<allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/></policy>
</busconfig>""" % socket)
        self.bus = subprocess.Popen(["dbus-daemon", "--config-file=" + config, "--nofork"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(self.bus)
        self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS="unix:path=" + socket)
        wait_for(lambda: os.path.exists(socket))
        # uid 0 needs no polkit: none runs here.
        self.daemon = subprocess.Popen(
            ["ip", "netns", "exec", self.ns_cap, os.path.join(build, "daemon", "promiscd"),
             "--state-dir=" + tmp, "--varlink=" + os.path.join(tmp, "io.promiscd"),
             "--log-target=console", "--log-level=warning"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "log"), "w"))
        self.procs.append(self.daemon)
        wait_for(lambda: subprocess.run(
            ["busctl", "--system", "status", BUS_NAME], env=self.env,
            capture_output=True).returncode == 0)

    def close(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for ns in (self.ns_snd, self.ns_cap):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def wait_for(pred, timeout=10):
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise RuntimeError("timed out waiting for the benchmark stack")
        time.sleep(0.02)


def start_capturer(tool, stack, build, cpu):
    """(processes to measure, function that stops them and returns frames captured)."""
    ns = ["ip", "netns", "exec", stack.ns_cap, "taskset", "-c", str(cpu)]
    cat = None
    if tool == "promiscd":
        sh("taskset", "-a", "-pc", str(cpu), str(stack.daemon.pid))
        sink = subprocess.Popen(
            ["taskset", "-c", str(cpu), os.path.join(build, "bench", "capture_sink"), "bcap",
             str(BUFFER_BYTES)], env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        line = sink.stderr.readline()  # "capturing PATH CAT_PID" once the capture is open
        if "capturing" not in line:
            raise RuntimeError("capture_sink: " + line + sink.stderr.read())
        time.sleep(0.2)
        measured = [stack.daemon.pid, sink.pid, int(line.split()[2])]

        def stop():
            sink.send_signal(signal.SIGINT)
            out, err = sink.communicate(timeout=30)
            m = re.search(r"captured (\d+) dropped (\d+)", out)
            if not m:
                raise RuntimeError("capture_sink: " + out + err)
            return int(m.group(1))
        return measured, stop
    if tool == "bare":
        argv = ns + [os.path.join(build, "bench", "bare_relay"), "bcap", str(BUFFER_BYTES)]
        pattern = r"captured (\d+)"
    elif tool == "tcpdump":
        argv = ns + ["tcpdump", "-i", "bcap", "-n", "-q", "-B", str(BUFFER_BYTES // 1024), "-w",
                     "-"]
        pattern = r"(\d+) packets? captured"
    else:
        argv = ns + ["dumpcap", "-q", "-i", "bcap", "-B", str(BUFFER_BYTES >> 20), "-w", "-"]
        pattern = r"Packets captured: (\d+)"
    capturer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    cat = subprocess.Popen(["taskset", "-c", str(cpu), "cat"], stdin=capturer.stdout,
                           stdout=subprocess.DEVNULL)
    capturer.stdout.close()
    time.sleep(1.0)  # tcpdump and dumpcap print before their socket is bound
    measured = [capturer.pid, cat.pid]

    def stop():
        capturer.send_signal(signal.SIGINT)
        _, err = capturer.communicate(timeout=30)
        cat.wait(30)
        m = re.search(pattern, err.decode(errors="replace"))
        if not m:
            raise RuntimeError(tool + ": " + err.decode(errors="replace"))
        return int(m.group(1))
    return measured, stop


def measure(tool, size, cpu, stack, build, seconds):
    measured, stop = start_capturer(tool, stack, build, cpu)
    try:
        before = cpu_ns(measured)
        out = sh("ip", "netns", "exec", stack.ns_snd, "taskset", "-c", "0",
                 os.path.join(build, "bench", "frame_blaster"), "bsnd", stack.mac, str(size),
                 str(seconds))
        sent = int(re.search(r"sent (\d+)", out).group(1))
        time.sleep(0.5)  # partly filled ring blocks are handed over after 50 ms
        used = cpu_ns(measured) - before
    finally:
        captured = stop()
    return {"sent": sent, "captured": captured, "cpu_ns": used,
            "us_per_frame": used / 1000.0 / max(captured, 1),
            "loss": max(sent - captured, 0) / max(sent, 1)}


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = sh("free", "-g").splitlines()[1].split()[1]
    tcpdump = subprocess.run(["tcpdump", "--version"], capture_output=True, text=True)
    dumpcap = subprocess.run(["dumpcap", "--version"], capture_output=True, text=True)
    return ("%s, %d CPUs, %s GiB RAM; Linux %s; %s; %s" % (
        model, os.cpu_count(), mem, platform.release(),
        (tcpdump.stdout + tcpdump.stderr).splitlines()[0],
        (dumpcap.stdout + dumpcap.stderr).splitlines()[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="meson build directory")
    ap.add_argument("--seconds", type=float, default=3.0, help="sending time per run")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="64,1500")
    ap.add_argument("--tools", default=",".join(TOOLS))
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run.py needs root (network namespaces, packet sockets)")
    for prog in ("tcpdump", "dumpcap", "dbus-daemon", "busctl", "taskset"):
        if not shutil.which(prog):
            sys.exit("run.py needs " + prog)
    build = os.path.abspath(args.build)
    sizes = [int(s) for s in args.sizes.split(",")]
    tools = args.tools.split(",")

    results = {}
    with tempfile.TemporaryDirectory(prefix="promiscd-bench-") as tmp:
        stack = Stack(build, tmp)
        try:
            # Capturers take turns within each round, so that whatever else
            # the machine does weighs on all of them alike.
            for run in range(args.runs):
                for size in sizes:
                    for placement, cpu in (("own", 1), ("shared", 0)):
                        for tool in tools:
                            r = measure(tool, size, cpu, stack, build, args.seconds)
                            results.setdefault((size, tool, placement), []).append(r)
                            print("# run %d %5d B %-8s %-6s  %.3f us/frame  loss %.2f%%  "
                                  "sent %.0f/s" % (run + 1, size, tool, placement,
                                                   r["us_per_frame"], 100 * r["loss"],
                                                   r["sent"] / args.seconds),
                                  file=sys.stderr, flush=True)
        finally:
            stack.close()

    med = statistics.median
    print("Machine: " + machine())
    print()
    print("Command: `sudo bench/run.py --build %s --seconds %g --runs %d`" % (
        args.build, args.seconds, args.runs))
    print()
    print("| frame | capturer | CPU µs/frame (own core) | loss (own core) "
          "| loss (sender's core) | vs bare | vs promiscd | frames sent/s |")
    print("|---|---|---|---|---|---|---|---|")
    for size in sizes:
        cost = {t: med(r["us_per_frame"] for r in results[(size, t, "own")]) for t in tools}
        for tool in tools:
            own = results[(size, tool, "own")]
            shared = results[(size, tool, "shared")]
            vs_bare = "%.2f×" % (cost[tool] / cost["bare"]) if "bare" in cost else "-"
            vs_promiscd = ("%.2f×" % (cost[tool] / cost["promiscd"])
                           if "promiscd" in cost else "-")
            print("| %d B | %s | %.3f | %.2f%% | %.2f%% | %s | %s | %.0f |" % (
                size, tool, cost[tool], 100 * med(r["loss"] for r in own),
                100 * med(r["loss"] for r in shared), vs_bare, vs_promiscd,
                med(r["sent"] for r in own) / args.seconds))


if __name__ == "__main__":
    main()
