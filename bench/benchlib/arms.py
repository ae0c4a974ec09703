"""Arms (one handler setting), groups (arms run in turn) and result rows."""
import json
import os
import statistics
import subprocess
import time

from .consts import HUGE_NEED, IMAGE_SIZE, SIM_TIMEOUT_S
from .machine import Refused, loadavg, log
from .procs import Handler, affinity, cpu_seconds, hwm_kib

# ---------------------------------------------------------------------------
# arms, groups, rows


class Arm:
    """One handler configuration run in a group.

    kind: "ref" (ref-handler) or "ufk" (uffdkit; source/layers/listener
    keys are libconfig text).  fresh: start a new daemon for every run.
    binary: another build's uffdkit (bench/run --against)."""

    def __init__(self, label, kind, desc, source=None, layers=None,
                 keys=None, fresh=False, setup=None, binary=None):
        self.label, self.kind, self.desc = label, kind, desc
        self.binary = binary
        self.source, self.layers, self.keys = source, layers, keys or {}
        self.fresh, self.setup = fresh, setup
        self.handler = None
        self.refused = None
        self.broken = None
        self.notes = []
        self.samples = []
        self.hwm = 0
        self.logs = []

    def config_text(self, sock):
        keys = "".join(" %s = %s;" % kv for kv in self.keys.items())
        layers = " layers = ( %s );" % self.layers if self.layers else ""
        # A control socket of its own: several daemons run at once, and the
        # default path may belong to a daemon that is none of ours.
        return ('uffdkit = { log_level = "warn"; control_socket = "%s"; };\n'
                'listeners = ( { name = "bench"; socket = "%s";%s source = %s;%s } );\n'
                % (sock[:-5] + ".ctl", sock, keys, self.source, layers))


