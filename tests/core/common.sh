# Functions shared by the core daemon's integration tests; sourced after
# tests/lib/functions.sh.
PEER=$BUILD/bin/core-test-peer
need_built "$UFFDKIT" "$SIM" "$PEER"

# check_refused NAME GOT: a simulator run with --expect-refused ended as a
# refusal (the simulator recognises every way the close can reach it).
check_refused() {
  check_sim 0 "$1" "$2"
}


# wait_log LOG REGEX [SECONDS]: waits until a line of $TMP/LOG.log matches.
wait_log() {
  local log=$TMP/$1.log re=$2 secs=${3:-10} i
  for ((i = 0; i < secs * 20; i++)); do
    grep -E -q -- "$re" "$log" && return 0
    sleep 0.05
  done
  fail "$1.log has no line matching '$re' after $secs s"
}

# count_log LOG REGEX: lines of $TMP/LOG.log matching.
count_log() {
  grep -E -c -- "$2" "$TMP/$1.log" || true
}

# worker_of PID: the worker process of the daemon PID (its child started
# with --worker), or nothing.
worker_of() {
  local p
  for p in $(pgrep -P "$1" || true); do
    if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- '--worker'; then
      echo "$p"
      return 0
    fi
  done
}

# wait_worker PID [NOT_PID]: waits for a worker of daemon PID other than
# NOT_PID and prints it.
wait_worker() {
  local d=$1 not=${2:-} w i
  for ((i = 0; i < 200; i++)); do
    w=$(worker_of "$d")
    if [ -n "$w" ] && [ "$w" != "$not" ]; then
      echo "$w"
      return 0
    fi
    sleep 0.05
  done
  fail "daemon $d has no new worker"
}

# daemon_pid: the pid of the daemon started last.
daemon_pid() {
  echo "${DAEMON_PIDS[${#DAEMON_PIDS[@]} - 1]}"
}
