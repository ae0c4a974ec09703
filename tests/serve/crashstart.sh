#!/bin/bash
# A serve cannot wait forever: a template whose source kills the worker
# that starts it (the test plugin tcrash) is answered with worker_failed
# once RESTORE_MAX_DEATHS (3) workers have died while it waited, leaving
# no socket, and no later worker is given it.  A VM restoring from
# another restore meanwhile is taken over by every new worker and ends
# with every byte right; the daemon serves again afterwards.
. "$(dirname "$0")/common.sh"

TESTPLUGINS=$BUILD/tests/core/plugins
need_built "$TESTPLUGINS/libtcrash.so"
build b1 81 1024
template_conf "$TMP/d.conf" "" "$(
  cat <<T
  { name = "crash"; socket = "$TMP/sb/{id}.sock";
    source = { plugin = "tcrash"; path = "unused"; }; }
T
)"
start_daemon d "$CTL" --config "$TMP/d.conf" --plugin-dir "$PLUGINS" \
  --plugin-dir "$TESTPLUGINS"
D=$(daemon_pid)
wait_worker "$D" >/dev/null

sctl serve sandbox build_id=b1 sandbox_id=vm --id vm >/dev/null
"$SIM" run --socket "$TMP/sb/vm.sock" --image "$STORE/b1/mem" \
  --delay-us 6000 --timeout 300 >"$TMP/vm.out" 2>"$TMP/vm.err" &
VM=$!
until_true 20 grep -q "session .* on vm: " "$TMP/d.log" ||
  fail "the VM did not start"

rc=0
timeout 120 "$CTL_BIN" ctl --socket "$CTL" --json serve crash --id boom \
  >"$TMP/boom.json" 2>&1 || rc=$?
[ $rc -eq 1 ] || fail "serve of a crashing source: exit $rc: $(cat "$TMP/boom.json")"
[ "$(json 'j["code"]' <"$TMP/boom.json")" = worker_failed ] ||
  fail "code: $(cat "$TMP/boom.json")"
json 'j["error"]' <"$TMP/boom.json" | grep -q "the worker died 3 times" ||
  fail "error: $(cat "$TMP/boom.json")"
[ ! -e "$TMP/sb/boom.sock" ] || fail "the failed serve left its socket"
[ "$(count_log d 'worker [0-9]+ died')" -eq 3 ] ||
  fail "$(count_log d 'worker [0-9]+ died') workers died, not 3"

[ "$(count_log d 'handed back 1 live sessions')" -ge 2 ] ||
  fail "the VM was not live through the crashes: slow it down"
wait $VM || fail "VM across the crashes: $(cat "$TMP/vm.err")"
check_sim 0 vm 0
verified vm 1024
sctl --json list >"$TMP/list.json"
[ "$(json '[r["id"] for r in j["restores"]]' <"$TMP/list.json")" = "[]" ] ||
  fail "restores left: $(cat "$TMP/list.json")"
sctl serve sandbox build_id=b1 sandbox_id=after --id after >/dev/null ||
  fail "no serve after the crashes"
sim 0 after run --socket "$TMP/sb/after.sock" --image "$STORE/b1/mem" \
  --timeout 60
verified after 1024
[ "$(count_log d 'worker [0-9]+ died')" -eq 3 ] ||
  fail "a worker died after the serve was answered"
