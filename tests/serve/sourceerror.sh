#!/bin/bash
# A source that fails in the middle of a restore is told to watchers at
# once, naming the error and the policy: two restores read an http origin
# that starts answering 500 after a few requests,
#   kill  on_source_error = "kill": the event `failed` (error naming the
#         HTTP status, policy kill, the session) comes before `ended`
#         (reason failed), and the VM is killed;
#   hang  on_source_error = "hang": `failed` (policy hang) comes while the
#         vCPU stays blocked; `stop` then ends the VM.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/../http/servers.sh"

make_image 4M --seed 91
start_faulty "$TMP/www"
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = "$CTL"; };
templates = (
  { name = "kill"; socket = "$TMP/sb/{id}.sock"; on_source_error = "kill";
    source = { plugin = "http"; url = "$FAULTY/mem.img"; timeout = "10s"; }; },
  { name = "hang"; socket = "$TMP/sb/{id}.sock"; on_source_error = "hang";
    source = { plugin = "http"; url = "$FAULTY/mem.img"; timeout = "10s"; }; }
);
CONF
start_daemon d "$CTL" --config "$TMP/d.conf" --plugin-dir "$PLUGINS"
watch_start all

# errors_after K: the origin answers K file requests, then only 500s.
errors_after() {
  curl -sf "$FAULTY/_reset" >/dev/null &&
    curl -sf "$FAULTY/_control?mode=500&count=100000&after=$1" >/dev/null ||
    fail "cannot arm the origin"
}

# ---- kill ----
sctl serve kill --id rk >/dev/null
errors_after 8
rc=0
"$SIM" run --socket "$TMP/sb/rk.sock" --image "$IMG" --timeout 60 \
  >"$TMP/rk.out" 2>"$TMP/rk.err" || rc=$?
[ $rc -ne 0 ] || fail "the VM of rk restored although its source failed"
wait_event all '"event":"removed","id":"rk"'
[ "$(kinds all rk)" = "listening connected closed ready failed ended removed" ] ||
  fail "events of rk: $(kinds all rk)"
[ "$(event all rk failed 'e["policy"], e["session"] is not None')" = "('kill', True)" ] ||
  fail "failed event of rk: $(grep '"failed"' "$TMP/all.events")"
event all rk failed 'e["error"]' | grep -q "500" ||
  fail "the failed event does not name the error: $(grep '"failed"' "$TMP/all.events")"
[ "$(event all rk ended 'e["reason"]')" = failed ] ||
  fail "ended of rk: $(grep '"ended"' "$TMP/all.events")"

# ---- hang ----
curl -sf "$FAULTY/_reset" >/dev/null || fail "cannot reset the origin"
sctl serve hang --id rh >/dev/null
errors_after 8
"$SIM" run --socket "$TMP/sb/rh.sock" --image "$IMG" --timeout 120 \
  >"$TMP/rh.out" 2>"$TMP/rh.err" &
VM=$!
wait_event all '"event":"failed","id":"rh"' 60
[ "$(event all rh failed 'e["policy"]')" = hang ] ||
  fail "failed event of rh: $(grep '"failed"' "$TMP/all.events")"
event all rh failed 'e["error"]' | grep -q "500" ||
  fail "the failed event does not name the error: $(grep '"failed"' "$TMP/all.events")"
still_running $VM "the blocked VM"
sctl stop rh >/dev/null
wait $VM && fail "the blocked VM finished its restore"
wait_event all '"event":"removed","id":"rh"'
[ "$(event all rh ended 'e["reason"]')" = stopped ] ||
  fail "ended of rh: $(grep '"ended"' "$TMP/all.events")"
