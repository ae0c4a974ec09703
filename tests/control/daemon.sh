#!/bin/bash
# The daemon's control socket and metrics with a live VM: `uffdkit ctl`
# shows the simulator's session with its pid while it runs, stats and
# metrics count its faults, and once it exits the session is gone and the
# totals remain.  Then reload through the socket, and drain.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/common.sh"

CTL=$TMP/ctl.sock
PAGES=4096
"$SIM" mkimage "$TMP/mem" --size $((PAGES * 4))K --seed 7 >/dev/null

write_conf() {
  local extra=$1 metrics=""
  [ "$HTTP" = 1 ] && metrics='metrics = "127.0.0.1:0";'
  cat >"$TMP/d.conf" <<EOF
uffdkit = { control_socket = "$CTL"; $metrics };
listeners = (
  { name = "a"; socket = "$TMP/a.sock";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; },
  { name = "b"; socket = "$TMP/b.sock";
    source = { plugin = "file"; path = "$TMP/mem"; };
    layers = ( { layer = "cache"; size = "4M"; } ); }
  $extra
);
EOF
}
write_conf ""
start_daemon d "$TMP/a.sock" --config "$TMP/d.conf"
wait_for_socket "$CTL"
[ "$(stat -c %a "$CTL")" = 600 ] || fail "control socket mode $(stat -c %a "$CTL")"

# Before any VM.
ctl list >"$TMP/list0.out"
grep -q '^no live sessions$' "$TMP/list0.out" || fail "list: $(cat "$TMP/list0.out")"
grep -Eq '^a +[^ ]+/a\.sock +mmap +open +0 +0 +0 ' "$TMP/list0.out" ||
  fail "listener a: $(cat "$TMP/list0.out")"
grep -Eq '^b +[^ ]+/b\.sock +file\+cache +open ' "$TMP/list0.out" ||
  fail "listener b: $(cat "$TMP/list0.out")"

# A VM touching a page every 500 us, kept alive 5 s after.
"$SIM" run --socket "$TMP/a.sock" --image "$TMP/mem" --delay-us 500 \
  --hold 5 --timeout 60 >"$TMP/sim.out" 2>"$TMP/sim.log" &
SIM_PID=$!

session_live() {
  ctl --json list >"$TMP/live.json" 2>/dev/null &&
    [ "$(json 'len(j["sessions"])' <"$TMP/live.json")" = 1 ] &&
    [ "$(json 'j["sessions"][0]["faults"] > 100' <"$TMP/live.json")" = True ]
}
until_true 20 session_live || fail "no live session: $(cat "$TMP/live.json")"
[ "$(json 'j["sessions"][0]["pid"]' <"$TMP/live.json")" = "$SIM_PID" ] ||
  fail "session pid is not the simulator's ($SIM_PID): $(cat "$TMP/live.json")"
[ "$(json 'j["sessions"][0]["listener"]' <"$TMP/live.json")" = a ] ||
  fail "session listener: $(cat "$TMP/live.json")"
[ "$(json 'j["sessions"][0]["page_size"]' <"$TMP/live.json")" = 4096 ] ||
  fail "session page size: $(cat "$TMP/live.json")"
[ "$(json 'j["sessions"][0]["memory_bytes"]' <"$TMP/live.json")" = $((PAGES * 4096)) ] ||
  fail "session memory: $(cat "$TMP/live.json")"
[ "$(json 'j["listeners"][0]["sessions_live"]' <"$TMP/live.json")" = 1 ] ||
  fail "sessions_live: $(cat "$TMP/live.json")"

# The human table has the session with the simulator's pid, and a rate.
sleep 0.3
ctl list >"$TMP/list1.out"
echo "$(cat "$TMP/list1.out")"
awk -v p="$SIM_PID" '$2 == "a" && $3 == p && $NF > 0 { ok = 1 } END { exit !ok }' \
  "$TMP/list1.out" || fail "no row with pid $SIM_PID and a fault rate"
