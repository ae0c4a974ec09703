# spin (uffdkit.conf(5)) reaches the fault loop: "auto" is the adaptive
# policy (it sleeps after windows without a fault, or while the CPUs are
# busy), a duration polls after every batch, "0" never polls.  What the
# loop did is in its debug line at the session's end, so decisions are
# checked, not timings (the policy itself: test_busypoll.c).  Every page is
# verified under each setting.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 16M --seed 5
{
  echo "uffdkit = { log_level = \"debug\"; control_socket = \"$TMP/ctl.sock\"; };"
  echo "listeners = ("
  sep=""
  for l in auto:auto fixed:50us off:0; do
    printf '%s  { name = "%s"; socket = "%s/%s.sock"; spin = "%s";\n' \
      "$sep" "${l%%:*}" "$TMP" "${l%%:*}" "${l#*:}"
    printf '    source = { plugin = "mmap"; path = "%s"; }; }' "$TMP/mem"
    sep=$',\n'
  done
  printf '\n);\n'
} >"$TMP/uffdkit.conf"
start_daemon d "$TMP/off.sock" --config "$TMP/uffdkit.conf"

# polling LISTENER: after a restore on LISTENER, its session's line as
# "CAUGHT MISSED BUSY BACKOFF YIELDS".
polling() {
  local re="session [0-9]+ on $1: polling for faults: "
  wait_log d "$re" 10
  grep -E "$re" "$TMP/d.log" | tail -1 | sed -E \
    's/.*: ([0-9]+) caught, ([0-9]+) windows without one, slept ([0-9]+) times as the CPUs were busy and ([0-9]+) times after misses, yielded ([0-9]+) times.*/\1 \2 \3 \4 \5/'
}

# A guest that works 300 us between faults (a quarter of its pages, in
# order): no window of 50 us catches the next one.
sparse() {
  sim 0 "sparse-$1" run --socket "$TMP/$1.sock" --image "$TMP/mem" \
    --touch-percent 25 --delay-us 300 --timeout 60
  expect_field "sparse-$1" mismatches 0
  PAGES=$(field "sparse-$1" pages)
}

sparse auto
read -r caught missed busy backoff yields <<<"$(polling auto)"
echo "auto: caught $caught, missed $missed, busy $busy, backoff $backoff"
# Each fault was caught while looking, or ended a look that missed, or
# slept for one reason or the other; after misses most sleep.
[ $((caught + missed + busy + backoff)) -ge "$PAGES" ] ||
  fail "auto: $caught + $missed + $busy + $backoff decisions for $PAGES faults"
[ $((busy + backoff)) -gt $((PAGES / 2)) ] ||
  fail "auto: polled after $missed of $PAGES sparse faults (slept $busy + $backoff)"

sparse fixed
read -r caught missed busy backoff yields <<<"$(polling fixed)"
echo "fixed: caught $caught, missed $missed, busy $busy, backoff $backoff"
[ "$busy" -eq 0 ] && [ "$backoff" -eq 0 ] ||
  fail "fixed: a fixed window slept ($busy busy, $backoff after misses)"
[ $((caught + missed)) -ge "$PAGES" ] ||
  fail "fixed: $caught + $missed looks for $PAGES faults"

sparse off
read -r caught missed busy backoff yields <<<"$(polling off)"
[ "$caught $missed $busy $backoff $yields" = "0 0 0 0 0" ] ||
  fail "off: spin = \"0\" polled ($caught $missed $busy $backoff $yields)"

# A restore storm on auto: every page right, faults caught while polling
# whenever a CPU was free.
sim 0 storm run --socket "$TMP/auto.sock" --image "$TMP/mem" --vcpus 2 \
  --order random --timeout 60
verified storm 4096
echo "storm: $(polling auto)"

# With a spinning process per CPU and one more (niced: runnable all the
# same), the CPUs are busy: auto asks before it yields, so a look that
# stops for busy CPUs gave no CPU away first.  Each yield is followed by a
# look, so most stops here come without one.
spinners=()
for _ in $(seq 0 "$(nproc)"); do
  nice -n 19 sh -c 'while :; do :; done' &
  spinners+=($!)
done
sleep 0.1 # the runnable count is read at most once a millisecond
sim 0 busy run --socket "$TMP/auto.sock" --image "$TMP/mem" --vcpus 2 \
  --order random --touch-percent 25 --timeout 60
kill "${spinners[@]}"
wait "${spinners[@]}" 2>/dev/null || true # killed: 143
expect_field busy mismatches 0
read -r caught missed busy backoff yields <<<"$(polling auto)"
echo "busy CPUs: caught $caught, missed $missed, busy $busy, backoff $backoff, yielded $yields"
[ "$busy" -gt 0 ] || fail "busy CPUs: auto never stopped for them"
[ "$yields" -lt "$busy" ] ||
  fail "busy CPUs: $yields yields for $busy stops: it yielded before asking"
stop_daemons
