#!/bin/bash
# `uffdkit ctl drain`: a drained listener takes no new VM (its socket is
# gone), the VM it was serving goes on restoring, every byte right, and a
# reload of the unchanged file opens the listener again.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/common.sh"

CTL=$TMP/ctl.sock
PAGES=4096
"$SIM" mkimage "$TMP/mem" --size $((PAGES * 4))K --seed 11 >/dev/null
cat >"$TMP/d.conf" <<EOF
uffdkit = { control_socket = "$CTL"; };
listeners = (
  { name = "a"; socket = "$TMP/a.sock";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; },
  { name = "b"; socket = "$TMP/b.sock";
    source = { plugin = "file"; path = "$TMP/mem"; }; }
);
EOF
start_daemon d "$TMP/a.sock" --config "$TMP/d.conf"
wait_for_socket "$CTL"
wait_for_socket "$TMP/b.sock"

# session_faults: the faults of the one live session.
session_faults() {
  ctl --json list >"$TMP/live.json" 2>/dev/null &&
    [ "$(json 'len(j["sessions"])' <"$TMP/live.json")" = 1 ] &&
    json 'j["sessions"][0]["faults"]' <"$TMP/live.json"
}
faulted_past() {
  local n
  n=$(session_faults) && [ "$n" -gt "$1" ]
}

# A VM touching a page every 2 ms: about 8 s of faults.
"$SIM" run --socket "$TMP/a.sock" --image "$TMP/mem" --delay-us 2000 \
  --timeout 120 >"$TMP/live.out" 2>"$TMP/live.err" &
LIVE=$!
until_true 30 faulted_past 50 || fail "no live session: $(cat "$TMP/live.json")"

ctl drain a >"$TMP/drain.out" 2>"$TMP/drain.err" ||
  fail "drain a: $(cat "$TMP/drain.out" "$TMP/drain.err")"
grep -qx 'listener a is draining' "$TMP/drain.out" ||
  fail "drain output: $(cat "$TMP/drain.out")"
at_drain=$(session_faults) || fail "the session is gone after the drain"
ctl --json list >"$TMP/drained.json"
[ "$(json '[l["accepting"] for l in j["listeners"]]' <"$TMP/drained.json")" = "[False, True]" ] ||
  fail "accepting after drain: $(cat "$TMP/drained.json")"
[ ! -e "$TMP/a.sock" ] || fail "the drained listener's socket is still there"
rc=0
ctl drain a 2>"$TMP/again.err" || rc=$?
[ $rc -eq 1 ] || fail "draining a drained listener: exit $rc"

# No new VM on a; b is untouched.
sim 4 refused run --socket "$TMP/a.sock" --image "$TMP/mem" \
  --connect-timeout 0.5 --timeout 10
grep -q "cannot connect to $TMP/a.sock" "$TMP/refused.err" ||
  fail "refused: $(cat "$TMP/refused.err")"
sim 0 other run --socket "$TMP/b.sock" --image "$TMP/mem" --vcpus 2 \
  --timeout 60
verified other $PAGES

# The VM that was live when the drain came goes on to the end.
if now=$(session_faults); then
  [ "$now" -gt "$at_drain" ] ||
    fail "the live session stopped faulting after the drain ($now)"
fi
rc=0
wait $LIVE || rc=$?
check_sim 0 live $rc
verified live $PAGES
[ "$(json 'j["listeners"][0]["sessions_total"]' <"$TMP/drained.json")" = 1 ] ||
  fail "sessions_total of a: $(cat "$TMP/drained.json")"

# A reload of the same file opens a again.
ctl reload >"$TMP/reload.out" || fail "reload: $(cat "$TMP/reload.out")"
wait_for_socket "$TMP/a.sock" 30
accepting() {
  ctl --json list >"$TMP/reopened.json" &&
    [ "$(json '[l["accepting"] for l in j["listeners"]]' <"$TMP/reopened.json")" = "[True, True]" ]
}
until_true 30 accepting || fail "not reopened: $(cat "$TMP/reopened.json")"
sim 0 after run --socket "$TMP/a.sock" --image "$TMP/mem" --vcpus 2 \
  --order random --timeout 60
verified after $PAGES
grep -q "listener a drained: no new sessions; 1 live ones keep running" \
  "$TMP/d.log" || fail "no log line about the drain"
stop_daemons
echo "control-drain: OK"