head -1 "$TMP/list1.out" | grep -Eq '^LISTENER +SOCKET +SOURCE +STATE +LIVE' ||
  fail "list header: $(head -1 "$TMP/list1.out")"

# Stats and metrics while it runs.
ctl --json stats >"$TMP/stats1.json"
[ "$(json '[l["name"] for l in j["listeners"]]' <"$TMP/stats1.json")" = "['a', 'b']" ] ||
  fail "stats listeners: $(cat "$TMP/stats1.json")"
[ "$(json 'j["listeners"][0]["counters"]["faults"] > 0' <"$TMP/stats1.json")" = True ] ||
  fail "stats faults: $(cat "$TMP/stats1.json")"
[ "$(json '[s["instance"] for s in j["listeners"][1]["sources"]]' <"$TMP/stats1.json")" = "['b/file', 'b/cache']" ] ||
  fail "stats sources: $(cat "$TMP/stats1.json")"
[ "$(json 'j["listeners"][1]["sources"][1]["hit_ratio"]' <"$TMP/stats1.json")" = None ] ||
  fail "hit ratio before any lookup: $(cat "$TMP/stats1.json")"
ctl metrics >"$TMP/m1.txt"
live_faults=$(metric "$TMP/m1.txt" 'uffdkit_faults_total{listener="a"}')
[ "$live_faults" -gt 0 ] || fail "no faults counted while live"
[ "$(metric "$TMP/m1.txt" 'uffdkit_sessions_live{listener="a"}')" = 1 ] ||
  fail "sessions_live in metrics"
if [ "$HTTP" = 1 ]; then
  PORT=$(http_port "$TMP/d.log")
  curl -sf "http://127.0.0.1:$PORT/metrics" >"$TMP/h1.txt" ||
    fail "GET /metrics failed"
  [ "$(metric "$TMP/h1.txt" 'uffdkit_faults_total{listener="a"}')" -ge "$live_faults" ] ||
    fail "HTTP faults went down"
fi

# The VM exits: its session is gone, the totals stay.
rc=0
wait $SIM_PID || rc=$?
[ $rc -eq 0 ] || fail "simulator exited with $rc: $(cat "$TMP/sim.log")"
grep -q "pages=$PAGES .*mismatches=0" "$TMP/sim.out" || fail "sim: $(cat "$TMP/sim.out")"
session_gone() {
  ctl --json list >"$TMP/after.json" &&
    [ "$(json 'len(j["sessions"])' <"$TMP/after.json")" = 0 ]
}
until_true 10 session_gone || fail "session still listed: $(cat "$TMP/after.json")"
[ "$(json 'j["listeners"][0]["faults"]' <"$TMP/after.json")" = $PAGES ] ||
  fail "listener totals after the session: $(cat "$TMP/after.json")"
[ "$(json 'j["listeners"][0]["sessions_total"]' <"$TMP/after.json")" = 1 ] ||
  fail "sessions_total: $(cat "$TMP/after.json")"
ctl list | grep -q '^no live sessions$' || fail "list still shows a session"

ctl metrics >"$TMP/m2.txt"
if [ "$HTTP" = 1 ]; then
  curl -sf "http://127.0.0.1:$PORT/metrics" >"$TMP/h2.txt" || fail "GET /metrics"
  cmp -s "$TMP/m2.txt" "$TMP/h2.txt" || fail "HTTP and ctl metrics differ"
  curl -s -o /dev/null -w '%{http_code} %{content_type}\n' \
    "http://127.0.0.1:$PORT/metrics" >"$TMP/h2.head"
  grep -qx '200 text/plain; version=0.0.4; charset=utf-8' "$TMP/h2.head" ||
    fail "HTTP status and type: $(cat "$TMP/h2.head")"
  [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/x")" = 404 ] ||
    fail "unknown path is not 404"
fi
for m in faults_total pages_copied_total zero_pages_total bytes_copied_total \
  sessions_live sessions_total fault_service_seconds_count; do
  eval "$m=\$(metric \"\$TMP/m2.txt\" 'uffdkit_$m{listener=\"a\"}')"
