# With --log-format json (or log_format = "json" in the file) every line a
# daemon writes to stderr is one JSON object: its start and restores, a
# reload of a broken file, an upgrade (SIGUSR2) while the file is broken
# (the new process carries on with the configuration handed over), a
# configuration error at start, and a command-line error.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

command -v python3 >/dev/null || {
  echo "python3 is needed to parse JSON" >&2
  exit 77
}
sim 0 img mkimage "$TMP/mem" --size 8M --seed 3

# all_json LOG: every line of $TMP/LOG.log is a JSON object with time,
# level, process, pid and msg.
all_json() {
  python3 - "$TMP/$1.log" <<'PY' || fail "$1: a line of its stderr is not JSON"
import json, sys
lines = open(sys.argv[1], errors="replace").read().splitlines()
assert lines, "no lines"
for n, line in enumerate(lines, 1):
    try:
        o = json.loads(line)
        assert isinstance(o, dict) and set(o) >= {"time", "level", "process", "pid", "msg"}
    except Exception as e:
        sys.exit("%s:%d: %r: %s" % (sys.argv[1], n, line, e))
print("%s: %d lines, all JSON" % (sys.argv[1], len(lines)))
PY
}

# conf FILE NAME [GLOBAL]: a config with one listener NAME on the image.
conf() {
  cat >"$1" <<CONF
uffdkit = { control_socket = "$TMP/$2.ctl"; ${3:-} };
listeners = (
  { name = "$2"; socket = "$TMP/$2.sock";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
}

# upgrade_with_broken_file LOG FILE: a restore, a reload and an upgrade of
# the daemon started last (logging to LOG, on config FILE) while FILE is
# broken, another restore, then stop.
upgrade_with_broken_file() {
  local log=$1 file=$2 name d
  name=$(basename "$file" .conf)
  d=$(daemon_pid)
  wait_log "$log" "worker [0-9]+ ready"
  sim 0 "$log-1" run --socket "$TMP/$name.sock" --image "$TMP/mem"
  verified "$log-1" 2048
  cp "$file" "$file.good"
  echo 'listeners = ( { name = "x"; } );' >"$file"
  kill -HUP "$d"
  wait_log "$log" "reload: .*missing required setting"
  kill -USR2 "$d"
  wait_log "$log" "carrying on with the configuration handed over"
  wait_log "$log" "worker [0-9]+ ready.*" 20
  sim 0 "$log-2" run --socket "$TMP/$name.sock" --image "$TMP/mem"
  verified "$log-2" 2048
  kill -0 "$d" || fail "$log: the daemon did not survive the upgrade"
  stop_daemons
  DAEMON_PIDS=()
  grep -q "missing required setting 'socket'" "$TMP/$log.log" ||
    fail "$log: the broken file's error was not logged"
  all_json "$log"
}

# ---- --log-format json on the command line ----
conf "$TMP/a.conf" a
start_daemon cli "$TMP/a.sock" --config "$TMP/a.conf" --log-format json
upgrade_with_broken_file cli "$TMP/a.conf"

# ---- log_format = "json" in the file only: the upgraded process, which
# cannot read the file, logs in the format its predecessor ran with ----
conf "$TMP/b.conf" b 'log_format = "json";'
start_daemon file "$TMP/b.sock" --config "$TMP/b.conf"
upgrade_with_broken_file file "$TMP/b.conf"

# ---- errors before the daemon runs ----
rc=0
"$UFFDKIT" --config "$TMP/a.conf" --log-format json >"$TMP/start.log" 2>&1 ||
  rc=$?
[ $rc -eq 2 ] || fail "a broken file at start: exit $rc, not 2"
all_json start
rc=0
"$UFFDKIT" --log-format json --config >"$TMP/opt.log" 2>&1 || rc=$?
[ $rc -eq 2 ] || fail "--config without a value: exit $rc, not 2"
all_json opt
rc=0
"$UFFDKIT" --log-format json --socket "$TMP/c.sock" >"$TMP/sock.log" 2>&1 ||
  rc=$?
[ $rc -eq 2 ] || fail "--socket without a plugin: exit $rc, not 2"
all_json sock
