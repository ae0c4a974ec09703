#!/bin/bash
# Start-up errors of the control socket and the metrics endpoint, the
# client's errors, --config, and a client without the rights to connect.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/common.sh"

"$SIM" mkimage "$TMP/mem" --size 1M >/dev/null

# conf NAME GLOBALS: a config with one listener and the given globals.
conf() {
  cat >"$TMP/$1.conf" <<EOF
uffdkit = { $2 };
listeners = ( { name = "a"; socket = "$TMP/$1.sock";
                source = { plugin = "mmap"; path = "$TMP/mem"; }; } );
EOF
}

# refused NAME MESSAGE: the daemon with config NAME exits with status 1
# (at once, without serving) and logs MESSAGE.
refused() {
  local rc=0
  timeout 20 "$UFFDKIT" --config "$TMP/$1.conf" >"$TMP/$1.log" 2>&1 || rc=$?
  [ $rc -eq 1 ] || fail "$1: daemon exited with $rc: $(cat "$TMP/$1.log")"
  grep -q -- "$2" "$TMP/$1.log" || fail "$1: no '$2' in: $(cat "$TMP/$1.log")"
  [ ! -e "$TMP/$1.sock" ] || fail "$1: listener socket left behind"
}

# A path that is not a socket is never replaced.
touch "$TMP/file"
conf notsock "control_socket = \"$TMP/file\";"
refused notsock "control socket $TMP/file exists and is not a socket"
[ -f "$TMP/file" ] || fail "the file was removed"

# Bad metrics addresses.
conf badaddr 'metrics = "example.com:9464";'
refused badaddr "'example.com' is not an IP address or localhost"
conf noport 'metrics = ":9464";'
refused noport "give a host: 127.0.0.1:9464"

# One daemon serving; a second on the same control socket is refused, and
# so is one on the same metrics port.
CTL=$TMP/ctl.sock
globals="control_socket = \"$CTL\";"
[ "$HTTP" = 1 ] && globals="$globals metrics = \"127.0.0.1:0\";"
conf one "$globals"
start_daemon one "$TMP/one.sock" --config "$TMP/one.conf"
wait_for_socket "$CTL"
conf samectl "control_socket = \"$CTL\";"
refused samectl "control socket $CTL: another process is listening on it"
if [ "$HTTP" = 1 ]; then
  PORT=$(http_port "$TMP/one.log")
  conf sameport "control_socket = \"\"; metrics = \"127.0.0.1:$PORT\";"
  refused sameport "metrics: cannot listen on 127.0.0.1:$PORT"
fi
ctl list >/dev/null || fail "the first daemon stopped answering"

# --config finds the socket in the daemon's file.
"$UFFDKIT" ctl --config "$TMP/one.conf" --json stats >"$TMP/cfg.json" ||
  fail "ctl --config"
[ "$(json 'j["listeners"][0]["name"]' <"$TMP/cfg.json")" = a ] ||
  fail "ctl --config: $(cat "$TMP/cfg.json")"
UFFDKIT_CONTROL_SOCKET=$CTL "$UFFDKIT" ctl list >/dev/null ||
  fail "UFFDKIT_CONTROL_SOCKET is not used"

# Usage errors: status 2, and a message naming the problem.
usage() {
  local rc=0 want=$1
  shift
  "$UFFDKIT" ctl "$@" >"$TMP/usage.out" 2>"$TMP/usage.err" || rc=$?
  [ $rc -eq 2 ] || fail "ctl $*: exited $rc"
  grep -q -- "$want" "$TMP/usage.err" || fail "ctl $*: $(cat "$TMP/usage.err")"
}
usage "no command" --socket "$CTL"
usage "unknown command 'frob'" --socket "$CTL" frob
usage "drain needs the name of a listener" --socket "$CTL" drain
usage "list takes no argument" --socket "$CTL" list extra
usage "use --socket or --config, not both" --socket "$CTL" --config x list
usage "timeout needs a number of seconds" --socket "$CTL" --timeout 0 list
usage "unrecognized option" --socket "$CTL" --bogus list
"$UFFDKIT" ctl --help | grep -q '^Usage: uffdkit ctl' || fail "ctl --help"

# A stale socket: nothing listens on it.
python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' \
  "$TMP/stale.sock"
rc=0
"$UFFDKIT" ctl --socket "$TMP/stale.sock" list 2>"$TMP/stale.err" || rc=$?
[ $rc -eq 3 ] && grep -q "nothing listens on it; the daemon is not running" \
  "$TMP/stale.err" || fail "stale socket: $rc $(cat "$TMP/stale.err")"

# A raw client: a bad request gets an error line, the connection stays.
python3 - "$CTL" >"$TMP/raw.out" <<'EOF' || fail "raw client: $(cat "$TMP/raw.out")"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
for req in (b"{oops\n", b'{"cmd":"stats","x":1}\n', b'{"cmd":"list"}\n'):
    f.write(req)
    f.flush()
    print(json.loads(f.readline()))
EOF
grep -q "request is not valid JSON" "$TMP/raw.out" || fail "$(cat "$TMP/raw.out")"
grep -q "unknown key \"x\" in a stats request" "$TMP/raw.out" ||
  fail "$(cat "$TMP/raw.out")"
grep -q "'sessions': \[\]" "$TMP/raw.out" || fail "$(cat "$TMP/raw.out")"

# Another user cannot connect: the socket is 0600.
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ] &&
  setpriv --reuid=65534 --regid=65534 --clear-groups "$UFFDKIT" --version \
    >/dev/null 2>&1; then
  chmod 0755 "$TMP"
  rc=0
  setpriv --reuid=65534 --regid=65534 --clear-groups "$UFFDKIT" ctl \
    --socket "$CTL" list 2>"$TMP/perm.err" || rc=$?
  [ $rc -eq 3 ] && grep -q "permission denied; run as root" "$TMP/perm.err" ||
    fail "non-root client: $rc $(cat "$TMP/perm.err")"
else
  echo "skipped the non-root client check (cannot run as nobody)"
fi

stop_daemons
echo "control-errors: OK"
