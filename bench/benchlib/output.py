"""Tables and numbers as bench/run prints them."""

from .consts import FA_SWEEP
from .arms import arm_problem

# ---------------------------------------------------------------------------
# output


def fnum(x):
    if x is None:
        return "-"
    if x >= 99.95:
        return "%.0f" % x
    if x >= 9.995:
        return "%.1f" % x
    return "%.2f" % x


def fmib(kib):
    return "%.0f" % (kib / 1024) if kib else "-"


def ratio_text(r, key, lo, hi):
    if key not in r:
        return "-"
    t = "%.2f" % r[key]
    if r.get(lo) is not None:
        t += " (%.2f-%.2f)" % (r[lo], r[hi])
    return t


def table(rows):
    hdr = ["scenario", "ref µs/fault", "uffdkit µs/fault", "ratio (range)",
           "ref p50/p99", "uffdkit p50/p99", "CPU ms/restore ref/uffdkit",
           "CPU ratio (range)", "peak RSS MiB ref/uffdkit", "target", "result"]
    out = ["| " + " | ".join(hdr) + " |", "|" + "---|" * len(hdr)]
    for r in rows:
        name = r["scenario"]
        if r["base_desc"] != "ref-handler":
            name += " (base: %s)" % r["base_desc"]
        ratio = ratio_text(r, "ratio", "pair_ratio_min", "pair_ratio_max")
        res = r["result"] or ""
        tgt = r["target"] or "-"
        if r.get("cpu_target"):
            tgt = r["cpu_target"] if tgt == "-" else tgt + "; " + r["cpu_target"]
            res = (res + "; " if res else "") + "CPU " + r["cpu_result"]
        if r["problem"]:
            p = r["problem"].replace("|", "/")
            p = p if len(p) <= 90 else p[:87] + "..."
            res = (res + " " if res and res != "n/a" else "") + "(%s)" % p
        out.append("| " + " | ".join([
            name, fnum(r.get("b_us")), fnum(r.get("s_us")), ratio,
            "%s/%s" % (fnum(r.get("b_p50")), fnum(r.get("b_p99"))),
            "%s/%s" % (fnum(r.get("s_p50")), fnum(r.get("s_p99"))),
            "%s/%s" % (fnum(r.get("b_cpu_ms")), fnum(r.get("s_cpu_ms"))),
            ratio_text(r, "cpu_ratio", "cpu_pair_min", "cpu_pair_max"),
            "%s/%s" % (fmib(r.get("b_rss_kib")), fmib(r.get("s_rss_kib"))),
            tgt, res]) + " |")
    return "\n".join(out)


def sweep_table(g):
    res = g["results"]
    base = res.get("fa0")
    out = ["| fault_around (pages) | µs/fault | p50/p99 | CPU ms/restore | vs 0 |",
           "|---|---|---|---|---|"]
    for fa in FA_SWEEP:
        a = res.get("fa%d" % fa)
        prob = arm_problem(a)
        if prob:
            out.append("| %d | %s | | | |" % (fa, prob))
            continue
        sp = ("%.1fx" % (base["us_per_fault"] / a["us_per_fault"])
              if base and base.get("runs") else "-")
        out.append("| %d | %s | %s/%s | %s | %s |" % (
            fa, fnum(a["us_per_fault"]), fnum(a["p50_us"]), fnum(a["p99_us"]),
            fnum(a["cpu_ms"]), sp))
    return "\n".join(out)
