#!/bin/bash
# serve -> restore -> ended, as an orchestrator drives it: `ctl serve`
# answers with the socket once the source has started; a VM restores from
# it with every byte right; watch shows listening, connected, ready,
# closed (one_shot), ended and removed, in that order; the socket file is
# gone as soon as the VM connected, so a second VM cannot take it.  Then
# --no-one-shot (two VMs), expiry, stop with a live VM (killed) and with
# --keep-sessions (it finishes), drain, list/stats/metrics with the template.
. "$(dirname "$0")/common.sh"

build b1 41 2048
build b2 42 1024
template_conf "$TMP/d.conf" 'max_restores = 8;'
start_daemon d "$CTL" --config "$TMP/d.conf" --plugin-dir "$PLUGINS"
watch_start all

# ---- serve, restore, ended ----
sctl serve sandbox build_id=b1 sandbox_id=s1 --id s1 >"$TMP/s1.out" ||
  fail "serve s1: $(cat "$TMP/s1.out")"
[ "$(cat "$TMP/s1.out")" = "s1 $TMP/sb/s1.sock" ] ||
  fail "serve answer: $(cat "$TMP/s1.out")"
[ -S "$TMP/sb/s1.sock" ] || fail "no socket after the serve answer"
[ "$(stat -c %a "$TMP/sb/s1.sock")" = 600 ] || fail "socket mode"
# A VM that takes about 4 s, so a second one tries while it runs.
"$SIM" run --socket "$TMP/sb/s1.sock" --image "$STORE/b1/mem" \
  --delay-us 2000 --timeout 60 >"$TMP/vm1.out" 2>"$TMP/vm1.err" &
VM1=$!
wait_event all '"event":"ready","id":"s1"'
[ ! -e "$TMP/sb/s1.sock" ] || fail "one_shot: the socket is still there"
sim 4 second run --socket "$TMP/sb/s1.sock" --image "$STORE/b1/mem" \
  --connect-timeout 0.5 --timeout 10
grep -q "cannot connect" "$TMP/second.err" ||
  fail "second VM: $(cat "$TMP/second.err")"
still_running $VM1 "the first VM"
sctl --json list >"$TMP/list.json"
[ "$(json '[(r["id"], r["template"], r["state"], r["vars"]["build_id"]) for r in j["restores"]]' <"$TMP/list.json")" = "[('s1', 'sandbox', 'closed', 'b1')]" ] ||
  fail "list restores: $(cat "$TMP/list.json")"
[ "$(json '[(l["name"], l["template"]) for l in j["listeners"]]' <"$TMP/list.json")" = "[('s1', 'sandbox')]" ] ||
  fail "list listeners: $(cat "$TMP/list.json")"
wait $VM1 || fail "VM 1: $(cat "$TMP/vm1.err")"
check_sim 0 vm1 0
verified vm1 2048
wait_event all '"event":"removed","id":"s1"'
[ "$(kinds all s1)" = "listening connected closed ready ended removed" ] ||
  fail "events of s1: $(kinds all s1)"
[ "$(event all s1 ended 'e["reason"], e["counters"]["faults"] > 0')" = "('exited', True)" ] ||
  fail "ended: $(grep ended "$TMP/all.events")"
[ "$(event all s1 ready 'e["regions"], e["page_size"], e["memory_bytes"]')" = "(1, 4096, 8388608)" ] ||
  fail "ready: $(grep ready "$TMP/all.events")"
[ "$(event all s1 closed 'e["reason"]')" = one_shot ] || fail "closed reason"
sctl --json list >"$TMP/after.json"
[ "$(json 'len(j["restores"]), len(j["listeners"])' <"$TMP/after.json")" = "(0, 0)" ] ||
  fail "s1 not removed: $(cat "$TMP/after.json")"

# ---- not one_shot: two VMs on one socket, then stop --keep-sessions ----
sctl serve sandbox build_id=b2 sandbox_id=s2 --id s2 --no-one-shot >/dev/null
sim 0 two-a run --socket "$TMP/sb/s2.sock" --image "$STORE/b2/mem" --timeout 60
verified two-a 1024
"$SIM" run --socket "$TMP/sb/s2.sock" --image "$STORE/b2/mem" \
  --delay-us 3000 --timeout 60 >"$TMP/two-b.out" 2>"$TMP/two-b.err" &
