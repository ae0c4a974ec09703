#!/usr/bin/env python3
"""Checks nginx access-log lines (tests/http/servers.sh's format) of a
working-set replay (tests/http/cold-replay.sh), read from stdin; only
requests whose path starts with PREFIX count (the object, KIND http, or
a store's packs, KIND store, at one location): those of the restore
before, at another, may still end after it.

  accesslog.py replay KIND RUNS PREFIX
      every request was answered 206 to one byte range; replay's requests
      (http: more than a page, in the second half of the 32 MiB image;
      store: more than 64 KiB of a pack) number at least one and at most
      RUNS / 20; no byte of one file was fetched twice, but by a demand
      read (http: one page; store: at most 64 KiB) and a request of
      replay's: demand reads never wait behind prefetches, so a guest that
      overtakes replay (as under a sanitizer) fetches the pages it meets
      first itself, and those overlaps are counted, not refused
  accesslog.py first KIND PREFIX
      the first request to finish, but for replay's of at most BURST bytes,
      was the guest's first fault: page 0 (http), or at most 64 KiB of a
      pack (store)
"""
import re
import sys

PAGE = 4096
HALF = 4096 * PAGE
# What the slowed location sends of a request at once (nginx's limit_rate
# allows a second's worth): a replay request no longer than this is not
# slowed, and finishing before the guest's first fault says nothing of a
# fault waiting for it (under a sanitizer the guest's fault comes later).
BURST = 256 * 1024
LINE = re.compile(r'\S+ \S+ (\d+) "GET (\S+) [^"]*" "([^"]*)"')


def requests(prefix):
    for line in sys.stdin:
        m = LINE.match(line)
        if not m:
            continue
        status, path, rng = m.groups()
        if not path.startswith(prefix):
            continue
        r = re.fullmatch(r"bytes=(\d+)-(\d+)", rng)
        if status != "206" or not r:
            sys.exit("not answered 206 to a byte range: " + line.strip())
        yield path, int(r.group(1)), int(r.group(2)) + 1


def is_replay(kind, a, b):
    if kind == "http":
        return a >= HALF and b - a > PAGE
    return b - a > 65536


def is_demand_sized(kind, a, b):
    return b - a <= (PAGE if kind == "http" else 65536)


def overlaps(kind, path, rs):
    """How many pairs of ranges of rs share a byte; exits on a pair of which
    neither is a demand read."""
    rs.sort()
    found, open_ = 0, []  # ranges not yet ended at the current start
    for c, d in rs:
        open_ = [(a, b) for a, b in open_ if b > c]
        for a, b in open_:
            if not (is_demand_sized(kind, a, b) or is_demand_sized(kind, c, d)):
                sys.exit("%s: bytes %d-%d fetched twice (%d-%d and %d-%d)" %
                         (path, c, min(b, d) - 1, a, b - 1, c, d - 1))
            found += 1
        open_.append((c, d))
    return found


def replay(kind, runs, prefix):
    seen, n = {}, 0
    for path, a, b in requests(prefix):
        seen.setdefault(path, []).append((a, b))
        n += is_replay(kind, a, b)
    twice = sum(overlaps(kind, path, rs) for path, rs in seen.items())
    if not n or n * 20 > runs:
        sys.exit("%d replay requests for %d runs: not merged" % (n, runs))
    print("%s: %d replay requests for %d runs; no byte fetched twice but by "
          "%d demand reads beside replay's" % (kind, n, runs, twice))


def first(kind, prefix):
    reqs = list(requests(prefix))  # all of stdin, for the writer's sake
    for _, a, b in reqs:
        if is_replay(kind, a, b) and b - a <= BURST:
            continue
        if is_replay(kind, a, b) or (kind == "http" and a != 0):
            sys.exit("a replay request (bytes %d-%d) finished before the "
                     "guest's first fault was served" % (a, b - 1))
        print("%s: the guest's first fault (bytes %d-%d) was served first" %
              (kind, a, b - 1))
        return
    sys.exit("no request after the restore started")


if __name__ == "__main__":
    if sys.argv[1] == "replay":
        replay(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        first(sys.argv[2], sys.argv[3])
