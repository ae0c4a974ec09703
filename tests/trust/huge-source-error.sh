#!/bin/bash
# on_source_error with 2 MiB pages: the file source's memory file loses
# its second half while the daemon runs.
#   sigbus  the whole huge page is poisoned (UFFDIO_POISON): the vCPU that
#           touches it gets SIGBUS at that page (the simulator exits 5,
#           naming the offset), the log says "poisoning the page";
#   kill    the simulator dies of SIGKILL, the log says "killing the VM".
# Either way every huge page before it was right.
. "$(dirname "$0")/common.sh"

HUGE=$((2 << 20))
PAGES=16 # 32 MiB
HALF=$((PAGES / 2))
for n in sig kil; do
  sim 0 "img-$n" mkimage "$TMP/$n.orig" --size 32M --seed 59 --zero-percent 0
  cp "$TMP/$n.orig" "$TMP/$n.mem"
done
# One VM at a time: its pages, one for the simulator's bounce buffer, one
# for a copy in flight.
reserve_hugepages $((PAGES + 2))
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = (
  { name = "sig"; socket = "$TMP/sig.sock"; on_source_error = "sigbus";
    source = { plugin = "file"; path = "$TMP/sig.mem"; }; },
  { name = "kil"; socket = "$TMP/kil.sock"; on_source_error = "kill";
    source = { plugin = "file"; path = "$TMP/kil.mem"; }; }
);
CONF
start_daemon d "$TMP/sig.sock" --config "$TMP/d.conf"
D=$(daemon_pid)
W=$(wait_worker "$D")
wait_log d "worker $W ready"
truncate -s 16M "$TMP/sig.mem" "$TMP/kil.mem"

# huge NAME: one restore through listener NAME at 2 MiB pages, in order;
# sets VM_RC and VM_PID.
huge() {
  VM_RC=0
  "$SIM" run --socket "$TMP/$1.sock" --image "$TMP/$1.orig" --page-size 2M \
    --timeout 60 >"$TMP/vm-$1.out" 2>"$TMP/vm-$1.err" &
  VM_PID=$!
  wait $VM_PID || VM_RC=$?
}
source_line() {
  local re="session [0-9]+ \(pid $VM_PID\): source $1 could not deliver"
  re+=" offset $((HALF * HUGE)) for 0x[0-9a-f]+: .*file ended early; "
  wait_log d "$re"
  grep -E "$re" "$TMP/d.log" | head -1
}

huge sig
[ $VM_RC -eq 5 ] || fail "sig: exit $VM_RC, expected 5: $(cat "$TMP/vm-sig.err")"
grep -Eq "^uffdkit-sim: SIGBUS at memory offset 0x$(printf %x $((HALF * HUGE))) \(code (2|4)\)" \
  "$TMP/vm-sig.err" || fail "sig: $(cat "$TMP/vm-sig.err")"
grep -qx "uffdkit-sim: before that: touched=$HALF mismatches=0" "$TMP/vm-sig.err" ||
  fail "sig: $(cat "$TMP/vm-sig.err")"
line=$(source_line sig)
grep -q "; poisoning the page (on_source_error)$" <<<"$line" ||
  fail "sig: the log line does not name the policy: $line"
if grep -q "UFFDIO_POISON failed" "$TMP/d.log"; then
  fail "sig: $(grep "UFFDIO_POISON failed" "$TMP/d.log")"
fi

huge kil
[ $VM_RC -eq 137 ] || fail "kil: exit $VM_RC, expected 137 (SIGKILL): $(cat "$TMP/vm-kil.err")"
line=$(source_line kil)
grep -q "; killing the VM (on_source_error)$" <<<"$line" ||
  fail "kil: the log line does not name the policy: $line"
[ "$(worker_of "$D")" = "$W" ] || fail "the worker changed: it crashed"
stop_daemons
echo "trust-huge-source-error: OK"
