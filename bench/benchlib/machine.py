"""The machine and the build: what a run reports and runs on."""
import datetime
import json
import os
import platform
import subprocess
import sys

from .consts import REPO

def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Refused(Exception):
    """The handler exited (or never listened) when started."""


# ---------------------------------------------------------------------------
# machine, build


def machine_info():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    virt = ""
    try:
        with open("/proc/cpuinfo") as f:
            if " hypervisor" in f.read():
                virt = "virtualised"
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    rev = subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                         capture_output=True, text=True).stdout.strip()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "kernel": platform.release(),
        "cpu": cpu,
        "virtualisation": virt or "none detected",
        "mem_gib": round(mem_kb / 1048576, 1),
        "revision": rev or "unknown",
    }


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def build(build_dir, skip):
    if not skip:
        if not os.path.exists(os.path.join(build_dir, "CMakeCache.txt")):
            subprocess.run(["cmake", "-B", build_dir, "-S", REPO,
                            "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                            "-DBUILD_TESTING=OFF"], check=True,
                           stdout=subprocess.DEVNULL)
        log("building in %s" % build_dir)
        r = subprocess.run(["cmake", "--build", build_dir, "-j%d" % (os.cpu_count() or 2)],
                           capture_output=True, text=True)
        if r.returncode:
            sys.stderr.write(r.stdout[-4000:] + r.stderr[-4000:])
            sys.exit("bench/run: the build failed")
    bins = {n: os.path.join(build_dir, "bin", n)
            for n in ("uffdkit", "uffdkit-sim", "ref-handler")}
    for n, p in bins.items():
        if not os.access(p, os.X_OK):
            sys.exit("bench/run: %s is missing (build with --build DIR)" % p)
    return bins


def list_plugins(uffdkit):
    r = subprocess.run([uffdkit, "--list-plugins", "--json"],
                       capture_output=True, text=True)
    try:
        return {p["name"] for p in json.loads(r.stdout)}
    except (ValueError, KeyError, TypeError):
        return set()
