# How the daemon learns a VM is gone.  Firecracker 1.12 and later keep the
# socket for life, so a hang-up ends the session even while the process
# lives on; 1.1 to 1.11 close it right after the handshake, so that EOF
# means nothing and only the process's exit (its pidfd) ends the session.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 16M --seed 9
start_daemon d "$TMP/s.sock" --socket "$TMP/s.sock" mmap path="$TMP/mem"

ended() {
  echo "session [0-9]+ \(pid $1\) on cli ended: "
}

# ---- 1.12: the hang-up alone ends it ----
# peer_hangs_up MODE: runs core-test-peer MODE; the session must end at its
# hang-up while the process still lives.
peer_hangs_up() {
  local mode=$1 i
  "$PEER" "$mode" "$TMP/s.sock" "$TMP/mem" 30 >"$TMP/$mode.out" \
    2>"$TMP/$mode.err" &
  peer=$!
  for ((i = 0; i < 200; i++)); do
    grep -q "hung up" "$TMP/$mode.out" && break
    kill -0 $peer 2>/dev/null ||
      fail "$mode: the peer exited: $(cat "$TMP/$mode.out" "$TMP/$mode.err")"
    sleep 0.05
  done
  grep -q "verified 4096 pages" "$TMP/$mode.out" ||
    fail "$mode: the peer did not verify its pages: $(cat "$TMP/$mode.out" "$TMP/$mode.err")"
  wait_log d "$(ended $peer)" 5
  kill -0 $peer 2>/dev/null ||
    fail "$mode: the peer exited: the session may have ended by its exit, not its hang-up"
  echo "$mode: $(grep -E "$(ended $peer)" "$TMP/d.log" | sed 's/.*info: //')"
  kill $peer
  wait $peer 2>/dev/null || true
  [ "$(count_log d "$(ended $peer)")" -eq 1 ] || fail "$mode: the session ended twice"
}
peer_hangs_up hangup
# Bytes after the JSON (kept, not parsed) and more bytes later on the
# socket do not disturb the session, nor pass for a hang-up.
peer_hangs_up chatty
grep -E -q "session [0-9]+: pid $peer .*\(extra bytes after the handshake kept\)" \
  "$TMP/d.log" || fail "chatty: the bytes after the handshake were not noticed"

# ---- 1.12 through the simulator: ends when it exits ----
sim 0 v112 run --socket "$TMP/s.sock" --image "$TMP/mem" --style 1.12
verified v112 4096
wait_log d "session [0-9]+: pid [0-9]+ .*on cli"
# The simulator's pid is the one the last session logged.
p=$(grep -E -o "session [0-9]+: pid [0-9]+" "$TMP/d.log" | tail -1 | awk '{print $4}')
wait_log d "$(ended "$p")" 5

# ---- 1.1 and 1.7: the closed socket does not end it, the exit does ----
for style in 1.1 1.7; do
  "$SIM" run --socket "$TMP/s.sock" --image "$TMP/mem" --style $style \
    --hold 2 --timeout 30 >"$TMP/v$style.out" 2>"$TMP/v$style.err" &
  pid=$!
  wait_log d "session [0-9]+: pid $pid "
  # The simulator verifies 16 MiB in well under a second, then holds.
  sleep 1
  kill -0 $pid 2>/dev/null ||
    fail "$style: the simulator ended before the check: $(cat "$TMP/v$style.err")"
  if grep -E -q "$(ended $pid)" "$TMP/d.log"; then
    fail "$style: the session ended at the socket's EOF, while the VM lives"
  fi
  rc=0
  wait $pid || rc=$?
  check_sim 0 "v$style" $rc
  verified "v$style" 4096
  wait_log d "$(ended $pid)" 5
  echo "$style exit: $(grep -E "$(ended $pid)" "$TMP/d.log" | sed 's/.*info: //')"
done

# A 1.1 VM that faults after its socket is closed is still served: the
# session lives on after EOF (every page verified with --delay-us spread
# over more than the hand-off).
sim 0 late run --socket "$TMP/s.sock" --image "$TMP/mem" --style 1.1 \
  --delay-us 100 --timeout 30
verified late 4096

stop_daemons
