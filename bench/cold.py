#!/usr/bin/env python3
"""Helpers of bench/cold.

  cold.py wset PAGES PERCENT SEED
      a working set of about PERCENT% of PAGES pages, as runs of 1 to 64
      pages at random places, the runs in random order (pages ascending
      within a run): comma-separated page numbers in first-touch order
  cold.py log LOG FROM T
      the origin's access-log lines after line FROM ("$msec $status
      "$request" "$http_range" $body_bytes_sent") of requests that ended
      at or after T (seconds since the epoch): prints "requests bytes"
  cold.py curl LOG FROM T URL_BASE N DIR
      the ranges those lines asked for, dealt round-robin to N curl config
      files DIR/curl.K (each URL in turn on one kept-alive connection)
  cold.py start LOG REGEX
      the time (seconds since the epoch) of the first daemon-log line
      matching REGEX
  cold.py since LOG START_REGEX END_REGEX
      milliseconds between the daemon-log lines matching START_REGEX and
      the first later one matching END_REGEX (by their timestamps)
  cold.py table RESULTS
      the markdown rows of docs/benchmark.md from bench/cold's results
      (medians), with the time the bytes fetched take at the link's rate
"""
import datetime
import random
import re
import statistics
import sys

LINE = re.compile(r'(\S+) (\d+) "GET (\S+) [^"]*" "bytes=(\d+)-(\d+)" (\d+)')


def wset(pages, percent, seed):
    rnd = random.Random(seed)
    want = pages * percent // 100
    taken, runs, n = set(), [], 0
    while n < want:
        length = min(int(2 ** rnd.uniform(0, 6)), want - n)
        start = rnd.randrange(0, pages - length)
        run = [p for p in range(start, start + length) if p not in taken]
        taken.update(run)
        n += len(run)
        if run:
            runs.append(run)
    rnd.shuffle(runs)
    print(",".join(str(p) for r in runs for p in r))


def lines(path, start, t):
    with open(path) as f:
        for i, line in enumerate(f):
            m = LINE.match(line)
            if i >= start and m and float(m.group(1)) >= t:
                yield m


def log(path, start, t):
    reqs = byts = 0
    for m in lines(path, start, t):
        reqs += 1
        byts += int(m.group(6))
    print(reqs, byts)


def curl(path, start, t, base, n, out):
    parts = [[] for _ in range(n)]
    for i, m in enumerate(lines(path, start, t)):
        parts[i % n].append('url = "%s%s"\nrange = "%s-%s"\n'
                            'output = "/dev/null"\n' %
                            (base, m.group(3), m.group(4), m.group(5)))
    for k, p in enumerate(parts):
        with open("%s/curl.%d" % (out, k), "w") as f:
            f.write("next\n".join(p))


def stamp(line):
    t = line.split()[0].replace("Z", "+00:00")
    return datetime.datetime.fromisoformat(t).timestamp() * 1000


def start_of(path, regex):
    with open(path) as f:
        for line in f:
            if re.search(regex, line):
                print("%.3f" % (stamp(line) / 1000))
                return
    sys.exit("no line matching %r in %s" % (regex, path))


def since(path, start_re, end_re):
    start = None
    with open(path) as f:
        for line in f:
            if start is None and re.search(start_re, line):
                start = stamp(line)
            elif start is not None and re.search(end_re, line):
                print("%.1f" % (stamp(line) - start))
                return
    sys.exit("no lines matching %r then %r in %s" % (start_re, end_re, path))


def rate_bps(link):
    r = link.lower().rstrip("bit")
    return float(r[:-1]) * {"g": 1e9, "m": 1e6, "k": 1e3}[r[-1]]


def table(path):
    rows = {}
    with open(path) as f:
        for line in f:
            link, kind, key, value = line.split()
            rows.setdefault((link, kind), {}).setdefault(key, []).append(
                float(value))
    med = {k: {kk: statistics.median(v) for kk, v in d.items()}
           for k, d in rows.items()}
    print("| link | source | time to WS / floor | WS ms / floor ms "
          "| WS ms / line-rate ms | fault p99 with replay / without "
          "| p99 us with / without | WS ms while faulting "
          "| bytes fetched / WS bytes | requests | runs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (link, kind), d in med.items():
        wire_ms = d["bytes"] * 8 / rate_bps(link) * 1000
        busy = "%.0f" % d["ws_busy_ms"] if "ws_busy_ms" in d else "-"
        print("| %s | %s | %.2f | %.0f / %.0f | %.2f (%.0f) | %.2f "
              "| %.0f / %.0f | %s | %.2f | %.0f | %d |" %
              (link, kind, d["ws_ms"] / d["floor_ms"], d["ws_ms"],
               d["floor_ms"], d["ws_ms"] / wire_ms, wire_ms,
               d["p99_on"] / d["p99_off"], d["p99_on"], d["p99_off"], busy,
               d["bytes"] / d["ws_bytes"], d["requests"],
               len(rows[(link, kind)]["ws_ms"])))
    for link in sorted({k[0] for k in med}):
        if (link, "store") in med and (link, "http") in med:
            print("\n%s: store time to the working set / raw http: %.2f" %
                  (link, med[(link, "store")]["ws_ms"] /
                   med[(link, "http")]["ws_ms"]))


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "wset":
        wset(int(a[0]), int(a[1]), int(a[2]))
    elif cmd == "log":
        log(a[0], int(a[1]), float(a[2]))
    elif cmd == "curl":
        curl(a[0], int(a[1]), float(a[2]), a[3], int(a[4]), a[5])
    elif cmd == "start":
        start_of(a[0], a[1])
    elif cmd == "since":
        since(a[0], a[1], a[2])
    else:
        table(a[0])
