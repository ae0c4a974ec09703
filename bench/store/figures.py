"""Figures of bench/store/run.

figures.py WORKLOAD CHUNK IMAGE WORK: one JSON line of ratios for a
workload and chunk size, from the files the run left in WORK.
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


def one(w, cs, img, work):
    g0 = imported(f"{work}/{w}-{cs}.import0")
    g1 = imported(f"{work}/{w}-{cs}.import1")
    size0 = g0["chunks"] * g0["chunk"]
    with open(f"{img}.0", "rb") as f:
        size0 = f.seek(0, 2)
    mm = json.load(open(f"{work}/{w}-mmap.json"))
    st = json.load(open(f"{work}/{w}-{cs}-store.json"))
    ctr = json.load(open(f"{work}/{w}-{cs}-counters.json"))
    touched = st["pages"] * PAGE
    dirty = changed_bytes(f"{img}.0", f"{img}.1")
    return {
        "workload": w, "chunk": cs, "size0": size0, "dirty1": dirty,
        "stored_per_raw": g0["stored"] / size0,
        "added_per_dirty": g1["stored"] / dirty if dirty else 0.0,
        "mean_ratio": st["us_per_fault"] / mm["us_per_fault"],
        "p50_ratio": st["p50_us"] / mm["p50_us"],
        "store_p50_us": st["p50_us"], "mmap_p50_us": mm["p50_us"],
        "fetched_per_touched": counter(ctr, "bytes_fetched") / touched,
        "chunk_reads": counter(ctr, "chunks"),
        "mismatches": st["mismatches"] + mm["mismatches"],
    }


def table(path):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    print("| workload | chunk | gen 0 size | stored / raw | gen 1 added / "
          "changed | fault mean store / mmap | fault p50 store / mmap | "
          "fetched / touched | chunk reads |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['chunk']} | "
              f"{r['size0'] / 2**20:.1f} MiB | {r['stored_per_raw']:.3f} | "
              f"{r['added_per_dirty']:.3f} | {r['mean_ratio']:.2f} | "
              f"{r['p50_ratio']:.2f} | {r['fetched_per_touched']:.2f} | "
              f"{r['chunk_reads']} |")
    bad = sum(r["mismatches"] for r in rows)
    if bad:
        print(f"\n{bad} mismatches: the figures are void")


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        table(sys.argv[2])
    else:
        print(json.dumps(one(*sys.argv[1:5])))
