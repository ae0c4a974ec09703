# Exit codes 2, 3 and 4: usage errors, a handler that stops serving, one that
# refuses or vanishes.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 8M --seed 31
run=(run --socket "$TMP/ref.sock" --image "$TMP/mem")

sim 2 noargs
sim 2 nocmd frobnicate
sim 0 help --help
grep -q -- --balloon-during "$TMP/help.out" || fail "--help lacks options"
sim 2 nosocket run --image "$TMP/mem"
sim 2 badopt "${run[@]}" --frobnicate
sim 2 regions "${run[@]}" --regions 65
sim 2 pagesize "${run[@]}" --page-size 8K
sim 2 style "${run[@]}" --style 1.3
sim 2 order "${run[@]}" --order stride:0
sim 2 memsize "${run[@]}" --mem-size 16M
sim 2 noimage run --socket "$TMP/ref.sock" --image "$TMP/missing"
grep -q "$TMP/missing" "$TMP/noimage.err" || fail "missing image not named"
sim 2 balloon "${run[@]}" --balloon 6M:4M
sim 2 during "${run[@]}" --balloon-during

# Nothing listening: ENOENT, then a plain file (ECONNREFUSED).
sim 4 enoent "${run[@]}" --connect-timeout 0.3
touch "$TMP/ref.sock"
sim 4 refused "${run[@]}" --connect-timeout 0.3
grep -q "Connection refused" "$TMP/refused.err" || fail "refusal not reported"
rm "$TMP/ref.sock"

start_ref ref "$TMP/ref.sock" "$TMP/mem"
ref=${DAEMON_PIDS[0]}

# ref-handler drops handshakes without a uffd or with bad JSON...
sim 0 nofd "${run[@]}" --no-fd --expect-refused --timeout 5
printf '[{"size":1}]' >"$TMP/raw"
sim 0 raw "${run[@]}" --raw-handshake "$TMP/raw" --expect-refused --timeout 5
# ...and keeps a good one.
sim 4 kept "${run[@]}" --expect-refused --timeout 0.5

# A stopped handler resolves nothing: the watchdog names the stuck vCPU.
kill -STOP "$ref"
sim 3 stopped "${run[@]}" --timeout 1 --vcpus 2
kill -CONT "$ref"
# Each vCPU is stuck on its first page: vCPU 0 at page 0, vCPU 1 at page 1;
# the watchdog names whichever it looks at first.
grep -Eq "^timeout: vCPU (0 stuck at memory offset 0x0|1 stuck at memory offset 0x1000) \(region 0\)" \
  "$TMP/stopped.err" || fail "timeout message: $(cat "$TMP/stopped.err")"

# After the stop the same handler serves a full restore again.
sim 0 again "${run[@]}" --vcpus 2
verified again 2048

# A handler that dies mid-restore closes the 1.12 socket: exit 4, not 3.
"$SIM" "${run[@]}" --delay-us 500 --timeout 30 >"$TMP/killed.out" \
  2>"$TMP/killed.log" &
sim_pid=$!
sleep 0.3
kill -KILL "$ref"
wait "$ref" 2>/dev/null || true
DAEMON_PIDS=()
rc=0
wait $sim_pid || rc=$?
[ $rc -eq 4 ] || fail "killed handler: uffdkit-sim exited with $rc, expected 4"
grep -q "closed the connection while vCPU 0 waits" "$TMP/killed.log" ||
  fail "killed handler: $(cat "$TMP/killed.log")"
