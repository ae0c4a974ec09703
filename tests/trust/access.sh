#!/bin/bash
# Who may reach a listener, with peers that are not root (setpriv):
#   allow_uids and allow_gids both set: a peer must be in both lists;
#   socket_owner/socket_group/socket_mode on a real socket, checked by stat;
#   a socket directory a less-privileged user can write: that user swaps
#   the socket for a symlink to a root-owned file (or for a socket of its
#   own), the daemon reloads, and the file keeps its mode and owner.
. "$(dirname "$0")/common.sh"
command -v setpriv >/dev/null || fail "setpriv (util-linux) is needed"
NOBODY=$(id -u nobody)
NOGROUP=$(getent group nogroup | cut -d: -f3)
[ -n "$NOBODY" ] && [ -n "$NOGROUP" ] || fail "no user nobody / group nogroup"

sim 0 img mkimage "$TMP/mem" --size 4M --seed 71
chmod 755 "$TMP" # peers that are not root reach the sockets in it
mkdir "$TMP/run"
chown "$NOBODY:$NOGROUP" "$TMP/run" # the VM's uid may write here
printf 'root only\n' >"$TMP/secret"
chmod 600 "$TMP/secret"

# as UID GID CMD...: runs CMD as UID:GID with no supplementary groups.
as() {
  local uid=$1 gid=$2
  shift 2
  setpriv --reuid="$uid" --regid="$gid" --clear-groups "$@"
}

write_conf() { # MODE of listener "vm"
  cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = (
  { name = "both"; socket = "$TMP/both.sock"; socket_mode = "0666";
    allow_uids = [ 1000, 1001 ]; allow_gids = [ 2000 ];
    handshake_timeout = "1s";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; },
  { name = "vm"; socket = "$TMP/run/vm.sock"; socket_mode = "$1";
    socket_owner = "nobody"; socket_group = "nogroup";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
}
write_conf 0600
start_daemon d "$TMP/both.sock" --config "$TMP/d.conf"
D=$(daemon_pid)
wait_for_socket "$TMP/run/vm.sock"

# ---- allow_uids and allow_gids both set ----
# probe NAME UID GID: connects as UID:GID and sends nothing; prints how the
# daemon answered, from its log: "refused" at once, or "held" (accepted,
# then cut at handshake_timeout).
probe() {
  local name=$1 uid=$2 gid=$3 pid rc=0
  setpriv --reuid="$uid" --regid="$gid" --clear-groups "$PEER" silent \
    "$TMP/both.sock" 10 >"$TMP/$name.out" 2>"$TMP/$name.err" &
  pid=$!
  wait $pid || rc=$?
  [ $rc -eq 0 ] || fail "$name: the peer failed: $(cat "$TMP/$name.err")"
  if grep -q "refused pid $pid uid $uid gid $gid: not in allow_uids/allow_gids" \
    "$TMP/d.log"; then
    echo refused
  elif grep -q "closing connection from pid $pid uid $uid: no complete handshake" \
    "$TMP/d.log"; then
    echo held
  else
    fail "$name: no log line about pid $pid"
  fi
}
[ "$(probe both 1001 2000)" = held ] || fail "uid and gid both listed: refused"
[ "$(probe uid-only 1000 3000)" = refused ] ||
  fail "uid listed, gid not: accepted (both lists must match)"
[ "$(probe gid-only 1002 2000)" = refused ] ||
  fail "gid listed, uid not: accepted (both lists must match)"
[ "$(probe neither 1002 3000)" = refused ] || fail "neither listed: accepted"
echo "allow lists: both held, uid-only, gid-only and neither refused"

# ---- socket_owner, socket_group and socket_mode on the real socket ----
got=$(stat -c '%u:%g %a %F' "$TMP/run/vm.sock")
[ "$got" = "$NOBODY:$NOGROUP 600 socket" ] ||
  fail "vm.sock is '$got', expected '$NOBODY:$NOGROUP 600 socket'"
echo "vm.sock: $got"

# ---- a swapped socket: a symlink to a root-owned file ----
as "$NOBODY" "$NOGROUP" sh -c "rm '$TMP/run/vm.sock' &&
  ln -s '$TMP/secret' '$TMP/run/vm.sock'"
before=$(stat -c '%u:%g %a' "$TMP/secret")
write_conf 0666 # a reload that changes the mode acts on the socket
kill -HUP "$D"
wait_log d "configuration generation 2 .* is live"
after=$(stat -c '%u:%g %a' "$TMP/secret")
[ "$after" = "$before" ] ||
  fail "the reload changed the file a symlink pointed at: $before -> $after"
[ "$after" = "0:0 600" ] || fail "secret is $after"
wait_log d "vm.sock is no longer a socket .*left alone"
echo "symlink: $TMP/secret kept $after"

# ---- a swapped socket: another socket, bound by that user ----
as "$NOBODY" "$NOGROUP" sh -c "rm '$TMP/run/vm.sock'"
setpriv --reuid="$NOBODY" --regid="$NOGROUP" --clear-groups /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
time.sleep(30)' "$TMP/run/vm.sock" &
impostor=$!
until_true 10 test -S "$TMP/run/vm.sock" || fail "no impostor socket"
chmod 600 "$TMP/run/vm.sock" 2>/dev/null || true
before=$(stat -c '%u:%g %a' "$TMP/run/vm.sock")
write_conf 0660
kill -HUP "$D"
wait_log d "configuration generation 3 .* is live"
after=$(stat -c '%u:%g %a' "$TMP/run/vm.sock")
kill "$impostor" 2>/dev/null || true
wait "$impostor" 2>/dev/null || true
[ "$after" = "$before" ] ||
  fail "the reload changed a socket it did not bind: $before -> $after"
wait_log d "vm.sock is not the socket this process bound .*left alone"
echo "impostor socket: kept $after"
stop_daemons
