# Daemons of one listener each (--socket) side by side: each with its own
# --name, --control-socket and --metrics, none taking another's; one with
# --exit-when-idle exits (status 0) once its VMs are gone, and not before:
# not while idle before its first VM, not while another VM is live.  With
# --control-socket none a daemon has no control socket at all.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/../core/common.sh"

sim 0 img mkimage "$TMP/mem" --size 8M --seed 17
METRICS=()
[ "$HTTP" = 1 ] && METRICS=(--metrics 127.0.0.1:0)
start_daemon a "$TMP/a.sock" --socket "$TMP/a.sock" --name vm-a \
  --control-socket "$TMP/a.ctl" "${METRICS[@]}" mmap path="$TMP/mem"
A=$(daemon_pid)
start_daemon b "$TMP/b.sock" --socket "$TMP/b.sock" --name vm-b \
  --control-socket "$TMP/b.ctl" --exit-when-idle mmap path="$TMP/mem"
B=$(daemon_pid)
start_daemon c "$TMP/c.sock" --socket "$TMP/c.sock" --name vm-c \
  --control-socket none mmap path="$TMP/mem"
for d in a b c; do
  wait_log $d "worker [0-9]+ ready"
  [ "$(count_log $d 'another process is listening')" -eq 0 ] ||
    fail "daemon $d found its control socket taken"
done
[ "$(count_log c 'control socket')" -eq 0 ] ||
  fail "--control-socket none: daemon c opened a control socket"

# names LIST_JSON: the listeners a control socket lists.
for d in a b; do
  CTL=$TMP/$d.ctl
  got=$(ctl --json list | json "[l['name'] for l in j['listeners']]")
  [ "$got" = "['vm-$d']" ] || fail "$d.ctl lists $got, not ['vm-$d']"
done
if [ "$HTTP" = 1 ]; then
  url=$(grep -o 'http://127.0.0.1:[0-9]*/metrics' "$TMP/a.log" | head -1)
  [ -n "$url" ] || fail "daemon a logged no metrics address"
  curl -sf "$url" >"$TMP/a.metrics" || fail "$url does not answer"
  grep -q '^uffdkit_sessions_total{listener="vm-a"} 0$' "$TMP/a.metrics" ||
    fail "the metrics of daemon a do not name its listener vm-a"
fi

# ---- --exit-when-idle ----
sleep 0.5
kill -0 "$B" 2>/dev/null || fail "--exit-when-idle: b exited before any VM"
# Two VMs; the short one ends while the long one is held: b goes on.
"$SIM" run --socket "$TMP/b.sock" --image "$TMP/mem" --hold 3 \
  >"$TMP/long.out" 2>"$TMP/long.err" &
LONG=$!
wait_log b "session [0-9]+: pid $LONG "
sim 0 short run --socket "$TMP/b.sock" --image "$TMP/mem"
verified short 2048
wait_log b "session [0-9]+ \(pid [0-9]+\) on vm-b ended: " 10
kill -0 "$LONG" 2>/dev/null || fail "the long VM ended before the check"
kill -0 "$B" 2>/dev/null || fail "b exited while a VM was live"
rc=0
wait "$LONG" || rc=$?
check_sim 0 long $rc
verified long 2048
rc=0
until_true 20 eval '! kill -0 "$B" 2>/dev/null' ||
  fail "--exit-when-idle: b did not exit after its last VM"
wait "$B" || rc=$?
[ $rc -eq 0 ] || fail "--exit-when-idle: b exited with $rc"
left=()
for p in "${DAEMON_PIDS[@]}"; do
  [ "$p" = "$B" ] || left+=("$p")
done
DAEMON_PIDS=("${left[@]}")
wait_log b "exiting: a session ended and no other is live"
[ ! -e "$TMP/b.sock" ] && [ ! -e "$TMP/b.ctl" ] ||
  fail "b left its sockets behind"

# a (no --exit-when-idle) still serves, after a VM of its own too.
sim 0 on-a run --socket "$TMP/a.sock" --image "$TMP/mem"
verified on-a 2048
sleep 0.5
kill -0 "$A" 2>/dev/null || fail "a exited without --exit-when-idle"
CTL=$TMP/a.ctl
[ "$(ctl --json list | json "len(j['sessions'])")" = 0 ] ||
  fail "a lists a session after its VM ended"
stop_daemons
