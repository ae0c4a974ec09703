#!/bin/bash
# on_source_error when the source cannot deliver a page: the file source
# reads a memory file that is truncated to half its size while the daemon
# runs, so every page of the second half fails to read.
#   sigbus  the page is poisoned (UFFDIO_POISON): the VMM's vCPU thread
#           touching it gets SIGBUS (BUS_MCEERR_AR) at that page, the VMM
#           lives on, and the log says "poisoning the page";
#   kill    the VMM dies of SIGKILL, and the log says "killing the VM".
# Either way every page before it was right, and meanwhile the daemon
# serves another VM from another listener to the end.
. "$(dirname "$0")/common.sh"

VMM=$BUILD/bin/trust-sigbus-vmm
[ -x "$VMM" ] || fail "$VMM is missing: build it first"

PAGES=4096
HALF=$((PAGES / 2))
# No zero pages: a hole is served as zeros without reading, and would not
# fail; here every page of the second half must be read.
for n in sig kil; do
  sim 0 "img-$n" mkimage "$TMP/$n.orig" --size 16M --seed 51 --zero-percent 0
  cp "$TMP/$n.orig" "$TMP/$n.mem"
done
sim 0 img-good mkimage "$TMP/good" --size 16M --seed 53
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = (
  { name = "sig"; socket = "$TMP/sig.sock"; on_source_error = "sigbus";
    source = { plugin = "file"; path = "$TMP/sig.mem"; }; },
  { name = "kil"; socket = "$TMP/kil.sock"; on_source_error = "kill";
    source = { plugin = "file"; path = "$TMP/kil.mem"; }; },
  { name = "good"; socket = "$TMP/good.sock";
    source = { plugin = "mmap"; path = "$TMP/good"; }; }
);
CONF
start_daemon d "$TMP/sig.sock" --config "$TMP/d.conf"
D=$(daemon_pid)
W=$(wait_worker "$D")
wait_log d "worker $W ready"
# The sources have their size; now the files lose their second half.
truncate -s 8M "$TMP/sig.mem" "$TMP/kil.mem"

# The other VM: slow (about 4.5 s), it runs through both failures.
"$SIM" run --socket "$TMP/good.sock" --image "$TMP/good" --delay-us 1000 \
  --timeout 60 >"$TMP/good.out" 2>"$TMP/good.err" &
GOOD=$!
wait_log d "session [0-9]+: pid $GOOD "

# vmm NAME: runs the VMM against listener NAME; sets VMM_RC, VMM_PID.
vmm() {
  VMM_RC=0
  "$VMM" "$TMP/$1.sock" "$TMP/$1.orig" 10 >"$TMP/vmm-$1.out" \
    2>"$TMP/vmm-$1.err" &
  VMM_PID=$!
  wait $VMM_PID || VMM_RC=$?
  if grep '^MISMATCH' "$TMP/vmm-$1.out" >&2; then
    fail "$1: a wrong page was installed"
  fi
  # Every page of the first half, none of the second.
  [ "$(grep '^verified' "$TMP/vmm-$1.out" | tail -1)" = "verified $HALF" ] ||
    fail "$1: $(grep '^verified' "$TMP/vmm-$1.out" | tail -1), expected $HALF"
}

# log_line NAME: the daemon's line about the failed read of VMM_PID.
log_line() {
  local re="session [0-9]+ \(pid $VMM_PID\): source $1 could not deliver"
  re+=" offset $((HALF * 4096)) for 0x[0-9a-f]+: .*file ended early; "
  wait_log d "$re"
  grep -E "$re" "$TMP/d.log" | head -1
}

# ---- sigbus ----
vmm sig
[ $VMM_RC -eq 5 ] || {
  cat "$TMP/vmm-sig.out" "$TMP/vmm-sig.err" >&2
  fail "sig: the VMM exited with $VMM_RC, expected 5 (SIGBUS caught)"
}
# At the page that could not be read, on the vCPU thread that touched it;
# as a memory error (BUS_MCEERR_AR, 4) on older kernels, BUS_ADRERR (2) on
# those where a poisoned userfaultfd page no longer claims to be hardware.
grep -Eqx "sigbus offset=0x$(printf %x $((HALF * 4096))) code=(2|4) vcpu_thread=yes" \
  "$TMP/vmm-sig.out" || fail "sig: $(grep sigbus "$TMP/vmm-sig.out")"
grep -q '^alive after sigbus' "$TMP/vmm-sig.out" ||
  fail "sig: the VMM did not outlive its SIGBUS"
line=$(log_line sig)
grep -q "; poisoning the page (on_source_error)$" <<<"$line" ||
  fail "sig: the log line does not name the policy: $line"
if grep -q "UFFDIO_POISON failed" "$TMP/d.log"; then
  fail "sig: $(grep "UFFDIO_POISON failed" "$TMP/d.log")"
fi
still_running $GOOD "the other VM"
echo "sigbus: $(grep '^sigbus' "$TMP/vmm-sig.out"); ${line#*: source }"

# ---- kill ----
vmm kil
[ $VMM_RC -eq 137 ] || {
  cat "$TMP/vmm-kil.out" "$TMP/vmm-kil.err" >&2
  fail "kil: the VMM exited with $VMM_RC, not killed by SIGKILL (137)"
}
if grep -q '^sigbus' "$TMP/vmm-kil.out"; then
  fail "kil: the VMM got SIGBUS, the policy is kill"
fi
line=$(log_line kil)
grep -q "; killing the VM (on_source_error)$" <<<"$line" ||
  fail "kil: the log line does not name the policy: $line"
still_running $GOOD "the other VM"
echo "kill: VMM killed (137); ${line#*: source }"

# ---- the other VM, served all along ----
rc=0
wait $GOOD || rc=$?
check_sim 0 good $rc
verified good $PAGES
kill -0 "$D" 2>/dev/null || fail "the daemon died"
[ "$(worker_of "$D")" = "$W" ] || fail "the worker changed: it crashed"
sim 0 good-after run --socket "$TMP/good.sock" --image "$TMP/good" --vcpus 2
verified good-after $PAGES
stop_daemons
