# Restores through the real daemon, every byte checked by the simulator:
# the command-line listener and a config file; 1 and 3 regions, 1 and 4
# vCPUs, every Firecracker style; the mmap and file sources (and O_DIRECT);
# balloon discards after and during the run; two VMs at once.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

PAGES=16384 # 64 MiB of 4 KiB pages
sim 0 img mkimage "$TMP/mem" --size 64M --seed 7

# ---- one listener from the command line ----
start_daemon cli "$TMP/cli.sock" --socket "$TMP/cli.sock" mmap \
  path="$TMP/mem"
run=(run --socket "$TMP/cli.sock" --image "$TMP/mem" --timeout 60)
for style in 1.1 1.7 1.12; do
  sim 0 "cli-$style" "${run[@]}" --style "$style"
  verified "cli-$style" $PAGES
done
sim 0 cli-r3 "${run[@]}" --regions 3 --style 1.1 --order random
verified cli-r3 $PAGES
expect_field cli-r3 regions 3
sim 0 cli-r3-v4 "${run[@]}" --regions 3 --vcpus 4 --style 1.7
verified cli-r3-v4 $PAGES
expect_field cli-r3-v4 vcpus 4
sim 0 cli-v4 "${run[@]}" --vcpus 4 --order stride:7
verified cli-v4 $PAGES
# Every session was served by the worker and seen to end.
for ((i = 0; i < 100; i++)); do
  [ "$(count_log cli ' ended: ')" -ge 6 ] && break
  sleep 0.05
done
[ "$(count_log cli ' ended: ')" -eq 6 ] ||
  fail "expected 6 sessions to end, the log has $(count_log cli ' ended: ')"
[ "$(count_log cli 'uffdkit-worker.*session [0-9]+ \(pid [0-9]+\) on cli: ')" -eq 6 ] ||
  fail "the worker did not start 6 sessions"
stop_daemons
[ ! -e "$TMP/cli.sock" ] || fail "the socket was left behind"

# ---- a config file with three listeners ----
cat >"$TMP/uffdkit.conf" <<EOF
uffdkit = { log_level = "info"; };
listeners = (
  { name = "mm"; socket = "$TMP/mm.sock";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; },
  { name = "ff"; socket = "$TMP/ff.sock";
    source = { plugin = "file"; path = "$TMP/mem"; }; },
  { name = "fd"; socket = "$TMP/fd.sock";
    source = { plugin = "file"; path = "$TMP/mem"; direct = true; }; }
);
EOF
start_daemon conf "$TMP/mm.sock" --config "$TMP/uffdkit.conf"
wait_for_socket "$TMP/ff.sock"
wait_for_socket "$TMP/fd.sock"
wait_log conf 'listener fd: file, 67108864 bytes'

for l in mm ff fd; do
  sim 0 "$l-1.12" run --socket "$TMP/$l.sock" --image "$TMP/mem" \
    --timeout 60 --vcpus 4 --regions 3
  verified "$l-1.12" $PAGES
  sim 0 "$l-1.1" run --socket "$TMP/$l.sock" --image "$TMP/mem" \
    --timeout 60 --style 1.1 --order random
  verified "$l-1.1" $PAGES
done

# ---- balloon discards: removed pages read zeros from then on ----
bal=(run --socket "$TMP/mm.sock" --image "$TMP/mem" --timeout 60)
sim 0 balloon-after "${bal[@]}" --regions 3 --balloon 20M:8M \
  --balloon 0:4K --balloon 60M:4M
verified balloon-after $PAGES
expect_field balloon-after zero_checked $(((8 << 8) + 1 + (4 << 8)))
sim 0 balloon-during "${bal[@]}" --regions 3 --vcpus 4 --balloon 8M:16M \
  --balloon 40M:8M --balloon-during
verified balloon-during $PAGES
expect_field balloon-during zero_checked $((24 << 8))
sim 0 balloon-file "${bal[@]/mm.sock/ff.sock}" --vcpus 2 --style 1.7 \
  --balloon 0:32M --balloon-during
verified balloon-file $PAGES
expect_field balloon-file zero_checked $((32 << 8))

# ---- two VMs at once on one listener ----
two=(run --socket "$TMP/mm.sock" --image "$TMP/mem" --timeout 60 --vcpus 2
  --delay-us 100)
"$SIM" "${two[@]}" --order random >"$TMP/vm1.out" 2>"$TMP/vm1.err" &
vm1=$!
"$SIM" "${two[@]}" --regions 2 --style 1.1 >"$TMP/vm2.out" \
  2>"$TMP/vm2.err" &
vm2=$!
rc1=0 rc2=0
wait $vm1 || rc1=$?
wait $vm2 || rc2=$?
check_sim 0 vm1 $rc1
check_sim 0 vm2 $rc2
verified vm1 $PAGES
verified vm2 $PAGES
# Both sessions were live together: both started before either ended.
wait_log conf "\(pid $vm1\) on mm ended"
wait_log conf "\(pid $vm2\) on mm ended"
starts=$(grep -E -n "session [0-9]+: pid ($vm1|$vm2) " "$TMP/conf.log" |
  cut -d: -f1)
ends=$(grep -E -n "\(pid ($vm1|$vm2)\) on mm ended" "$TMP/conf.log" |
  cut -d: -f1)
[ "$(echo "$starts" | wc -w)" -eq 2 ] && [ "$(echo "$ends" | wc -w)" -eq 2 ] ||
  fail "expected 2 starts and 2 ends of the two VMs, got lines '$starts' and '$ends'"
last_start=$(echo "$starts" | sort -n | tail -1)
first_end=$(echo "$ends" | sort -n | head -1)
[ "$last_start" -lt "$first_end" ] ||
  fail "the two sessions did not overlap (started at lines $starts, first end at line $first_end)"

stop_daemons
for l in mm ff fd; do
  [ ! -e "$TMP/$l.sock" ] || fail "$l.sock was left behind"
done
