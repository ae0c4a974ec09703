#!/bin/bash
# A VM that goes away while the daemon's read for it hangs in a slow
# answer costs no other VM anything: its session's thread waits for that
# read, but the worker keeps starting and ending the sessions of other
# VMs meanwhile.  Checked by order, not by time: the server holds the
# stuck read until the test releases it, and a VM that connects after
# another session ended restores completely while the stuck session is
# still waiting.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"

make_image 16M --seed 23
start_nginx "$TMP/www"
start_faulty "$TMP/www"
# Longer than any restore here may take (sanitizers, a loaded machine):
# the hold is ended by /_release once both VMs are done.
HOLD=600

cat >"$TMP/daemon.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = (
  { name = "slow"; socket = "$TMP/slow.sock";
    source = { plugin = "http"; url = "$FAULTY/mem.img"; timeout = "600s"; };
  },
  { name = "fast"; socket = "$TMP/fast.sock";
    source = { plugin = "http";
               url = "http://127.0.0.1:$NGINX_PORT/mem.img"; }; }
);
CONF
LOG=$TMP/daemon.log
start_daemon daemon "$TMP/slow.sock" --config "$TMP/daemon.conf"
wait_for_socket "$TMP/fast.sock"
until_true 10 grep -q "listener slow: http, 16777216 bytes" "$LOG" ||
  fail "listener slow did not start"

# The next file request to the faulty server is answered after $HOLD s.
curl -sf "$FAULTY/_reset" >/dev/null || fail "cannot reset the server"
curl -sf "$FAULTY/_control?mode=delay&seconds=$HOLD&count=1" >/dev/null ||
  fail "cannot arm the delay"
"$SIM" run --socket "$TMP/slow.sock" --image "$IMG" --vcpus 1 \
  --timeout 120 >"$TMP/stuck.out" 2>"$TMP/stuck.err" &
STUCK=$!
# stuck: the delayed request has reached the server.
stuck() {
  [ "$(curl -s "$FAULTY/_stats" | python3 -c 'import json, sys
print(json.load(sys.stdin)["faults"])')" = 1 ]
}
until_true 10 stuck || fail "the stuck read never started"
kill -KILL "$STUCK"
wait "$STUCK" 2>/dev/null || true

# One VM restores and ends (its end makes the worker collect finished
# sessions), then another restores: both while the read still hangs.
restore_http first "$TMP/fast.sock"
restore_http second "$TMP/fast.sock"
grep -qE "session [0-9]+ \(pid $STUCK\) on slow ended" "$LOG" &&
  fail "the second VM restored only after the stuck session ended"

# Then the stuck session ends too, once its read returns.
curl -sf "$FAULTY/_release" >/dev/null || fail "cannot release the read"
until_true 30 grep -qE "session [0-9]+ \(pid $STUCK\) on slow ended" \
  "$LOG" || fail "the stuck session never ended"
stop_daemons
