# Functions shared by the core daemon's integration tests; sourced after
# tests/lib/functions.sh.
PEER=$BUILD/bin/core-test-peer
for bin in "$UFFDKIT" "$SIM" "$PEER"; do
  [ -x "$bin" ] || fail "$bin is missing: build it first"
done

# sim RC NAME ARGS...: runs uffdkit-sim ARGS, stdout to $TMP/NAME.out and
# stderr to $TMP/NAME.err, and fails unless it exits with RC.
sim() {
  local want=$1 name=$2 rc=0
  shift 2
  "$SIM" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
  check_sim "$want" "$name" "$rc"
}

# check_refused NAME GOT: a simulator run with --expect-refused ended as a
# refusal: exit 0 (it saw the close), or 4 when the close came before its
# send and only that broke the send.
check_refused() {
  local name=$1 got=$2
  if [ "$got" -eq 4 ]; then
    grep -E -q "sending the handshake failed: (Broken pipe|Connection reset)" \
      "$TMP/$name.err" ||
      fail "$name: exit 4 but not from the close: $(cat "$TMP/$name.err")"
  else
    check_sim 0 "$name" "$got"
  fi
}

# check_sim RC NAME GOT: the verdict on a simulator run started by hand.
check_sim() {
  local want=$1 name=$2 got=$3
  if [ "$got" -ne "$want" ]; then
    cat "$TMP/$name.out" "$TMP/$name.err" >&2
    fail "$name: uffdkit-sim exited with $got, expected $want"
  fi
  if [ -s "$TMP/$name.out" ]; then
    echo "$name: $(cat "$TMP/$name.out")"
  fi
  return 0
}

# field NAME KEY: a key=value of the summary line in $TMP/NAME.out.
field() {
  grep -o "\b$2=[^ ]*" "$TMP/$1.out" | cut -d= -f2
}

expect_field() {
  local got
  got=$(field "$1" "$2")
  [ "$got" = "$3" ] || fail "$1: $2=$got, expected $3"
}

# verified NAME PAGES: the run touched PAGES pages, every byte right.
verified() {
  expect_field "$1" pages "$2"
  expect_field "$1" mismatches 0
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
