#!/bin/bash
# Zero-downtime upgrade: SIGUSR2, three times in the middle of one 4-vCPU
# restore whose balloon discards ranges while the vCPUs run.  The daemon
# runs from a copy of the binary in a directory of its own.
#   1  a plain upgrade;
#   2  right after it, another, with the old worker slow to stop (held with
#      SIGSTOP for a moment), so that a VM connects while no process
#      accepts: its one connection attempt (no retry) must be queued on the
#      kept socket and served by the new process;
#   3  after the binary on disk was replaced by a copy of itself: the new
#      file is the one executed;
#   4  (after that restore) while a VM's handshake is half sent: it is
#      completed before the re-exec, and that VM restores.
# Each time: the log shows the re-exec and the takeover, by the same pid;
# the socket file is the same (same inode, never missing: a watcher looks
# every half millisecond); a new worker takes the session; `uffdkit ctl
# list` lists it.  The restore then ends with every byte right, and once
# every session has ended the listener counts none live.
. "$(dirname "$0")/common.sh"

PAGES=16384
sim 0 img mkimage "$TMP/mem" --size 64M --seed 31
mkdir -p "$TMP/bin"
EXE=$TMP/bin/uffdkit
cp "$UFFDKIT" "$EXE"
SOCK=$TMP/a.sock
CTL=$TMP/ctl.sock
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = "$CTL"; };
listeners = (
  { name = "a"; socket = "$SOCK";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
UFFDKIT=$EXE start_daemon d "$SOCK" --config "$TMP/d.conf" \
  --plugin-dir "$PLUGINS"
D=$(daemon_pid)
W=$(wait_worker "$D")
wait_log d "worker $W ready"
wait_for_socket "$CTL"
INO=$(stat -c %i "$SOCK")

# The socket file, watched from now until the end of the last upgrade.
cat >"$TMP/watch.py" <<'PY'
import os, sys, time
path, stop = sys.argv[1], sys.argv[2]
first = os.stat(path).st_ino
checks = missing = changed = 0
while not os.path.exists(stop):
    try:
        if os.stat(path).st_ino != first:
            changed += 1
    except FileNotFoundError:
        missing += 1
    checks += 1
    time.sleep(0.0005)
print(f"checks={checks} missing={missing} changed={changed}")
PY
python3 "$TMP/watch.py" "$SOCK" "$TMP/watch.stop" >"$TMP/watch.out" &
WATCH=$!

# The restore: 4 vCPUs, 1 ms between touches (about 4 s), two ranges
# discarded from another thread once a quarter of the pages were touched.
"$SIM" run --socket "$SOCK" --image "$TMP/mem" --vcpus 4 --delay-us 1000 \
  --balloon 8M:16M --balloon 40M:8M --balloon-during --timeout 60 \
  >"$TMP/main.out" 2>"$TMP/main.err" &
MAIN=$!
wait_log d "session [0-9]+: pid $MAIN "
sleep 0.3

# listed PID...: `ctl --json list` answers and lists a session of each PID
# on listener a.
listed() {
  local p
  ctl "$CTL" --json list >"$TMP/list.json" 2>/dev/null || return 1
  for p in "$@"; do
    [ "$(json "[s['listener'] for s in j['sessions'] if s['pid'] == $p]" \
      <"$TMP/list.json")" = "['a']" ] || return 1
  done
}

# upgraded N: checks upgrade N, once SIGUSR2 was sent: the re-exec and the
# takeover are logged by the daemon's pid, the socket was kept, the daemon
# did not exit, and a new worker is ready.
upgraded() {
  local n=$1 sessions=$2 old=$W
  wait_count d "uffdkit\[$D\] info: took over $sessions live sessions" "$n"
  [ "$(count_log d "uffdkit\[$D\] info: upgrading: re-executing $EXE, handing over [0-9]+ descriptors")" -eq "$n" ] ||
    fail "upgrade $n: no re-exec of $EXE logged by pid $D"
  [ "$(count_log d "uffdkit\[$D\] info: listener a: kept socket $SOCK")" -eq "$n" ] ||
    fail "upgrade $n: the listening socket was not kept"
  kill -0 "$D" 2>/dev/null || fail "upgrade $n: the daemon is gone"
  [ "$(stat -c %i "$SOCK")" = "$INO" ] ||
    fail "upgrade $n: $SOCK is another socket file now"
  W=$(wait_worker "$D" "$old")
  wait_log d "uffdkit\[$D\] info: worker $W ready"
  until_true 10 listed "$MAIN" ||
    fail "upgrade $n: ctl list does not list pid $MAIN: $(cat "$TMP/list.json")"
  echo "upgrade $n: $(grep -E "uffdkit\[$D\] info: upgrading" "$TMP/d.log" |
    sed -n "${n}p" | sed 's/.*info: //'); worker $old -> $W"
}

# ---- 1: a plain upgrade ----
still_running $MAIN "the restore"
kill -USR2 "$D"
upgraded 1 1

# ---- 2: a VM connects while nobody accepts ----
# The old worker is held, so the old process waits for it in the upgrade
# (after logging it) instead of accepting; the new process does not exist
# yet.  A VM makes one connection attempt then.
still_running $MAIN "the restore"
kill -STOP "$W"
kill -USR2 "$D"
wait_count d "uffdkit\[$D\] info: upgrading: re-executing" 2
"$SIM" run --socket "$SOCK" --image "$TMP/mem" --mem-size 4M \
  --connect-timeout 0 --timeout 30 >"$TMP/window.out" 2>"$TMP/window.err" &
WIN=$!
queued() {
  [ "$(ss -xlH src "$SOCK" | awk '{print $3}')" -ge 1 ] 2>/dev/null
}
until_true 3 queued || {
  kill -CONT "$W"
  fail "the VM's connection is not queued on $SOCK during the upgrade: $(cat "$TMP/window.err")"
}
kill -0 $WIN 2>/dev/null || {
  kill -CONT "$W"
  fail "the VM connecting during the upgrade gave up: $(cat "$TMP/window.err")"
}
[ "$(count_log d "took over")" -eq 1 ] ||
  fail "the second upgrade finished before the VM connected"
echo "upgrade 2: a VM's connection waits on the kept socket"
kill -CONT "$W"
upgraded 2 1
rc=0
wait $WIN || rc=$?
check_sim 0 window $rc
verified window 1024
took=$(line_of d "took over" 2)
at=$(line_of d "session [0-9]+: pid $WIN ")
[ -n "$at" ] && [ "$at" -gt "$took" ] ||
  fail "the VM that connected during the upgrade was not taken by the new process"

# ---- 3: the binary on disk replaced by a copy of itself ----
cp "$EXE" "$EXE.new"
mv -f "$EXE.new" "$EXE"
NEWINO=$(stat -c %i "$EXE")
[ "$(readlink "/proc/$D/exe")" = "$EXE (deleted)" ] ||
  fail "the daemon does not run the replaced file: $(readlink "/proc/$D/exe")"
still_running $MAIN "the restore"
kill -USR2 "$D"
upgraded 3 1
[ "$(readlink "/proc/$D/exe")" = "$EXE" ] &&
  [ "$(stat -L -c %i "/proc/$D/exe")" = "$NEWINO" ] ||
  fail "after the upgrade the daemon runs $(readlink "/proc/$D/exe"), not the new $EXE"
[ "$(stat -L -c %i "/proc/$W/exe")" = "$NEWINO" ] ||
  fail "the new worker does not run the new $EXE"
echo "upgrade 3: pid $D now runs the new file (inode $NEWINO)"

touch "$TMP/watch.stop"
wait $WATCH
echo "socket watch: $(cat "$TMP/watch.out")"
grep -q ' missing=0 changed=0$' "$TMP/watch.out" ||
  fail "$SOCK went missing or was replaced during the upgrades"

# ---- the restore ends with every byte right ----
rc=0
wait $MAIN || rc=$?
check_sim 0 main $rc
verified main $PAGES
expect_field main zero_checked $(((16 + 8) << 8))
wait_log d "\(pid $MAIN\) on a ended"
if grep -E "uffdkit\[[0-9]+\]" "$TMP/d.log" | grep -v -q "uffdkit\[$D\]"; then
  fail "another supervisor pid logged: $(grep -E "uffdkit\[[0-9]+\]" "$TMP/d.log" |
    grep -v "uffdkit\[$D\]" | head -1)"