VM2=$!
wait_event all '"event":"ready","id":"s2".*' 10
until_true 20 test "$(kinds all s2 | grep -o ready | wc -l)" = 2 ||
  fail "second VM on s2 not ready: $(kinds all s2)"
sctl stop s2 --keep-sessions >"$TMP/stop2.out"
grep -q '^stopped s2: 1 live session kept' "$TMP/stop2.out" ||
  fail "stop --keep-sessions: $(cat "$TMP/stop2.out")"
[ ! -e "$TMP/sb/s2.sock" ] || fail "stopped: the socket is still there"
wait $VM2 || fail "VM kept by stop: $(cat "$TMP/two-b.err")"
check_sim 0 two-b 0
verified two-b 1024
wait_event all '"event":"removed","id":"s2"'

# ---- stop with a live VM: it is killed, the session ends "stopped" ----
sctl serve sandbox build_id=b1 sandbox_id=s3 --id s3 >/dev/null
"$SIM" run --socket "$TMP/sb/s3.sock" --image "$STORE/b1/mem" \
  --delay-us 3000 --timeout 60 >"$TMP/vm3.out" 2>"$TMP/vm3.err" &
VM3=$!
wait_event all '"event":"ready","id":"s3"'
sctl stop s3 >"$TMP/stop3.out"
grep -q '^stopped s3: 1 live session ended' "$TMP/stop3.out" ||
  fail "stop: $(cat "$TMP/stop3.out")"
rc=0
wait $VM3 || rc=$?
[ $rc -eq 137 ] || fail "the stopped VM exited with $rc, not killed"
wait_event all '"event":"removed","id":"s3"'
[ "$(event all s3 ended 'e["reason"]')" = stopped ] || fail "ended of s3"
rc=0
sctl stop s3 2>"$TMP/stop-again.err" || rc=$?
[ $rc -eq 1 ] && grep -q 'no per-restore listener "s3"' "$TMP/stop-again.err" ||
  fail "stop of a removed restore: $rc $(cat "$TMP/stop-again.err")"

# ---- drain of a per-restore listener: stop keeping its sessions ----
sctl serve sandbox build_id=b1 sandbox_id=s5 --id s5 >/dev/null
sctl drain s5 >/dev/null || fail "drain s5"
wait_event all '"event":"removed","id":"s5"'
[ ! -e "$TMP/sb/s5.sock" ] || fail "drained: the socket is still there"

# ---- expiry: no VM in time, the socket closes ----
sctl serve sandbox build_id=b1 sandbox_id=s4 --id s4 --expiry 0.5 >/dev/null
wait_event all '"event":"removed","id":"s4"' 10
[ "$(kinds all s4)" = "listening closed removed" ] ||
  fail "events of s4: $(kinds all s4)"
[ "$(event all s4 closed 'e["reason"]')" = expired ] || fail "closed of s4"
[ ! -e "$TMP/sb/s4.sock" ] || fail "expired: the socket is still there"

# ---- stats and metrics: per-template totals, no per-restore series ----
sctl --json stats >"$TMP/stats.json"
[ "$(json '[(t["name"], t["serves_total"], t["sessions_total"], t["restores_live"]) for t in j["templates"]]' <"$TMP/stats.json")" = "[('sandbox', 5, 4, 0)]" ] ||
  fail "stats templates: $(json 'j["templates"]' <"$TMP/stats.json")"
[ "$(json 'j["templates"][0]["counters"]["faults"] >= 2048 + 2 * 1024' <"$TMP/stats.json")" = True ] ||
  fail "template counters: $(json 'j["templates"]' <"$TMP/stats.json")"
sctl metrics >"$TMP/metrics.txt"
metric() {
  awk -v m="$2" '$1 == m { print $2; found = 1 } END { exit !found }' "$1" ||
    fail "no sample $2 in $1"
}
[ "$(metric "$TMP/metrics.txt" 'uffdkit_template_serves_total{template="sandbox"}')" = 5 ] ||
  fail "serves metric"
[ "$(metric "$TMP/metrics.txt" 'uffdkit_template_sessions_total{template="sandbox"}')" = 4 ] ||
  fail "sessions metric"
! grep -q 'listener="s[0-9]"' "$TMP/metrics.txt" ||
  fail "per-restore listeners labelled one by one in the metrics"
echo "serve-basic: ok"
