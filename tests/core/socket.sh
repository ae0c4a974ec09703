# The listening socket's life: its mode, SIGTERM (exit 0, socket removed,
# no worker left), a stale socket replaced, a regular file or a live socket
# at the path left alone, and allow_uids turning away a peer with its
# credentials logged.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 8M --seed 5
run=(--image "$TMP/mem" --timeout 30)

mode_of() {
  stat -c %a "$1"
}

# ---- mode 0600 by default; SIGTERM stops it cleanly ----
start_daemon plain "$TMP/plain.sock" --socket "$TMP/plain.sock" mmap \
  path="$TMP/mem"
d=$(daemon_pid)
[ -S "$TMP/plain.sock" ] || fail "plain.sock is not a socket"
[ "$(mode_of "$TMP/plain.sock")" = 600 ] ||
  fail "default socket mode is $(mode_of "$TMP/plain.sock"), expected 600"
grep -q "listener cli on $TMP/plain.sock (mode 0600)" "$TMP/plain.log" ||
  fail "the log does not give the socket and its mode"
sim 0 plain run --socket "$TMP/plain.sock" "${run[@]}"
verified plain 2048
w=$(wait_worker "$d")
kill -TERM "$d"
rc=0
wait "$d" || rc=$?
DAEMON_PIDS=()
[ $rc -eq 0 ] || fail "SIGTERM: the daemon exited with $rc"
[ ! -e "$TMP/plain.sock" ] || fail "SIGTERM left the socket behind"
grep -q "stopping (signal 15)" "$TMP/plain.log" || fail "no stop logged"
for ((i = 0; i < 100; i++)); do
  kill -0 "$w" 2>/dev/null || break
  sleep 0.05
done
if kill -0 "$w" 2>/dev/null; then
  fail "worker $w still runs after the daemon stopped"
fi

# SIGINT too.
start_daemon int "$TMP/int.sock" --socket "$TMP/int.sock" mmap \
  path="$TMP/mem"
d=$(daemon_pid)
kill -INT "$d"
rc=0
wait "$d" || rc=$?
DAEMON_PIDS=()
[ $rc -eq 0 ] || fail "SIGINT: the daemon exited with $rc"
[ ! -e "$TMP/int.sock" ] || fail "SIGINT left the socket behind"

# ---- socket_mode = "0660" ----
cat >"$TMP/mode.conf" <<CONF
listeners = (
  { name = "m"; socket = "$TMP/m.sock"; socket_mode = "0660";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; },
  { name = "n"; socket = "$TMP/n.sock"; socket_mode = "0606";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
start_daemon mode "$TMP/m.sock" --config "$TMP/mode.conf"
wait_for_socket "$TMP/n.sock"
[ "$(mode_of "$TMP/m.sock")" = 660 ] ||
  fail "socket_mode \"0660\" gave $(mode_of "$TMP/m.sock")"
[ "$(mode_of "$TMP/n.sock")" = 606 ] ||
  fail "socket_mode \"0606\" gave $(mode_of "$TMP/n.sock")"
sim 0 mode run --socket "$TMP/m.sock" "${run[@]}"
verified mode 2048

# ---- a second daemon on a live socket is refused; the first serves on ----
rc=0
timeout 10 "$UFFDKIT" --socket "$TMP/m.sock" mmap path="$TMP/mem" \
  >"$TMP/second.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] ||
  fail "a second daemon on a live socket exited with $rc"
grep -q "another process is listening" "$TMP/second.log" ||
  fail "the refusal is not explained: $(cat "$TMP/second.log")"
[ -S "$TMP/m.sock" ] || fail "the second daemon removed the live socket"
sim 0 mode-after run --socket "$TMP/m.sock" "${run[@]}" --style 1.1
verified mode-after 2048
stop_daemons

# ---- a stale socket (its daemon killed) is replaced ----
start_daemon dead "$TMP/stale.sock" --socket "$TMP/stale.sock" mmap \
  path="$TMP/mem"
d=$(daemon_pid)
w=$(wait_worker "$d")
kill -KILL "$d"
wait "$d" 2>/dev/null || true
DAEMON_PIDS=()
[ -S "$TMP/stale.sock" ] || fail "the killed daemon's socket is gone"
# Its worker sees the supervisor gone and, with no session, exits.
for ((i = 0; i < 100; i++)); do
  kill -0 "$w" 2>/dev/null || break
  sleep 0.05
done
if kill -0 "$w" 2>/dev/null; then
  fail "the orphaned worker $w did not exit"
fi
start_daemon stale "$TMP/stale.sock" --socket "$TMP/stale.sock" mmap \
  path="$TMP/mem"
wait_log stale "$TMP/stale.sock: replacing a stale socket"
sim 0 stale run --socket "$TMP/stale.sock" "${run[@]}"
verified stale 2048
stop_daemons

# ---- a regular file at the path is refused and left intact ----
printf 'precious data\n' >"$TMP/file.sock"
before=$(stat -c '%s %Y %a' "$TMP/file.sock")
rc=0
timeout 10 "$UFFDKIT" --socket "$TMP/file.sock" mmap path="$TMP/mem" \
  >"$TMP/file.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] ||
  fail "the daemon given a regular file as socket exited with $rc"
grep -q "$TMP/file.sock exists and is not a socket" "$TMP/file.log" ||
  fail "the refusal is not explained: $(cat "$TMP/file.log")"
[ -f "$TMP/file.sock" ] && [ "$(cat "$TMP/file.sock")" = "precious data" ] ||
  fail "the regular file was changed"
[ "$(stat -c '%s %Y %a' "$TMP/file.sock")" = "$before" ] ||
  fail "the regular file's size, time or mode changed"
# A directory too.
mkdir "$TMP/dir.sock"
rc=0
timeout 10 "$UFFDKIT" --socket "$TMP/dir.sock" mmap path="$TMP/mem" \
  >"$TMP/dir.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a directory as socket: exit $rc"
[ -d "$TMP/dir.sock" ] || fail "the directory was removed"

# ---- allow_uids without root turns the simulator (root) away ----
cat >"$TMP/allow.conf" <<CONF
listeners = (
  { name = "deny"; socket = "$TMP/deny.sock"; allow_uids = [ 1000, 1001 ];
    source = { plugin = "mmap"; path = "$TMP/mem"; }; },
  { name = "gid"; socket = "$TMP/gid.sock"; allow_gids = [ 1000 ];
    source = { plugin = "mmap"; path = "$TMP/mem"; }; },
  { name = "allow"; socket = "$TMP/allow.sock"; allow_uids = [ 1000, 0 ];
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
start_daemon allow "$TMP/deny.sock" --config "$TMP/allow.conf"
wait_for_socket "$TMP/allow.sock"
for l in deny gid; do
  "$SIM" run --socket "$TMP/$l.sock" "${run[@]}" --expect-refused \
    --timeout 5 >"$TMP/$l.out" 2>"$TMP/$l.err" &
  pid=$!
  rc=0
  wait $pid || rc=$?
  check_refused "$l" $rc
  wait_log allow "listener $l: refused pid $pid uid 0 gid 0: not in allow_uids/allow_gids"
  if grep -q "session [0-9]*: pid $pid " "$TMP/allow.log"; then
    fail "$l: a refused peer got a session"
  fi
done
sim 0 allowed run --socket "$TMP/allow.sock" "${run[@]}"
verified allowed 2048
stop_daemons
