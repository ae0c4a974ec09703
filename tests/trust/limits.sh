#!/bin/bash
# The listener's limits, each met while good VMs are being served on the
# same listener, which never notice:
#   max_sessions = 2         a third concurrent VM is refused, the log
#                            naming the limit;
#   max_handshake_bytes = 4K an 8 KiB handshake (valid JSON, padded with
#                            spaces) is refused, though the same bytes are
#                            accepted by a listener with the default limit;
#   max_regions = 2          a VM with 3 regions is refused, one with 2 is
#                            served;
#   handshake_timeout = 300ms a peer that sends nothing is cut after about
#                            0.3 s.
. "$(dirname "$0")/common.sh"

PAGES=4096
sim 0 img mkimage "$TMP/mem" --size 16M --seed 61
SOCK=$TMP/l.sock
CTL=$TMP/ctl.sock
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = "$CTL"; };
listeners = (
  { name = "l"; socket = "$SOCK"; max_sessions = 2;
    max_handshake_bytes = "4K"; max_regions = 2; handshake_timeout = "300ms";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; },
  { name = "big"; socket = "$TMP/big.sock";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
start_daemon d "$SOCK" --config "$TMP/d.conf"
D=$(daemon_pid)
W=$(wait_worker "$D")
wait_log d "worker $W ready"

# slow NAME PAGES_TO_TOUCH: a good VM on l, 1 ms between touches, in the
# background; sets SLOW_PID once its session started.
slow() {
  "$SIM" run --socket "$SOCK" --image "$TMP/mem" --mem-size "$(($2 * 4))K" \
    --delay-us 1000 --timeout 60 >"$TMP/$1.out" 2>"$TMP/$1.err" &
  SLOW_PID=$!
  wait_log d "session [0-9]+: pid $SLOW_PID "
}

# refused NAME WHY ARGS...: a peer started with ARGS is turned away with
# one log line about its pid naming WHY, and gets no session.
refused() {
  local name=$1 why=$2 rc=0
  shift 2
  "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  local pid=$!
  wait $pid || rc=$?
  check_refused "$name" $rc
  wait_log d "pid $pid .*$why"
  [ "$(count_log d "pid $pid ")" -eq 1 ] ||
    fail "$name: $(count_log d "pid $pid ") log lines about pid $pid, expected 1"
  echo "$name: $(grep "pid $pid " "$TMP/d.log" | sed 's/.*warn: //')"
}

# The VM that runs alongside every refusal (about 4.5 s).
slow alongside $PAGES
ALONG=$SLOW_PID

# ---- max_sessions = 2 ----
slow second 1024
SECOND=$SLOW_PID
refused third "uid 0 gid 0: max_sessions reached" \
  "$SIM" run --socket "$SOCK" --image "$TMP/mem" --expect-refused --timeout 5
still_running $SECOND "the second VM"
still_running $ALONG "the VM alongside"
rc=0
wait $SECOND || rc=$?
check_sim 0 second $rc
verified second 1024
wait_log d "\(pid $SECOND\) on l ended"

# ---- max_handshake_bytes = 4K: 8 KiB of valid JSON ----
head=$(printf '[{"base_host_virt_addr":%d,"size":%d,"offset":0,%s}' \
  $((0x7f0000000000)) $((PAGES * 4096)) '"page_size":4096,"page_size_kib":4096')
{
  printf '%s' "$head"
  head -c $((8192 - ${#head} - 1)) /dev/zero | tr '\0' ' '
  printf ']'
} >"$TMP/long.json"
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$TMP/long.json" ||
  fail "long.json is not valid JSON"
[ "$(stat -c %s "$TMP/long.json")" -eq 8192 ] || fail "long.json is not 8 KiB"
refused long "handshake longer than max_handshake_bytes \(4096\)" \
  "$SIM" run --socket "$SOCK" --image "$TMP/mem" --raw-handshake \
  "$TMP/long.json" --expect-refused --timeout 5
# The same bytes where the limit is the default 64 KiB: a session.  The
# simulator touches nothing (its memory is elsewhere) and is ended here.
"$SIM" run --socket "$TMP/big.sock" --image "$TMP/mem" --raw-handshake \
  "$TMP/long.json" --expect-refused --timeout 30 >"$TMP/big.out" \
  2>"$TMP/big.err" &
BIG=$!
wait_log d "session [0-9]+: pid $BIG uid 0 on big, 1 regions"
kill $BIG
wait $BIG 2>/dev/null || true
wait_log d "\(pid $BIG\) on big ended"
echo "long on big: accepted as a session"
still_running $ALONG "the VM alongside"

# ---- max_regions = 2 ----
refused regions3 "handshake has 3 regions, more than the 2 allowed" \
  "$SIM" run --socket "$SOCK" --image "$TMP/mem" --regions 3 \
  --expect-refused --timeout 5
sim 0 regions2 run --socket "$SOCK" --image "$TMP/mem" --regions 2 --vcpus 2
verified regions2 $PAGES
still_running $ALONG "the VM alongside"

# ---- handshake_timeout = 300ms ----
"$PEER" silent "$SOCK" 5 >"$TMP/silent.out" 2>"$TMP/silent.err" ||
  fail "the silent peer was not cut: $(cat "$TMP/silent.err")"
took=$(awk '{print $3}' "$TMP/silent.out")
awk -v t="$took" 'BEGIN { exit !(t >= 0.25 && t < 1.5) }' ||
  fail "the silent peer was cut after $took s, expected about 0.3 s"
wait_log d "no complete handshake before handshake_timeout"
echo "silent: cut after $took s"
still_running $ALONG "the VM alongside"

# ---- the VM alongside: every byte, one session start and end ----
rc=0
wait $ALONG || rc=$?
check_sim 0 alongside $rc
verified alongside $PAGES
wait_log d "\(pid $ALONG\) on l ended"
[ "$(count_log d "pid $ALONG\)? ")" -eq 3 ] ||
  fail "the VM alongside is in the log other than started and ended: $(grep "pid $ALONG" "$TMP/d.log")"

# The counters agree: one peer refused, three handshakes cut.
ctl "$CTL" --json stats >"$TMP/stats.json"
[ "$(json '[(l["refused_peers"], l["handshake_errors"]) for l in j["listeners"] if l["name"] == "l"]' <"$TMP/stats.json")" = "[(1, 3)]" ] ||
  fail "listener l counters: $(cat "$TMP/stats.json")"
[ "$(worker_of "$D")" = "$W" ] || fail "the worker changed: it crashed"
stop_daemons
