#!/bin/bash
# Faults of the object server while the daemon restores from it: 500s,
# truncated bodies, answers slower than the source's timeout, and the server
# going away mid-restore and coming back a second later.  Each fault is met
# three times, on three listeners of one daemon reading the same server:
#   retry  a retry layer hides it: the simulator verifies every byte;
#   kill   no retry, on_source_error = "kill": the VM is killed with
#          SIGKILL, the log names the source error and the policy, and no
#          wrong page was ever installed (strict-vmm checks each page the
#          moment its fault returns and reports at once);
#   hang   no retry, on_source_error = "hang": the vCPU stays blocked until
#          the simulator's watchdog fires, and the log says so.
# The daemon counts the VMs it killed, per listener (uffdkit_vms_killed_total):
# one per kill case, none elsewhere.
# Meanwhile a fourth listener, reading from nginx, serves a healthy VM to
# the end, and the daemon survives it all.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"

VMM=$BUILD/bin/test-http-strict-vmm
need_built "$UFFDKIT" "$SIM" "$VMM"

make_image 16M --seed 21
start_nginx "$TMP/www"
start_faulty "$TMP/www"

# The faulty listeners give up on a request after 2 s (a loaded machine
# can take a second to answer); the retry layer
# waits at least 1.6 s over its tries, longer than the server stays down.
SRC="source = { plugin = \"http\"; url = \"$FAULTY/mem.img\";
               timeout = \"2s\"; connect_timeout = \"2s\"; };"
CTL=$TMP/ctl.sock
cat >"$TMP/daemon.conf" <<CONF
uffdkit = { control_socket = "$CTL"; };
listeners = (
  { name = "retry"; socket = "$TMP/retry.sock"; $SRC
    layers = ( { layer = "retry"; tries = 10; delay = "50ms";
                 max_delay = "500ms"; } ); },
  { name = "kill"; socket = "$TMP/kill.sock"; $SRC
    on_source_error = "kill"; },
  { name = "hang"; socket = "$TMP/hang.sock"; $SRC
    on_source_error = "hang"; },
  { name = "healthy"; socket = "$TMP/healthy.sock";
    source = { plugin = "http";
               url = "http://127.0.0.1:$NGINX_PORT/mem.img"; }; }
);
CONF
LOG=$TMP/daemon.log
start_daemon daemon "$TMP/retry.sock" --config "$TMP/daemon.conf"
DAEMON=${DAEMON_PIDS[-1]}
# Faults are armed once every listener has started (and probed) its source.
for l in retry kill hang healthy; do
  for ((i = 0; i < 200; i++)); do
    grep -qE "listener $l: http(\+retry)?, 16777216 bytes" "$LOG" && break
    sleep 0.05
  done
  grep -qE "listener $l: http(\+retry)?, 16777216 bytes" "$LOG" ||
    fail "listener $l did not start"
done

