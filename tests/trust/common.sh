# Functions shared by the trust tests; sourced by each of them, with the
# build directory as $1.  Brings in tests/lib/functions.sh and the core
# tests' functions (sim, check_sim, verified, wait_log, count_log, worker_of,
# wait_worker, daemon_pid).
. "$(dirname "${BASH_SOURCE[0]}")/../lib/functions.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../core/common.sh"

PLUGINS=$BUILD/lib/uffdkit/plugins
CTL_BIN=$BUILD/bin/uffdkit
command -v python3 >/dev/null || skip "python3 is needed to read JSON"

# ctl SOCKET ARGS...: uffdkit ctl on a control socket.
ctl() {
  local sock=$1
  shift
  "$CTL_BIN" ctl --socket "$sock" "$@"
}

# json EXPR: the Python expression EXPR evaluated with j bound to the JSON
# document read from standard input.
json() {
  python3 -c 'import json, sys; j = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# wait_count LOG REGEX N [SECONDS]: waits until N lines of $TMP/LOG.log
# match.
wait_count() {
  local log=$1 re=$2 n=$3 secs=${4:-10} i
  for ((i = 0; i < secs * 20; i++)); do
    [ "$(count_log "$log" "$re")" -ge "$n" ] && return 0
    sleep 0.05
  done
  fail "$log.log has $(count_log "$log" "$re") lines matching '$re' after" \
    "$secs s, expected $n"
}

# line_of LOG REGEX [N]: the line number of the Nth (default: first) line
# of $TMP/LOG.log matching, or nothing.
line_of() {
  grep -E -n -- "$2" "$TMP/$1.log" | sed -n "${3:-1}p" | cut -d: -f1
}

# workers_of PID: every worker process of the daemon PID, one a line.
workers_of() {
  local p
  for p in $(pgrep -P "$1" || true); do
    if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q -- '--worker'; then
      echo "$p"
    fi
  done
}

# new_worker PID KNOWN...: waits for a worker of daemon PID that is none of
# KNOWN and prints it.
new_worker() {
  local d=$1 w i k known
  shift
  for ((i = 0; i < 200; i++)); do
    for w in $(workers_of "$d"); do
      known=0
      for k in "$@"; do
        [ "$w" = "$k" ] && known=1
      done
      [ $known -eq 0 ] && {
        echo "$w"
        return 0
      }
    done
    sleep 0.05
  done
  fail "daemon $d has no new worker (known: $*)"
}

# still_running PID WHAT: PID must not have exited yet.
still_running() {
  kill -0 "$1" 2>/dev/null ||
    fail "$2 finished too early for the test to mean anything: slow it down"
}
