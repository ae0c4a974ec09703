"""Figures of bench/store/run.

figures.py WORKLOAD LABEL IMAGE WORK [CHUNK]: one JSON line of ratios for
a workload and store (LABEL: its chunk size, or "16K-page" with the size
in CHUNK), from the files the run left in WORK.
figures.py --table RESULTS: the Markdown table of docs/benchmark.md.
"""
import json
import re
import sys

PAGE = 4096


def changed_bytes(a, b):
    """Bytes of the pages of b that differ from a (pages past a's end count
    when not zero)."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        n = 0
        while True:
            pb = fb.read(PAGE)
            if not pb:
                return n
            pa = fa.read(PAGE)
            if pa != pb and (pa or pb.count(0) != len(pb)):
                n += len(pb)


def imported(path):
    line = open(path).read()
    m = re.search(r": (\d+) chunks of (\d+) bytes: (\d+) new \((\d+) bytes "
                  r"stored for (\d+)\)", line)
    return {k: int(v) for k, v in zip(
        ("chunks", "chunk", "new", "stored", "raw"), m.groups())}


def counter(doc, name):
    found = []

    def walk(o):
        if isinstance(o, dict):
            if name in o and isinstance(o[name], (int, float)):
                found.append(o[name])
            for v in o.values():
                walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(doc)
    return sum(found)


def med(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def runs(prefix):
    """The simulator's summaries of runs 1, 2, ... written as PREFIX.N.json."""
    out, n = [], 1
    while True:
        try:
            out.append(json.load(open("%s.%d.json" % (prefix, n))))
        except FileNotFoundError:
            return out
        n += 1


def one(w, cs, img, work, chunk=None):
    """cs: the rows' label (a chunk size, or "16K-page"); chunk: the size,
    which names the reference's runs, when the label is not it."""
    g0 = imported(f"{work}/{w}-{cs}.import0")
    g1 = imported(f"{work}/{w}-{cs}.import1")
    size0 = g0["chunks"] * g0["chunk"]
    with open(f"{img}.0", "rb") as f:
        size0 = f.seek(0, 2)
    mm = runs(f"{work}/{w}-{chunk or cs}-mmap")
    st = runs(f"{work}/{w}-{cs}-store")
    ctr = json.load(open(f"{work}/{w}-{cs}-counters.1.json"))
    touched = st[0]["pages"] * PAGE
    dirty = changed_bytes(f"{img}.0", f"{img}.1")
    mean = [s["us_per_fault"] / m["us_per_fault"] for s, m in zip(st, mm)]
    p50 = [s["p50_us"] / m["p50_us"] for s, m in zip(st, mm)]
    return {
        "workload": w, "chunk": cs, "size0": size0, "dirty1": dirty,
        "stored_per_raw": g0["stored"] / size0,
        "added_per_dirty": g1["stored"] / dirty if dirty else 0.0,
        "mean_ratio": med([s["us_per_fault"] for s in st])
        / med([m["us_per_fault"] for m in mm]),
        "p50_ratio": med([s["p50_us"] for s in st]) / med([m["p50_us"] for m in mm]),
        "mean_range": [min(mean), max(mean)], "p50_range": [min(p50), max(p50)],
        "store_p50_us": med([s["p50_us"] for s in st]),
        "mmap_p50_us": med([m["p50_us"] for m in mm]), "reps": len(st),
        "fetched_per_touched": counter(ctr, "bytes_fetched") / touched,
        "chunk_reads": counter(ctr, "chunks"),
        "mismatches": sum(r["mismatches"] for r in st + mm),
    }


def table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    print("| workload | chunk | gen 0 size | stored / raw | gen 1 added / "
          "changed | fault mean store / mmap (range) | fault p50 store / mmap "
          "(range) | p50 us store / mmap | fetched / touched | chunk reads |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['chunk']} | "
              f"{r['size0'] / 2**20:.1f} MiB | {r['stored_per_raw']:.3f} | "
              f"{r['added_per_dirty']:.3f} | {r['mean_ratio']:.2f} "
              f"({r['mean_range'][0]:.2f}-{r['mean_range'][1]:.2f}) | "
              f"{r['p50_ratio']:.2f} "
              f"({r['p50_range'][0]:.2f}-{r['p50_range'][1]:.2f}) | "
              f"{r['store_p50_us']:.0f} / {r['mmap_p50_us']:.0f} | "
              f"{r['fetched_per_touched']:.2f} | {r['chunk_reads']} |")
    bad = sum(r["mismatches"] for r in rows)
    if bad:
        print(f"\n{bad} mismatches: the figures are void")


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        table(sys.argv[2])
    else:
        print(json.dumps(one(*sys.argv[1:6])))