fi
sim 0 after run --socket "$SOCK" --image "$TMP/mem" --vcpus 2
verified after $PAGES

# ---- 4: SIGUSR2 while a VM's handshake is half read ----
# The supervisor holds the first part (and the uffd) in its memory only: it
# must complete that handshake before re-executing, and the VM restores.
"$SIM" run --socket "$SOCK" --image "$TMP/mem" --mem-size 4M --split-send 16 \
  --split-pause 2 --timeout 30 >"$TMP/split.out" 2>"$TMP/split.err" &
SPL=$!
half_sent() { grep -q "sent 16 of" "$TMP/split.err"; }
until_true 10 half_sent ||
  fail "the simulator did not send the first part: $(cat "$TMP/split.err")"
sleep 0.3
kill -USR2 "$D"
wait_log d "uffdkit\[$D\] info: upgrade: waiting for 1 handshake in progress"
wait_count d "uffdkit\[$D\] info: took over [0-9]+ live sessions" 4
rc=0
wait $SPL || rc=$?
check_sim 0 split $rc
verified split 1024
began=$(line_of d "session [0-9]+: pid $SPL ")
execd=$(line_of d "upgrading: re-executing" 4)
[ -n "$began" ] && [ "$began" -lt "$execd" ] ||
  fail "the half-sent handshake was not completed before the re-exec"
echo "upgrade 4: the handshake in progress completed first (log lines $began < $execd)"

# Every session has ended: the listener must count none live.
no_sessions() {
  ctl "$CTL" --json list >"$TMP/end.json" &&
    [ "$(json 'len(j["sessions"])' <"$TMP/end.json")" = 0 ]
}
until_true 10 no_sessions || fail "sessions still listed: $(cat "$TMP/end.json")"
live=$(json 'j["listeners"][0]["sessions_live"]' <"$TMP/end.json")
[ "$live" = 0 ] ||
  fail "listener a counts $live live sessions with none left (after 3 upgrades)"
stop_daemons