class Bench:
    def __init__(self, args, bins, work):
        self.args, self.bins, self.work = args, bins, work
        self.image = os.path.join(work, "mem-%s" % IMAGE_SIZE)
        self.seq = 0
        self.cpus = None  # pinning of the current group, if any
        self.huge = None
        self.huge_group = False

    def make_handler(self, arm):
        self.seq += 1
        sock = os.path.join(self.work, "h%d.sock" % self.seq)
        logp = os.path.join(self.work, "%s.%d.log" % (arm.label, self.seq))
        if arm.kind == "ref":
            argv = [self.bins["ref-handler"]] + (
                ["--busy"] if arm.keys.get("busy") else []) + [sock, self.image]
        else:
            conf = os.path.join(self.work, "%s.%d.conf" % (arm.label, self.seq))
            with open(conf, "w") as f:
                f.write(arm.config_text(sock))
            arm.config = arm.config_text(sock)
            argv = [arm.binary or self.bins["uffdkit"], "--config", conf]
        arm.logs.append(logp)
        return Handler(argv, sock, logp, self.cpus)

    def sim(self, sock, sim_args):
        argv = [self.bins["uffdkit-sim"], "run", "--socket", sock, "--image",
                self.image, "--json", "--timeout", str(SIM_TIMEOUT_S)] + sim_args
        try:
            r = subprocess.run(argv, capture_output=True, text=True,
                               timeout=SIM_TIMEOUT_S * 2,
                               preexec_fn=affinity(self.cpus))
        except subprocess.TimeoutExpired:
            return None, "simulator hung for %d s" % (SIM_TIMEOUT_S * 2)
        out = None
        for line in r.stdout.splitlines():
            if line.startswith("{"):
                try:
                    out = json.loads(line)
                except ValueError:
                    pass
        if r.returncode or out is None:
            err = (r.stderr.strip().splitlines() or ["no output"])[-1]
            what = {1: "page mismatches", 2: "setup error", 3: "timeout",
                    4: "connection refused/closed"}.get(r.returncode, "failed")
            return out, "simulator exit %d (%s): %s" % (r.returncode, what, err)
        return out, None

    def one_run(self, arm, sim_args, repeat, warmup):
        h = arm.handler
        if arm.fresh:
            h = self.make_handler(arm)
            try:
                h.start()
            except Refused as e:
                arm.refused = str(e)
                log("    %-10s refused by the daemon: %s" % (arm.label, e))
                return
        if not h.alive():
            arm.broken = "handler died: %s" % h.log_tail()
            return
        if self.huge_group:
            # Others may take pages from the pool while we run: top it up.
            why = self.huge.reserve(HUGE_NEED)
            if why:
                log("    " + why)
        pids = h.pids()
        c0 = cpu_seconds(pids)
        t0 = time.monotonic()
        res, err = self.sim(h.sock, sim_args)
        wall = time.monotonic() - t0
        pids = h.pids() or pids
        c1 = cpu_seconds(pids)
        arm.hwm = max(arm.hwm, hwm_kib(pids))
        s = {"warmup": warmup, "cpu_s": c1 - c0,
             "cpu_ms_per_restore": (c1 - c0) * 1000 / repeat,
             "wall_s": wall, "sim": res, "error": err}
        arm.samples.append(s)
        if arm.fresh:
            h.stop()
        if err:
            arm.broken = err
            if h.alive() and not arm.fresh:
                h.stop()
        else:
            log("    %-10s %s%9.2f us/fault  p50 %.2f  p99 %.2f  cpu %.0f ms"
                % (arm.label, "warm-up " if warmup else "", res["us_per_fault"],
                   res["p50_us"], res["p99_us"], s["cpu_ms_per_restore"]))

    def run_group(self, g, reps):
        g["loadavg_before"] = loadavg()
        t0 = time.monotonic()
        log("== %s (load average %s)" % (g["name"], g["loadavg_before"]))
        arms = g["arms"]
        repeat = g.get("repeat", 1)

        def args_for(arm):
            # A fresh daemon is cold for its first restore only: one a run.
            r = 1 if arm.fresh else repeat
            return g["sim"] + (["--repeat", str(r)] if r > 1 else []), r

        vcpus = int(g["sim"][g["sim"].index("--vcpus") + 1])
        self.cpus = {self.args.pin} if self.args.pin is not None and vcpus == 1 else None
        g["pinned_cpu"] = self.args.pin if self.cpus else None
        self.huge_group = "2M" in g["sim"]
        for arm in arms:
            if arm.setup:
                arm.setup(self, arm)
        try:
            for arm in arms:
                if arm.fresh or arm.refused:
                    continue
                arm.handler = self.make_handler(arm)
                try:
                    arm.handler.start()
                except Refused as e:
                    arm.refused = str(e)
                    arm.handler = None
                    log("    %-10s refused by the daemon: %s" % (arm.label, e))
            for i in range(reps + 1):  # run 0 of each arm: warm-up, discarded
                for arm in arms:
                    if arm.refused or arm.broken:
                        continue
                    self.one_run(arm, *args_for(arm), i == 0)
        finally:
            for arm in arms:
                if arm.handler:
                    arm.handler.stop()
                    arm.handler = None
        for arm in arms:
            for w in daemon_warnings(arm.logs):
                arm.notes.append("daemon log: " + w)
        g["results"] = {a.label: summarize(a) for a in arms}
        g["loadavg_after"] = loadavg()
        g["seconds"] = time.monotonic() - t0


def daemon_warnings(paths, most=3):
    """Distinct warning/error lines of the daemon logs (timestamps and pids
    dropped), so a setting accepted but not honoured shows up."""
    seen = []
    for p in paths:
        try:
            with open(p, errors="replace") as f:
                for line in f:
                    for lvl in (" warn: ", " error: "):
                        if lvl in line:
                            msg = lvl.strip() + " " + line.split(lvl, 1)[1].strip()
                            if msg not in seen:
                                seen.append(msg)
        except OSError:
            pass
    return seen[:most]


def med(xs):
    return statistics.median(xs) if xs else None


def summarize(arm):
    ok = [s for s in arm.samples if not s["warmup"] and not s["error"]]
    r = {"label": arm.label, "desc": arm.desc, "kind": arm.kind,
         "refused": arm.refused, "error": arm.broken, "notes": arm.notes,
         "runs": len(ok), "peak_rss_kib": arm.hwm,
         "config": getattr(arm, "config", None), "samples": arm.samples}
    if ok:
        r["us_per_fault"] = med([s["sim"]["us_per_fault"] for s in ok])
        r["p50_us"] = med([s["sim"]["p50_us"] for s in ok])
        r["p99_us"] = med([s["sim"]["p99_us"] for s in ok])
        r["cpu_ms"] = med([s["cpu_ms_per_restore"] for s in ok])
        r["per_run_us"] = [s["sim"]["us_per_fault"] for s in ok]
        r["per_run_cpu"] = [s["cpu_ms_per_restore"] for s in ok]
    return r