stats() {
  curl -s "$FAULTY/_stats" | python3 -c 'import json, sys
print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# arm QUERY: clears the server's faults and counts, then arms QUERY.
arm() {
  curl -sf "$FAULTY/_reset" >/dev/null || fail "cannot reset the server"
  curl -sf "$FAULTY/_control?$1" >/dev/null || fail "cannot arm $1"
}

# wait_up: until the server answers again (after a "down" fault).
wait_up() {
  wait_http "$FAULTY/_stats" 10 || fail "the server did not come back"
}

daemon_alive() {
  kill -0 "$DAEMON" 2>/dev/null || fail "$1: the daemon died"
}

# The fault cases: NAME, control query, what the log names (ERE).  Each
# fault starts after 600 good requests, in the middle of the restore.
CASES=(
  "500s|mode=500&count=4&after=600|HTTP status 500"
  "truncated|mode=truncate&count=4&after=600|after 2048 of 4096 bytes"
  "slow|mode=delay&seconds=4&count=4&after=600|[Tt]imed? ?out"
  "down|mode=down&seconds=1&after=600|Empty reply|Recv failure|connect|transfer closed"
)

# retry_case NAME QUERY: with the retry layer every byte arrives.
retry_case() {
  local name=$1 query=$2 rc=0 lines
  lines=$(wc -l <"$LOG")
  arm "$query"
  "$SIM" run --socket "$TMP/retry.sock" --image "$IMG" --vcpus 2 \
    --timeout 60 >"$TMP/retry-$name.out" 2>"$TMP/retry-$name.log" || rc=$?
  [ $rc -eq 0 ] || {
    cat "$TMP/retry-$name.out" "$TMP/retry-$name.log" >&2
    fail "retry $name: uffdkit-sim exited with $rc"
  }
  wait_up
  # Every armed fault met a request ("down" is one fault).
  local faults want=1
  [[ $query =~ count=([0-9]+) ]] && want=${BASH_REMATCH[1]}
  faults=$(stats faults)
  [ "$faults" -eq "$want" ] ||
    fail "retry $name: $faults faults served, $want armed"
  tail -n +"$((lines + 1))" "$LOG" | grep -q "retry: bytes .* failed" ||
    fail "retry $name: the retry layer logged no retry"
  if tail -n +"$((lines + 1))" "$LOG" | grep -q "could not deliver"; then
    fail "retry $name: a read failed through the retry layer"
  fi
  echo "retry $name: $faults faults hidden; $(cat "$TMP/retry-$name.out")"
}

# start_healthy NAME: a VM on the healthy listener, slowed down so that it
# is still restoring when the next case is over; it has started once nginx
# has answered some of its faults.
start_healthy() {
  HEALTHY_NAME=$1
  local before i
  before=$(grep -c ' 206 ' "$NGINX_DIR/access.log" || true)
  "$SIM" run --socket "$TMP/healthy.sock" --image "$IMG" --vcpus 1 \
    --delay-us 800 --timeout 60 >"$TMP/healthy-$1.out" \
    2>"$TMP/healthy-$1.log" &
  HEALTHY_PID=$!
  for ((i = 0; i < 500; i++)); do
    [ "$(grep -c ' 206 ' "$NGINX_DIR/access.log" || true)" -gt \
      $((before + 20)) ] && return 0
    sleep 0.02
  done
  fail "healthy $1: the healthy VM did not start"
}

# healthy_mid: the healthy VM must still be restoring now, when the faulty
# session has just failed.
healthy_mid() {
  kill -0 "$HEALTHY_PID" 2>/dev/null ||
    fail "healthy $HEALTHY_NAME: finished before the faulty session failed"
  HEALTHY_MID=$(grep -c ' 206 ' "$NGINX_DIR/access.log" || true)
}

# healthy_end: then it finishes with every byte right, served after the
# faulty session failed too.
healthy_end() {
  local rc=0
  wait "$HEALTHY_PID" || rc=$?
  [ $rc -eq 0 ] || {
    cat "$TMP/healthy-$HEALTHY_NAME.out" "$TMP/healthy-$HEALTHY_NAME.log" >&2
    fail "healthy $HEALTHY_NAME: uffdkit-sim exited with $rc"
  }
  [ "$(grep -c ' 206 ' "$NGINX_DIR/access.log")" -gt "$HEALTHY_MID" ] ||
    fail "healthy $HEALTHY_NAME: nothing served after the failure"
}

# kill_case NAME QUERY ERR: the daemon kills the VM, names the error and
# the policy, and never installs a wrong page.
kill_case() {
  local name=$1 query=$2 err=$3 rc=0 pid out=$TMP/kill-$1.out
  start_healthy "kill-$name"
  arm "$query"
  "$VMM" "$TMP/kill.sock" "$IMG" 2 30 >"$out" 2>"$TMP/kill-$name.log" &
  pid=$!
  wait $pid || rc=$?
  healthy_mid
  if grep '^MISMATCH' "$out" >&2; then
    fail "kill $name: a wrong page was installed"
  fi
  [ $rc -eq 137 ] || {
    cat "$out" "$TMP/kill-$name.log" >&2
    fail "kill $name: the VM exited with $rc, not killed by SIGKILL (137)"
  }
  grep -q '^verified' "$out" ||
    fail "kill $name: killed before any page was verified"
  if grep -q '^done' "$out"; then
    fail "kill $name: the VM finished, yet it was killed"
  fi
  local line
  line=$(grep -E "session [0-9]+ \(pid $pid\): source kill could not deliver" \
    "$LOG" | head -1)
  [ -n "$line" ] || fail "kill $name: no source error logged for pid $pid"
  echo "$line" | grep -qE "$FAULTY/mem.img bytes [0-9]+-[0-9]+: .*($err)" || {
    echo "$line" >&2
    fail "kill $name: the log does not name the source error ($err)"
  }
  echo "$line" | grep -q "; killing the VM (on_source_error)" || {
    echo "$line" >&2
    fail "kill $name: the log does not name the policy"
  }
  healthy_end
  daemon_alive "kill $name"
  wait_up
  local pages
  pages=$(grep "^verified" "$out" | tail -1 | cut -d" " -f2)
  echo "kill $name: $pages pages verified, then: ${line#*could not deliver }"
}

# hang_case NAME QUERY: the vCPU is left blocked; the watchdog ends the VM.
hang_case() {
  local name=$1 query=$2 rc=0 pid i
  start_healthy "hang-$name"
  # Sooner than for the other policies: the watchdog waits for it.
  arm "${query/after=600/after=200}"
  "$SIM" run --socket "$TMP/hang.sock" --image "$IMG" --vcpus 2 \
    --timeout 3 >"$TMP/hang-$name.out" 2>"$TMP/hang-$name.log" &
  pid=$!
  local blocked="session [0-9]+ \(pid $pid\): source hang could not deliver"
  blocked+=" .*; leaving the vCPU blocked \(on_source_error\)"
  for ((i = 0; i < 500; i++)); do
    grep -qE "$blocked" "$LOG" && break
    sleep 0.02
  done
  grep -qE "$blocked" "$LOG" ||
    fail "hang $name: the log does not say the vCPU was left blocked"
  healthy_mid
  wait $pid || rc=$?
  [ $rc -eq 3 ] || {
    cat "$TMP/hang-$name.out" "$TMP/hang-$name.log" >&2
    fail "hang $name: uffdkit-sim exited with $rc, not 3 (timeout)"
  }
  grep -q "^timeout: vCPU [0-9] stuck at memory offset" \
    "$TMP/hang-$name.log" || fail "hang $name: the watchdog did not fire"
  healthy_end
  daemon_alive "hang $name"
  wait_up
  echo "hang $name: $(cat "$TMP/hang-$name.log")"
}

for c in "${CASES[@]}"; do
  IFS='|' read -r name query err <<<"$c"
  retry_case "$name" "$query"
done
for c in "${CASES[@]}"; do
  IFS='|' read -r name query err <<<"$c"
  kill_case "$name" "$query" "$err"
done
for c in "${CASES[@]}"; do
  IFS='|' read -r name query err <<<"$c"
  hang_case "$name" "$query"
done

# killed NAME: the listener's count of VMs killed for a source error.
killed() {
  "$UFFDKIT" ctl --socket "$CTL" --json stats | python3 -c 'import json, sys
for l in json.load(sys.stdin)["listeners"]:
    if l["name"] == sys.argv[1]:
        print(int(l["counters"]["vms_killed"]))' "$1"
}
[ "$(killed kill)" = "${#CASES[@]}" ] ||
  fail "kill: $(killed kill) VMs counted as killed, not ${#CASES[@]}"
for l in retry hang healthy; do
  [ "$(killed $l)" = 0 ] || fail "$l: $(killed $l) VMs counted as killed, not 0"
done
echo "VMs killed: kill $(killed kill), retry/hang/healthy 0"

# After all this, each faulty listener still serves a VM correctly.
curl -sf "$FAULTY/_reset" >/dev/null
for l in kill hang; do
  "$SIM" run --socket "$TMP/$l.sock" --image "$IMG" --vcpus 2 --timeout 60 \
    >"$TMP/after-$l.out" 2>"$TMP/after-$l.log" ||
    fail "$l: the listener no longer serves a healthy VM"
done
stop_daemons
