"""Processes: CPU time, memory, affinity, and a handler started and stopped."""
import os
import signal
import subprocess
import time

from .consts import CLK_TCK
from .machine import Refused

# ---------------------------------------------------------------------------
# processes


def proc_tree(pid):
    """pid and every descendant (through /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def start_time(pid):
    """Start time of pid in clock ticks (tells a reused pid apart)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds(pids):
    """utime+stime of the processes (all threads, live and exited)."""
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def hwm_kib(pids):
    """Sum of VmHWM (peak resident set) of the processes."""
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def affinity(cpus):
    """preexec_fn pinning a child (and all its threads) to cpus."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


class Handler:
    """One page-server process (ref-handler or uffdkit) we started."""

    def __init__(self, argv, sock, logpath, cpus=None):
        self.argv, self.sock, self.logpath = argv, sock, logpath
        self.cpus = cpus
        self.proc = None

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=self.logf,
                                     preexec_fn=affinity(self.cpus))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Refused("exit status %d: %s" % (self.proc.returncode,
                                                      self.log_tail()))
            if os.path.exists(self.sock):
                time.sleep(0.05)  # let the worker come up too
                if self.proc.poll() is None:
                    return
            time.sleep(0.01)
        self.stop()
        raise Refused("no socket after 10 s: %s" % self.log_tail())

    def log_tail(self, n=3):
        try:
            with open(self.logpath, errors="replace") as f:
                lines = [l.strip() for l in f if l.strip()]
            return " | ".join(lines[-n:]) or "(no output)"
        except OSError:
            return "(no log)"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        return proc_tree(self.proc.pid) if self.alive() else []

    def stop(self):
        if self.proc is None:
            return
        tree = [(p, start_time(p)) for p in self.pids()]
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for p, t in tree[1:]:  # a worker its supervisor failed to stop
            if t is not None and start_time(p) == t:  # not a reused pid
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        self.logf.close()
        self.proc = None