def group_json(g):
    return {"name": g["name"], "sim_args": g["sim"], "repeat": g.get("repeat", 1),
            "pinned_cpu": g.get("pinned_cpu"), "seconds": g.get("seconds"),
            "loadavg_before": g.get("loadavg_before"),
            "loadavg_after": g.get("loadavg_after"), "arms": g.get("results", {})}


def arm_problem(a):
    if a is None:
        return "missing"
    if a["refused"]:
        return "daemon refused the settings: %s" % a["refused"]
    if a["error"]:
        return a["error"]
    if not a["runs"]:
        return "no measured run"
    return None


def make_row(g, name, base, subj, target=None, note=None, cpu_target=None):
    """target: ("le"|"lt", x) on subj/base, or ("speedup", arm, x):
    arm/subj >= x.  cpu_target: x, CPU per restore of subj/base <= x."""
    res = g["results"]
    b, s = res.get(base), res.get(subj)
    row = {"scenario": name, "group": g["name"], "base": base, "subject": subj,
           "base_desc": b["desc"] if b else base,
           "subject_desc": s["desc"] if s else subj, "target": None,
           "result": None, "notes": list((s or {}).get("notes", [])),
           "problem": arm_problem(b) or arm_problem(s)}
    if note:
        row["notes"].append(note)
    if b and s and not row["problem"]:
        row["ratio"] = s["us_per_fault"] / b["us_per_fault"]
        pair = [y / x for x, y in zip(b["per_run_us"], s["per_run_us"]) if x]
        row["pair_ratio_min"] = min(pair) if pair else None
        row["pair_ratio_max"] = max(pair) if pair else None
        cpu_ratio_of(row, b, s)
    if target:
        if target[0] in ("le", "lt"):
            row["target"] = "ratio %s %.2f" % ("<=" if target[0] == "le" else "<",
                                               target[1])
            if "ratio" in row:
                v = row["ratio"]
                ok = v <= target[1] if target[0] == "le" else v < target[1]
                row["result"] = "PASS" if ok else "FAIL"
        else:
            _, other, x = target
            o = res.get(other)
            row["target"] = ">= %gx faster than %s" % (x, o["desc"] if o else other)
            prob = arm_problem(o) or arm_problem(s)
            if not prob:
                sp = o["us_per_fault"] / s["us_per_fault"]
                row["speedup"] = sp
                row["target"] += ": %.1fx" % sp
                row["result"] = "PASS" if sp >= x else "FAIL"
            else:
                row["problem"] = row["problem"] or prob
        if row["result"] is None:
            row["result"] = "n/a"
    if cpu_target is not None:
        row["cpu_target"] = "CPU ratio <= %.2f" % cpu_target
        v = row.get("cpu_ratio")
        row["cpu_result"] = "n/a" if v is None else (
            "PASS" if v <= cpu_target else "FAIL")
    for k, a in (("b", b), ("s", s)):
        if a and a["runs"]:
            row[k + "_us"] = a["us_per_fault"]
            row[k + "_p50"], row[k + "_p99"] = a["p50_us"], a["p99_us"]
            row[k + "_cpu_ms"] = a["cpu_ms"]
        if a:
            row[k + "_rss_kib"] = a["peak_rss_kib"]
    return row


def cpu_ratio_of(row, b, s):
    """CPU per restore of subject / base: the median's ratio and the range
    of the runs paired in order (a change that buys time with CPU shows).
    None when the base used no measurable CPU (10 ms ticks)."""
    if not b.get("cpu_ms"):
        return
    row["cpu_ratio"] = s["cpu_ms"] / b["cpu_ms"]
    pair = [y / x for x, y in zip(b["per_run_cpu"], s["per_run_cpu"]) if x]
    row["cpu_pair_min"] = min(pair) if pair else None
    row["cpu_pair_max"] = max(pair) if pair else None
