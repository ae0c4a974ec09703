#!/bin/bash
# A reload that changes the listeners live VMs came through.  Listener a
# is removed and listener b moved to another socket, given socket_mode
# 0660 and max_sessions = 1, while a VM restores through each; listener c
# is added.  The two live VMs restore every byte to the end; a's socket and
# b's old one are gone; b's new one has the new mode and refuses a second
# VM while its first is live, and takes one after; a VM restores through c.
# A second reload gives b allow_uids without the simulator's uid (root):
# b turns VMs away from then on; c, given socket_mode 0640 on the socket it
# has, gets that mode and still serves.
. "$(dirname "$0")/common.sh"

PAGES=4096
sim 0 img mkimage "$TMP/mem" --size 16M --seed 61
CTL=$TMP/ctl.sock
CONF=$TMP/d.conf
listener() { # NAME SOCKET [EXTRA]
  echo "{ name = \"$1\"; socket = \"$2\"; ${3:-}
    source = { plugin = \"mmap\"; path = \"$TMP/mem\"; }; }"
}
write_conf() {
  local IFS=,
  echo "uffdkit = { control_socket = \"$CTL\"; };
listeners = ( $* );" >"$CONF"
}
write_conf "$(listener a "$TMP/a.sock")" "$(listener b "$TMP/b.sock")"
start_daemon d "$TMP/a.sock" --config "$CONF"
wait_for_socket "$TMP/b.sock"
[ "$(stat -c %a "$TMP/b.sock")" = 600 ] || fail "b.sock: $(stat -c %a "$TMP/b.sock")"

# Two slow VMs (about 8 s of faults each), one through a, one through b.
slow() {
  "$SIM" run --socket "$TMP/$1.sock" --image "$TMP/mem" --delay-us 2000 \
    --timeout 120 >"$TMP/live-$1.out" 2>"$TMP/live-$1.err" &
}
slow a
LIVE_A=$!
slow b
LIVE_B=$!
wait_log d "session [0-9]+: pid $LIVE_A "
wait_log d "session [0-9]+: pid $LIVE_B "

write_conf "$(listener b "$TMP/b2.sock" 'socket_mode = "0660"; max_sessions = 1;')" \
  "$(listener c "$TMP/c.sock")"
ctl "$CTL" reload >"$TMP/reload1.out" || fail "reload: $(cat "$TMP/reload1.out")"
wait_log d "configuration generation 2 .* is live" 30
wait_for_socket "$TMP/b2.sock"
wait_for_socket "$TMP/c.sock"
[ ! -e "$TMP/a.sock" ] || fail "the removed listener's socket is still there"
[ ! -e "$TMP/b.sock" ] || fail "the moved listener's old socket is still there"
[ "$(stat -c %a "$TMP/b2.sock")" = 660 ] ||
  fail "b2.sock mode $(stat -c %a "$TMP/b2.sock"), expected 660"
still_running $LIVE_A "the VM of the removed listener"
still_running $LIVE_B "the VM of the moved listener"

# b has its one session: a second VM is turned away.
"$SIM" run --socket "$TMP/b2.sock" --image "$TMP/mem" --expect-refused \
  --timeout 10 >"$TMP/full.out" 2>"$TMP/full.err" &
pid=$!
rc=0
wait $pid || rc=$?
check_refused full $rc
wait_log d "listener b: .*pid $pid .*max_sessions"
# The added listener serves.
sim 0 added run --socket "$TMP/c.sock" --image "$TMP/mem" --vcpus 2 \
  --order random --timeout 60
verified added $PAGES
still_running $LIVE_B "the VM of the moved listener"

for v in A B; do
  pid_var=LIVE_$v
  rc=0
  wait ${!pid_var} || rc=$?
  check_sim 0 "live-${v,}" $rc
  verified "live-${v,}" $PAGES
done
# Its session over, b takes a VM on its new socket.
b_idle() {
  ctl "$CTL" --json list >"$TMP/list.json" &&
    [ "$(json '[l["sessions_live"] for l in j["listeners"] if l["name"] == "b"]' \
      <"$TMP/list.json")" = "[0]" ]
}
until_true 20 b_idle || fail "b's session did not end: $(cat "$TMP/list.json")"
sim 0 b-after run --socket "$TMP/b2.sock" --image "$TMP/mem" --timeout 60
verified b-after $PAGES

# allow_uids without root: b refuses; c, on the same socket, gets the new
# mode and serves.
write_conf "$(listener b "$TMP/b2.sock" 'allow_uids = [ 4242 ];')" \
  "$(listener c "$TMP/c.sock" 'socket_mode = "0640";')"
ctl "$CTL" reload >"$TMP/reload2.out" || fail "reload: $(cat "$TMP/reload2.out")"
wait_log d "configuration generation 3 .* is live" 30
[ "$(stat -c %a "$TMP/c.sock")" = 640 ] ||
  fail "c.sock mode $(stat -c %a "$TMP/c.sock") after the reload, expected 640"
"$SIM" run --socket "$TMP/b2.sock" --image "$TMP/mem" --expect-refused \
  --timeout 10 >"$TMP/denied.out" 2>"$TMP/denied.err" &
pid=$!
rc=0
wait $pid || rc=$?
check_refused denied $rc
wait_log d "listener b: refused pid $pid uid 0 gid 0: not in allow_uids"
sim 0 c-after run --socket "$TMP/c.sock" --image "$TMP/mem" --timeout 60
verified c-after $PAGES
stop_daemons
echo "trust-reload-live: OK"
