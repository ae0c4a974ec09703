#!/bin/bash
# A source failure first met by the working-set replay.  A VM records the
# working set (every page, in order) from an intact memory file; the file
# then loses its second half, and a second VM is restored with that working
# set replayed.  The replay runs ahead of the slow vCPU and meets the
# unreadable pages first: it must install nothing for them (no zeros, no
# stale bytes) and leave the failure to the fault, where on_source_error
# ("hang" here) applies.  The vCPU gets every page of the first half right
# and then stays blocked on the first page of the second half.
. "$(dirname "$0")/common.sh"

PAGES=4096
HALF=$((PAGES / 2))
# No zero pages: a hole is served as zeros without reading.
sim 0 img mkimage "$TMP/orig" --size 16M --seed 57 --zero-percent 0
cp "$TMP/orig" "$TMP/mem"
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = (
  { name = "ws"; socket = "$TMP/ws.sock"; on_source_error = "hang";
    source = { plugin = "file"; path = "$TMP/mem"; };
    prefetch = { working_set = "$TMP/ws"; mode = "auto"; }; }
);
CONF
start_daemon d "$TMP/ws.sock" --config "$TMP/d.conf"

sim 0 record run --socket "$TMP/ws.sock" --image "$TMP/orig" --timeout 60
verified record $PAGES
wait_log d "recorded a working set of $PAGES pages to $TMP/ws\$" 30

# The source was started on the whole file; now its second half is gone.
truncate -s 8M "$TMP/mem"
rc=0
"$SIM" run --socket "$TMP/ws.sock" --image "$TMP/orig" --delay-us 1000 \
  --timeout 15 >"$TMP/replay.out" 2>"$TMP/replay.err" || rc=$?
[ $rc -eq 3 ] || fail "replayed VM: exit $rc, expected 3: $(cat "$TMP/replay.err")"
grep -q "^timeout: vCPU 0 stuck at memory offset 0x$(printf %x $((HALF * 4096))) (region 0)" \
  "$TMP/replay.err" || fail "replayed VM: $(cat "$TMP/replay.err")"
grep -qx "uffdkit-sim: before that: touched=$HALF mismatches=0" "$TMP/replay.err" ||
  fail "replayed VM: $(cat "$TMP/replay.err")"

# By order: the replay had finished (having gone past the unreadable
# pages) before the vCPU's fault met the failure; it installed some of the
# first half and nothing of the second.
replayed=$(line_of d "working set replayed \($PAGES pages listed")
failed=$(line_of d "source ws could not deliver offset $((HALF * 4096)) ")
[ -n "$replayed" ] && [ -n "$failed" ] && [ "$replayed" -lt "$failed" ] ||
  fail "the replay did not meet the failure first (lines ${replayed:-none}, ${failed:-none})"
ahead=$(grep -Eo "working set replayed \($PAGES pages listed, [0-9]+ installed" \
  "$TMP/d.log" | grep -Eo '[0-9]+ installed' | cut -d' ' -f1)
[ "$ahead" -gt 0 ] && [ "$ahead" -le $HALF ] ||
  fail "the replay installed $ahead pages ahead of the guest, expected 1..$HALF"
echo "replay: $ahead pages installed ahead; $(sed -n "${failed}p" "$TMP/d.log" | sed 's/.*: source/source/')"
stop_daemons
echo "trust-replay-error: OK"
