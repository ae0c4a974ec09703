# Functions shared by the control tests; sourced after tests/lib/functions.sh.
command -v python3 >/dev/null || {
  echo "python3 is needed to read JSON" >&2
  exit 77
}
[ -x "$SIM" ] || fail "$SIM is missing: build the uffdkit-sim target"
if ! "$UFFDKIT" ctl --help >/dev/null 2>&1; then
  echo "this uffdkit has no 'ctl' command (core/main.c does not call" \
    "ctl_main yet)" >&2
  exit 77
fi
HTTP=${UFFDKIT_HAVE_MHD:-ON}
case "$HTTP" in ON | on | 1 | TRUE | true) HTTP=1 ;; *) HTTP=0 ;; esac

# ctl ARGS...: uffdkit ctl on the test's control socket.
ctl() {
  "$UFFDKIT" ctl --socket "$CTL" "$@"
}

# json EXPR: prints the Python expression EXPR evaluated with j bound to
# the JSON document read from standard input.
json() {
  python3 -c 'import json, sys; j = json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"
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