done
[ "$faults_total" = $PAGES ] || fail "faults_total $faults_total"
[ $((pages_copied_total + zero_pages_total)) = $PAGES ] ||
  fail "pages $pages_copied_total + zeros $zero_pages_total"
[ "$bytes_copied_total" = $((pages_copied_total * 4096)) ] ||
  fail "bytes_copied_total $bytes_copied_total"
[ "$sessions_live" = 0 ] && [ "$sessions_total" = 1 ] ||
  fail "sessions live $sessions_live total $sessions_total"
[ "$fault_service_seconds_count" = $PAGES ] ||
  fail "histogram count $fault_service_seconds_count"
[ "$(metric "$TMP/m2.txt" 'uffdkit_fault_service_seconds_bucket{listener="a",le="+Inf"}')" = $PAGES ] ||
  fail "+Inf bucket"
[ "$(metric "$TMP/m2.txt" 'uffdkit_faults_total{listener="b"}')" = 0 ] ||
  fail "listener b faulted"
grep -q '^uffdkit_plugin_hits_total{listener="b",instance="b/cache"} 0$' \
  "$TMP/m2.txt" || fail "cache counter missing"

# Reload through the socket: a new listener appears, totals are kept.
write_conf ', { name = "c"; socket = "'"$TMP"'/c.sock"; source = { plugin = "mmap"; path = "'"$TMP"'/mem"; }; }'
ctl reload >"$TMP/reload.out" || fail "reload: $(cat "$TMP/reload.out")"
wait_for_socket "$TMP/c.sock"
has_c() {
  ctl --json list >"$TMP/reloaded.json" &&
    [ "$(json '[l["name"] for l in j["listeners"]]' <"$TMP/reloaded.json")" = "['a', 'b', 'c']" ]
}
until_true 10 has_c || fail "listener c not listed: $(cat "$TMP/reloaded.json")"
[ "$(json 'j["listeners"][0]["faults"]' <"$TMP/reloaded.json")" = $PAGES ] ||
  fail "totals lost in the reload: $(cat "$TMP/reloaded.json")"

# A reload of a broken file is refused with the file's message.
echo 'listeners = ( { name = "a"; ' >"$TMP/d.conf"
rc=0
ctl reload >"$TMP/bad.out" 2>"$TMP/bad.err" || rc=$?
[ $rc -eq 1 ] || fail "broken reload exited $rc"
grep -q "^uffdkit ctl: .*d.conf" "$TMP/bad.err" || fail "reload error: $(cat "$TMP/bad.err")"
rc=0
ctl --json reload >"$TMP/bad.json" || rc=$?
[ $rc -eq 1 ] && [ "$(json '"error" in j' <"$TMP/bad.json")" = True ] ||
  fail "--json reload error: $rc $(cat "$TMP/bad.json")"

# Drain: an unknown listener is an error; a known one is drained (the rest
# of drain is tests/control/drain.sh).
rc=0
ctl drain nope 2>"$TMP/drain.err" || rc=$?
[ $rc -eq 1 ] && grep -q 'no listener named "nope"' "$TMP/drain.err" ||
  fail "drain nope: $rc $(cat "$TMP/drain.err")"
ctl drain c >"$TMP/drain.out" 2>"$TMP/drain.err" ||
  fail "drain c: $(cat "$TMP/drain.err")"
grep -qx 'listener c is draining' "$TMP/drain.out" || fail "drain output"
ctl --json list >"$TMP/drained.json"
[ "$(json 'j["listeners"][2]["accepting"]' <"$TMP/drained.json")" = False ] ||
  fail "c still accepting after drain"

stop_daemons
[ ! -e "$CTL" ] || fail "control socket left behind"
rc=0
ctl list 2>"$TMP/gone.err" || rc=$?
[ $rc -eq 3 ] && grep -q "cannot connect to $CTL: no such socket" "$TMP/gone.err" ||
  fail "ctl with no daemon: $rc $(cat "$TMP/gone.err")"
echo "control-daemon: OK"
