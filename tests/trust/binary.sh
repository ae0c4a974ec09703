#!/bin/bash
# The binary on disk changes under a running daemon.  Workers are started
# from the very binary the supervisor runs, and SIGUSR2 checks the binary
# at the path before it stops anything:
#   1  the binary deleted: SIGUSR2 is refused, naming it, with the worker
#      left running; then the worker is SIGKILLed and a new one (from the
#      deleted binary) takes the live restore over;
#   2  the binary replaced by a script that behaves differently and answers
#      --handover-version with another version: SIGUSR2 is refused, saying
#      what it answered; the worker is SIGKILLed again and the new one is
#      the original binary, not the script (which would leave a mark).
# The restore then ends with every byte right, and a new VM restores too.
. "$(dirname "$0")/common.sh"

PAGES=8192
sim 0 img mkimage "$TMP/mem" --size 32M --seed 51
mkdir -p "$TMP/bin"
EXE=$TMP/bin/uffdkit
cp "$UFFDKIT" "$EXE"
INO=$(stat -c %i "$EXE")
SOCK=$TMP/a.sock
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = "$TMP/ctl.sock"; worker_restart_delay = "50ms"; };
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

# The restore: one vCPU, 1 ms between touches (about 8 s).
"$SIM" run --socket "$SOCK" --image "$TMP/mem" --delay-us 1000 --timeout 90 \
  >"$TMP/main.out" 2>"$TMP/main.err" &
MAIN=$!
wait_log d "session [0-9]+: pid $MAIN "
sleep 0.3

# refused N REGEX: upgrade N was refused with a message matching REGEX,
# the worker W kept running and the daemon did not re-execute.
refused() {
  wait_log d "error: upgrade refused: $2; nothing was stopped"
  kill -0 "$W" 2>/dev/null || fail "upgrade $1: the worker was stopped"
  kill -0 "$D" 2>/dev/null || fail "upgrade $1: the daemon is gone"
  [ "$(count_log d "upgrading: re-executing")" -eq 0 ] ||
    fail "upgrade $1: the daemon re-executed"
}

# takeover: SIGKILLs the worker; a new one from the original binary must
# take the live session back.
takeover() {
  local old=$W
  kill -KILL "$old"
  W=$(wait_worker "$D" "$old")
  wait_log d "worker $W ready; handed back 1 live sessions"
  [ "$(stat -L -c %i "/proc/$W/exe")" = "$INO" ] ||
    fail "worker $W does not run the daemon's binary: $(readlink "/proc/$W/exe")"
}

# ---- 1: the binary deleted ----
rm -f "$EXE"
still_running $MAIN "the restore"
kill -USR2 "$D"
refused 1 "$EXE: No such file or directory"
takeover
echo "deleted binary: upgrade refused, worker $W started from the deleted file"

# ---- 2: replaced by a script of another hand-over version ----
cat >"$EXE" <<SH
#!/bin/sh
[ "\$1" = --handover-version ] && { echo "uffdkit-handover 999"; exit 0; }
touch "$TMP/script-ran"
exit 1
SH
chmod +x "$EXE"
still_running $MAIN "the restore"
kill -USR2 "$D"
refused 2 "$EXE does not answer --handover-version with uffdkit-handover [0-9]+ \(it said 'uffdkit-handover 999'\)"
takeover
[ ! -e "$TMP/script-ran" ] || fail "the script on disk was run as a worker"
echo "replaced binary: upgrade refused, worker $W is the original binary"

# ---- the restore ends with every byte right ----
still_running $MAIN "the restore"
rc=0
wait $MAIN || rc=$?
check_sim 0 main $rc
verified main $PAGES
sim 0 after run --socket "$SOCK" --image "$TMP/mem" --vcpus 2
verified after $PAGES
[ ! -e "$TMP/script-ran" ] || fail "the script on disk was run"
stop_daemons
