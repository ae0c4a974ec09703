#!/bin/bash
# Memory stays proportional to what is configured, however many reloads
# keep VMs alive.  Listener a serves a 32 MiB image through mmap (populate:
# the whole image is resident once).  Ten times: a slow VM starts on the
# current generation, then SIGHUP (the file unchanged), so that each of
# eleven generations has a live VM.  After every reload the daemon has one
# worker, and the new generation keeps a's stack; after the tenth, the
# resident memory of the daemon's processes has grown by less than two
# more images (a copy per generation would be ten; a sanitizer's shadow of
# eleven sessions' threads takes some room of its own).
# Every VM then ends with every byte right.
. "$(dirname "$0")/common.sh"

PAGES=8192
sim 0 img mkimage "$TMP/mem" --size 32M --seed 93
CTL=$TMP/ctl.sock
CONF=$TMP/d.conf
cat >"$CONF" <<CONF
uffdkit = { control_socket = "$CTL"; };
listeners = (
  { name = "a"; socket = "$TMP/a.sock";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
start_daemon d "$TMP/a.sock" --config "$CONF" --plugin-dir "$PLUGINS"
D=$(daemon_pid)
wait_for_socket "$CTL"
wait_log d "worker [0-9]+ ready"

# rss_kib: resident memory of the daemon and its workers, in KiB.
rss_kib() {
  local p sum=0 kb
  for p in "$D" $(workers_of "$D"); do
    kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
    sum=$((sum + ${kb:-0}))
  done
  echo "$sum"
}

# slow N: a VM on the current generation, 3 ms between touches (25 s).
VMS=()
slow() {
  "$SIM" run --socket "$TMP/a.sock" --image "$TMP/mem" --delay-us 3000 \
    --timeout 240 >"$TMP/vm$1.out" 2>"$TMP/vm$1.err" &
  VMS+=($!)
  wait_log d "session [0-9]+: pid $! "
}

slow 0
sleep 0.5
rss0=$(rss_kib)
echo "one generation, one VM: $rss0 KiB resident"
for ((i = 1; i <= 10; i++)); do
  kill -HUP "$D"
  wait_log d "configuration generation $((i + 1)) \(.*\) is live" 30
  n=$(workers_of "$D" | wc -l)
  [ "$n" -eq 1 ] || fail "after reload $i the daemon has $n workers"
  slow "$i"
done
for pid in "${VMS[@]}"; do
  still_running "$pid" "a VM"
done
sleep 0.5
rss10=$(rss_kib)
echo "eleven generations, one VM each, after ten reloads: $rss10 KiB resident, $(workers_of "$D" | wc -l) worker"
[ "$(count_log d "listeners, 0 stacks built, 1 kept")" -eq 10 ] ||
  fail "not every reload kept a's stack: $(grep "stacks built" "$TMP/d.log")"
# A copy of the image is 32768 KiB.
[ "$rss10" -lt $((rss0 + 65536)) ] ||
  fail "resident memory grew from $rss0 to $rss10 KiB with ten reloads"

for ((i = 0; i <= 10; i++)); do
  rc=0
  wait "${VMS[$i]}" || rc=$?
  check_sim 0 "vm$i" $rc
  verified "vm$i" $PAGES
done
stop_daemons
