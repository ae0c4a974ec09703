# Functions shared by the simulator's own tests; sourced after
# tests/lib/functions.sh.
REF=$BUILD/bin/ref-handler
[ -x "$SIM" ] || fail "$SIM is missing: build the uffdkit-sim target"
[ -x "$REF" ] || fail "$REF is missing: build the ref-handler target"

# start_ref LOGNAME SOCKET MEMFILE: runs ref-handler in the background.
start_ref() {
  local name=$1 sock=$2 mem=$3
  "$REF" "$sock" "$mem" >"$TMP/$name.log" 2>&1 &
  DAEMON_PIDS+=($!)
  wait_for_socket "$sock"
}

