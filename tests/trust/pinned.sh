#!/bin/bash
# A session is pinned to the data it started on.
#   1  the image is named in an @include'd file; during a restore that
#      file is edited to name another image and the worker SIGKILLed: the
#      new worker serves the generation's text, expanded at load, so the
#      VM still gets image A;
#   2  the included file then holds garbage and SIGUSR2: the upgrade
#      carries the expanded text, so the new supervisor serves on (it used
#      to exit with "no usable configuration"), the restore ends with every
#      byte of A, and a new VM restores A too;
#   3  the served file replaced by rename (cp B x; mv x served) and the
#      worker SIGKILLed: the new worker gets the descriptor the generation
#      opened first (pinned by the supervisor), so the restore ends with
#      every byte of A, the original image;
#   3b the same replacement followed by a SIGUSR2 upgrade: the pinned
#      descriptor is handed over too, and the VM again gets every byte of A;
#   4  after a reload (the file at the path is another inode now, so the
#      new generation opens it again instead of sharing the stack), the file
#      rewritten in place (the worker held stopped meanwhile, so that only
#      the takeover can notice): the same inode with another identity
#      (mtime), so on_source_error (kill) ends the VM: never a page of B.
. "$(dirname "$0")/common.sh"

PAGES=8192
sim 0 imgA mkimage "$TMP/A" --size 32M --seed 81
sim 0 imgB mkimage "$TMP/B" --size 32M --seed 82
cmp -s "$TMP/A" "$TMP/B" && fail "images A and B are the same"
SOCK=$TMP/a.sock
CONF=$TMP/d.conf
INC=$TMP/source.inc
echo "source = { plugin = \"mmap\"; path = \"$TMP/A\"; };" >"$INC"
cat >"$CONF" <<CONF
uffdkit = { control_socket = "$TMP/ctl.sock"; worker_restart_delay = "50ms"; };
listeners = (
  { name = "a"; socket = "$SOCK";
    @include "$INC"
  },
  { name = "s"; socket = "$TMP/s.sock";
    source = { plugin = "mmap"; path = "$TMP/served"; }; }
);
CONF
cp "$TMP/A" "$TMP/served"
start_daemon d "$SOCK" --config "$CONF" --plugin-dir "$PLUGINS"
D=$(daemon_pid)
W=$(wait_worker "$D")
wait_log d "worker $W ready"

# slow NAME SOCKET: a restore of A, 1 ms between touches (about 8 s).
slow() {
  "$SIM" run --socket "$2" --image "$TMP/A" --delay-us 1000 --timeout 90 \
    >"$TMP/$1.out" 2>"$TMP/$1.err" &
  SLOW=$!
  wait_log d "session [0-9]+: pid $SLOW "
  sleep 0.3
}

# crash: SIGKILLs the worker and waits for the next one to take over.
crash() {
  local old=$W
  kill -KILL "$old"
  W=$(wait_worker "$D" "$old")
  wait_log d "worker $W ready; handed back [0-9]+ live sessions"
}

# ---- 1: the included file names another image ----
slow main "$SOCK"
MAIN=$SLOW
echo "source = { plugin = \"mmap\"; path = \"$TMP/B\"; };" >"$INC"
crash
echo "include edited: worker $W took the session over"

# ---- 2: garbage in the included file, then an upgrade ----
echo 'this is { not a configuration' >"$INC"
still_running $MAIN "the restore"
kill -USR2 "$D"
wait_log d "uffdkit\[$D\] info: took over 1 live sessions"
W=$(wait_worker "$D" "$W")
wait_log d "uffdkit\[$D\] info: worker $W ready"
kill -0 "$D" 2>/dev/null || fail "the upgraded daemon exited"
echo "upgrade with a broken include: served on by pid $D"
rc=0
wait $MAIN || rc=$?
check_sim 0 main $rc
verified main $PAGES
sim 0 new run --socket "$SOCK" --image "$TMP/A" --vcpus 2
verified new $PAGES

# ---- 3: the served file replaced by rename, then a crash ----
slow renamed "$TMP/s.sock"
cp "$TMP/B" "$TMP/x"
mv "$TMP/x" "$TMP/served"
crash
rc=0
wait $SLOW || rc=$?
check_sim 0 renamed $rc
verified renamed $PAGES
echo "replaced by rename, worker killed: the VM got every byte of A"

# ---- 3b: the same, then an upgrade ----
slow upgraded "$TMP/s.sock"
cp "$TMP/B" "$TMP/x"
mv "$TMP/x" "$TMP/served"
kill -USR2 "$D"
wait_count d "uffdkit\[$D\] info: took over 1 live sessions" 2 30
W=$(new_worker "$D" "$W")
wait_log d "uffdkit\[$D\] info: worker $W ready"
rc=0
wait $SLOW || rc=$?
check_sim 0 upgraded $rc
verified upgraded $PAGES
echo "replaced by rename, then an upgrade: the VM got every byte of A"

# ---- 4: the served file rewritten in place ----
# The generation keeps the inode it started on; a reload opens the file
# at its path again (the include names A once more).
echo "source = { plugin = \"mmap\"; path = \"$TMP/A\"; };" >"$INC"
cp "$TMP/A" "$TMP/served"
kill -HUP "$D"
wait_log d "configuration generation [0-9]+ \($CONF\) is live"
wait_log d "configuration generation [0-9]+: 2 listeners, 1 stacks built, 1 kept"
slow inplace "$TMP/s.sock"
kill -STOP "$W"
# Every thread of the worker stopped (none in the middle of a copy), so
# that only the takeover can meet the rewritten file.
all_stopped() {
  local t
  for t in /proc/"$W"/task/*/stat; do
    [ "$(sed 's/.*) //' "$t" 2>/dev/null | cut -d' ' -f1)" = T ] || return 1
  done
}
until_true 10 all_stopped || fail "worker $W did not stop"
cp "$TMP/B" "$TMP/served"
crash
rc=0
wait $SLOW || rc=$?
[ $rc -eq 137 ] || fail "the VM whose file was rewritten exited $rc: $(cat "$TMP/inplace.err")"
wait_log d "error: session [0-9]+ \(pid $SLOW\) on s: the source is not the data the session started on"
echo "rewritten in place: the VM was killed, not served B"
stop_daemons
