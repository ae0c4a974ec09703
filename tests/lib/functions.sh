# Shared helpers for integration tests (sourced by tests/*/*.sh).
# ctest passes the build directory as $1 to every shell test.
set -euo pipefail

BUILD=${1:?usage: test.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
UFFDKIT=$BUILD/bin/uffdkit
SIM=$BUILD/bin/uffdkit-sim
SNAP=$BUILD/bin/uffdkit-snap
TMP=$(mktemp -d /tmp/uffdkit-test.XXXXXX)
DAEMON_PIDS=()
HUGEPAGES_BEFORE=

cleanup() {
  local rc=$?
  for pid in "${DAEMON_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${DAEMON_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [ -n "$HUGEPAGES_BEFORE" ]; then
    echo "$HUGEPAGES_BEFORE" >/proc/sys/vm/nr_hugepages || true
  fi
  if [ $rc -ne 0 ] && [ -d "$TMP" ]; then
    for f in "$TMP"/*.log; do
      [ -f "$f" ] || continue
      echo "---- $f"
      tail -n 40 "$f"
    done
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# until_true SECONDS COMMAND...: retries COMMAND every 50 ms.
until_true() {
  local secs=$1 i
  shift
  for ((i = 0; i < secs * 20; i++)); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}

# free_port: a TCP port nobody listens on at 127.0.0.1 right now.
free_port() {
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# need_built FILE...: fails unless each program or plugin was built (and
# can be run or loaded).
need_built() {
  local f
  for f in "$@"; do
    [ -x "$f" ] || fail "$f is missing: build it first"
  done
}

# wait_for_socket PATH [SECONDS]
wait_for_socket() {
  local path=$1 secs=${2:-10} i
  for ((i = 0; i < secs * 20; i++)); do
    [ -S "$path" ] && return 0
    sleep 0.05
  done
  fail "socket $path did not appear"
}

# start_daemon LOGNAME SOCKET ARGS... : runs uffdkit ARGS in the background,
# logging to $TMP/LOGNAME.log, and waits for SOCKET.
start_daemon() {
  local name=$1 sock=$2
  shift 2
  "$UFFDKIT" "$@" >"$TMP/$name.log" 2>&1 &
  DAEMON_PIDS+=($!)
  wait_for_socket "$sock"
}

# stop_daemons: SIGTERM every daemon started, and check each exited 0.
stop_daemons() {
  local pid rc
  for pid in "${DAEMON_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    rc=0
    wait "$pid" || rc=$?
    [ $rc -eq 0 ] || fail "daemon $pid exited with $rc"
  done
  DAEMON_PIDS=()
}

# skip REASON...: the test cannot run on this machine: exit 77, which
# ctest reports as skipped.  With CI=true a skip would silently drop the
# coverage the CI run promises (2 MiB pages, a tool it installs), so there
# it fails instead.
skip() {
  [ "${CI:-}" != true ] || fail "CI=true and this test would be skipped: $*"
  echo "SKIPPED: $*" >&2
  exit 77
}

# reserve_hugepages N: reserve N 2 MiB pages (restored at exit), or skip
# the test if the kernel cannot give them.
reserve_hugepages() {
  local want=$1 have
  HUGEPAGES_BEFORE=$(cat /proc/sys/vm/nr_hugepages)
  echo $((HUGEPAGES_BEFORE + want)) >/proc/sys/vm/nr_hugepages
  have=$(cat /proc/sys/vm/nr_hugepages)
  if [ "$have" -lt $((HUGEPAGES_BEFORE + want)) ]; then
    skip "only $have of $((HUGEPAGES_BEFORE + want)) 2 MiB huge pages could" \
      "be reserved, the 2 MiB part did not run"
  fi
}

# ---- the simulator (uffdkit-sim) ----

# sim RC NAME ARGS...: runs uffdkit-sim ARGS, stdout to $TMP/NAME.out and
# stderr to $TMP/NAME.err, and fails unless it exits with RC.
sim() {
  local want=$1 name=$2 rc=0
  shift 2
  "$SIM" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || rc=$?
  check_sim "$want" "$name" "$rc"
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
