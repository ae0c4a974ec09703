# Functions shared by the control tests; sourced after tests/lib/functions.sh.
command -v python3 >/dev/null || skip "python3 is needed to read JSON"
# The interpreter itself, run directly from here on: a version manager's
# shim costs a few hundred milliseconds a call, and the live session these
# tests look at lasts only seconds.
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
need_built "$UFFDKIT" "$SIM"
"$UFFDKIT" ctl --help >"$TMP/ctl-help.out" 2>&1 ||
  fail "uffdkit ctl --help failed: $(cat "$TMP/ctl-help.out")"
HTTP=${UFFDKIT_HAVE_MHD:-ON}
case "$HTTP" in ON | on | 1 | TRUE | true) HTTP=1 ;; *) HTTP=0 ;; esac

# ctl ARGS...: uffdkit ctl on the test's control socket.
ctl() {
  "$UFFDKIT" ctl --socket "$CTL" "$@"
}

# json EXPR: prints the Python expression EXPR evaluated with j bound to
# the JSON document read from standard input.
json() {
  "$PYTHON" -c 'import json, sys; j = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
}

# metric TEXT_FILE SAMPLE: the value of the sample line whose name and
# labels are SAMPLE, e.g. 'uffdkit_faults_total{listener="a"}'.
metric() {
  awk -v m="$2" '$1 == m { print $2; found = 1 } END { exit !found }' "$1" ||
    fail "no sample $2 in $1"
}

# http_port LOG: the port the daemon logged for its metrics endpoint.
http_port() {
  local port i
  for ((i = 0; i < 100; i++)); do
    port=$(grep -o 'metrics on http://127\.0\.0\.1:[0-9]*/metrics' "$1" |
      tail -1 | sed 's/.*:\([0-9]*\)\/metrics/\1/') || true
    [ -n "$port" ] && {
      echo "$port"
      return 0
    }
    sleep 0.05
  done
  fail "the daemon did not log its metrics address"
}
