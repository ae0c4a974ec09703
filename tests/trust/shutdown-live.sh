#!/bin/bash
# SIGTERM while VMs restore: what they see.  The daemon stops at once
# (exit 0, a warning naming the live sessions), closes each session's
# connection and its copy of the uffd; every page it had installed stays
# right, and the next page a vCPU touches is never served: the vCPU blocks
# (Firecracker's own uffd keeps the range registered, so no zero page
# appears).  A VM in the 1.12 style sees its connection closed; one in the
# 1.7 style (connection already closed by itself) only sees its vCPU stuck.
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 16M --seed 71
CTL=$TMP/ctl.sock
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = "$CTL"; };
listeners = (
  { name = "a"; socket = "$TMP/a.sock";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
start_daemon d "$TMP/a.sock" --config "$TMP/d.conf"
D=$(daemon_pid)

# Two slow VMs (about 8 s of faults each): 1.12 keeps its connection, 1.7
# closed it after the handshake.  Their watchdogs fire 20 s after start.
for style in 1.12 1.7; do
  "$SIM" run --socket "$TMP/a.sock" --image "$TMP/mem" --style $style \
    --delay-us 2000 --timeout 20 >"$TMP/vm-$style.out" \
    2>"$TMP/vm-$style.err" &
  eval "VM_${style/./_}=\$!"
done
both_faulting() {
  ctl "$CTL" --json list >"$TMP/list.json" 2>/dev/null &&
    [ "$(json 'sorted(s["faults"] > 200 for s in j["sessions"])' \
      <"$TMP/list.json")" = "[True, True]" ]
}
until_true 30 both_faulting || fail "two VMs did not start: $(cat "$TMP/list.json")"

kill -TERM "$D"
rc=0
wait "$D" || rc=$?
DAEMON_PIDS=()
[ $rc -eq 0 ] || fail "the daemon exited with $rc on SIGTERM"
grep -q "stopping with 2 live sessions: their VMs can no longer fault in memory" \
  "$TMP/d.log" || fail "no warning about the live sessions"

# 1.12: the connection closes under a waiting vCPU (exit 4).
rc=0
wait $VM_1_12 || rc=$?
[ $rc -eq 4 ] || fail "1.12 VM: exit $rc, expected 4: $(cat "$TMP/vm-1.12.err")"
grep -q "closed the connection while vCPU 0 waits" "$TMP/vm-1.12.err" ||
  fail "1.12 VM: $(cat "$TMP/vm-1.12.err")"
# 1.7: nothing tells it; its vCPU stays blocked until the watchdog (exit 3).
rc=0
wait $VM_1_7 || rc=$?
[ $rc -eq 3 ] || fail "1.7 VM: exit $rc, expected 3: $(cat "$TMP/vm-1.7.err")"
grep -Eq "^timeout: vCPU 0 stuck at memory offset 0x[0-9a-f]+ \(region 0\)" \
  "$TMP/vm-1.7.err" || fail "1.7 VM: $(cat "$TMP/vm-1.7.err")"
# Every page served before the stop was right.
for style in 1.12 1.7; do
  grep -Eq "^uffdkit-sim: before that: touched=([2-9][0-9]{2}|[0-9]{4}) mismatches=0$" \
    "$TMP/vm-$style.err" || fail "$style VM: $(cat "$TMP/vm-$style.err")"
  echo "$style: $(tail -1 "$TMP/vm-$style.err")"
done
[ ! -e "$TMP/a.sock" ] && [ ! -e "$CTL" ] || fail "sockets left behind"
echo "trust-shutdown-live: OK"
