# VMs recording one working set at once (mode = record or auto with one
# working_set for a listener that restores many VMs from one snapshot): when
# their sessions end together, each write must still be whole (the file is
# one of the recordings, never a mix or a half), none may fail, and no
# temporary file may be left behind.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/../core/common.sh"
. "$(dirname "$0")/common.sh"

PAGES=8192 # 32 MiB of 4 KiB pages
sim 0 img mkimage "$TMP/mem" --size 32M --seed 71
WS=$TMP/ws
write_conf "$TMP/uffdkit.conf" \
  "rec $TMP/mem prefetch = { working_set = \"$WS\"; mode = \"record\"; };" \
  "rep $TMP/mem prefetch = { working_set = \"$WS\"; mode = \"replay\"; };"
start_conf pf "$TMP/uffdkit.conf"

# faults_of PID: the faults counter of the live session of VM PID (0 if it
# is not listed yet).
faults_of() {
  "$UFFDKIT" ctl --socket "$CTL" --json list | "$PYTHON" -c '
import json, sys
for s in json.load(sys.stdin)["sessions"]:
    if s["pid"] == int(sys.argv[1]):
        print(int(s["faults"]))
        break
else:
    print(0)' "$1"
}

# wait_faults PID: waits until the session of VM PID has served a fault for
# each of its pages (recording keeps fault-around off: one fault a page).
wait_faults() {
  local pid=$1 end=$((SECONDS + 30))
  until [ "$(faults_of "$pid")" -ge $PAGES ]; do
    kill -0 "$pid" 2>/dev/null || fail "VM $pid exited before it was killed"
    [ $SECONDS -lt $end ] ||
      fail "VM $pid did not touch its $PAGES pages in 30 s"
    sleep 0.1
  done
}

for round in 1 2 3 4; do
  # Three VMs with the same pass in different orders, held once verified;
  # when each has touched every page, all are killed at once, so their
  # sessions end and write their recordings together.
  pids=()
  for seed in $((round * 3)) $((round * 3 + 1)) $((round * 3 + 2)); do
    bg_vm "vm-$seed" run --socket "$TMP/rec.sock" --image "$TMP/mem" \
      --timeout 60 --order random --seed $seed --hold 60
    pids+=("${VM_PID[vm-$seed]}")
  done
  for pid in "${pids[@]}"; do
    wait_faults "$pid"
  done
  kill -KILL "${pids[@]}"
  for pid in "${pids[@]}"; do
    reap_vm "$pid" 2>/dev/null || true
    wait_log pf "session [0-9]+ \(pid $pid\) on rec ended: "
  done
  for pid in "${pids[@]}"; do
    sid=$(grep -E "session [0-9]+ \(pid $pid\) on rec ended: " \
      "$TMP/pf.log" | sed -E 's/.*session ([0-9]+) .*/\1/')
    errors=$(grep -E "session $sid: writing the working set" "$TMP/pf.log" ||
      true)
    [ -z "$errors" ] || fail "round $round: $errors"
    wait_log pf "session $sid: recorded a working set of $PAGES pages to $WS\$"
  done
  wset_info "$WS"
  [ "${WSI[n]}" -eq $PAGES ] && [ "${WSI[distinct]}" -eq $PAGES ] ||
    fail "round $round: $WS is not one whole recording of $PAGES pages"
  leftover=$(find "$TMP" -name 'ws?*')
  [ -z "$leftover" ] || fail "round $round: temporary files left: $leftover"
done

# The file left is a working set the daemon replays.
vm 0 replay run --socket "$TMP/rep.sock" --image "$TMP/mem" --timeout 30 \
  --vcpus 2 --order random --delay-us 20
verified replay $PAGES
n=$(prefetched pf replay)
[ -n "$n" ] && [ "$n" -gt 0 ] || fail "the last recording was not replayed"

stop_daemons
