# How each restore went, per session, in `uffdkit ctl list` (text and
# --json) while it runs and in the log line at its end: the time to its
# first fault served, its fault latency percentiles, what its working-set
# replay installed against the pages listed and how long it took, and the
# configuration generation serving it; timestamps in --json are exact
# integers, never floats.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/../core/common.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 16M --seed 29
WS=$TMP/ws
write_conf "$TMP/uffdkit.conf" \
  "rec $TMP/mem prefetch = { working_set = \"$WS\"; mode = \"record\"; };" \
  "rep $TMP/mem prefetch = { working_set = \"$WS\"; mode = \"replay\"; };"
start_conf fig "$TMP/uffdkit.conf"
TOUCH=(--order random --touch-percent 40 --seed 4 --timeout 60)
vm 0 rec run --socket "$TMP/rec.sock" --image "$TMP/mem" "${TOUCH[@]}"
touched=$(field rec pages)
ended fig rec
wait_log fig "session $SID: recorded a working set of $touched pages"

# A reload (same file): the next sessions are served by generation 2.
kill -HUP "$(daemon_pid)"
wait_log fig "reloading .* as configuration generation 2"
wait_log fig "configuration generation 2 \(.*\) is live" 20

# More pages than listed, so the guest faults while the replay runs.
bg_vm rep run --socket "$TMP/rep.sock" --image "$TMP/mem" --order random \
  --touch-percent 70 --seed 5 --timeout 60 --hold 3
SID=$(live_sid fig rep)
wait_log fig "session $SID: working set replayed"
"$UFFDKIT" ctl --socket "$CTL" --json list >"$TMP/list.json"
"$UFFDKIT" ctl --socket "$CTL" list >"$TMP/list.txt"
# Every timestamp as cJSON would print a double has a '.' or an 'e'.
stamps=$(grep -Eo '"[a-z_]*_unix_ns":[^,}]*' "$TMP/list.json")
[ "$(grep -c . <<<"$stamps")" -ge 3 ] || fail "timestamps missing: $stamps"
! grep -v -E ':[0-9]{19}$' <<<"$stamps" ||
  fail "timestamps in ctl --json list are not exact integers"
"$PYTHON" - "$TMP/list.json" "$SID" "$touched" <<'PY' || fail "ctl --json list: implausible figures"
import json, sys
doc, sid, touched = json.load(open(sys.argv[1])), int(sys.argv[2]), int(sys.argv[3])
s = [s for s in doc["sessions"] if s["id"] == sid]
assert s, "session %d is not listed" % sid
s = s[0]
for k in ("id", "started_unix_ns", "first_fault_unix_ns", "first_fault_after_us",
          "generation"):
    assert type(s[k]) is int, "%s = %r is not an integer" % (k, s[k])
assert s["generation"] == 2, "generation %r, not 2" % s["generation"]
assert s["first_fault_unix_ns"] > s["started_unix_ns"] > 1.5e18, s
assert s["first_fault_after_us"] > 0, s["first_fault_after_us"]
assert (s["first_fault_unix_ns"] - s["started_unix_ns"]) // 1000 == s["first_fault_after_us"]
lat = s["latency"]
inf = float("inf")
q = [inf if lat[k] is None else lat[k] for k in ("p50_us", "p90_us", "p99_us")]
assert lat["count"] > 0 and 0 < q[0] <= q[1] <= q[2], lat
r = s["replay"]
assert r is not None, "no replay figures"
for k in ("listed", "installed", "started_unix_ns", "duration_us"):
    assert type(r[k]) is int, "replay %s = %r is not an integer" % (k, r[k])
assert r["listed"] == touched, "listed %d, not %d" % (r["listed"], touched)
assert 0 < r["installed"] <= r["listed"], r
assert r["started_unix_ns"] >= s["started_unix_ns"] and r["duration_us"] > 0, r
print("session %d: first fault after %d us, p50 < %s us, p99 < %s us, "
      "replay %d of %d listed in %d us, generation %d" % (
          sid, s["first_fault_after_us"], q[0], q[2], r["installed"],
          r["listed"], r["duration_us"], s["generation"]))
PY
grep -Eq "^ *$SID +2 +[0-9.]+ ms +< [0-9]+ us +< [0-9]+ us +$touched +[0-9]+ +[0-9.]+ ms$" \
  "$TMP/list.txt" || fail "ctl list shows no figures row for $SID: $(cat "$TMP/list.txt")"
finish_vm 0 rep
expect_field rep mismatches 0

# The log line at the end says the same.
ended fig rep
line=$(grep -E "session $SID \(pid [0-9]+\) on rep ended: " "$TMP/fig.log")
re="first fault served after ([0-9.]+) ms, fault latency p50 < ([0-9]+) us, p99 < ([0-9]+) us, replay installed ([0-9]+) pages for ([0-9]+) listed in ([0-9.]+) ms, generation 2\$"
[[ "$line" =~ $re ]] || fail "the end of session $SID logs no figures: $line"
[ "${BASH_REMATCH[1]}" != 0.000 ] || fail "first fault served after 0 ms"
expect_le "p50 against p99" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}"
[ "${BASH_REMATCH[5]}" -eq "$touched" ] || fail "the log lists ${BASH_REMATCH[5]} pages, not $touched"
expect_le "replayed against listed" "${BASH_REMATCH[4]}" "$touched"
stop_daemons
