# 2 MiB hugetlb guest memory through the daemon (Firecracker huge_pages
# "2M", page_size_kib 2097152 from 1.7, page_size from 1.12): whole huge
# pages copied from the mmap and file sources, discarded huge pages back as
# zeros.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 64M --seed 21
# 32 huge pages of guest memory, one spare for the simulator's bounce
# buffer, one for a copy the daemon makes while another is in flight.
reserve_hugepages 34

cat >"$TMP/uffdkit.conf" <<CONF
listeners = (
  { name = "mm"; socket = "$TMP/mm.sock";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; },
  { name = "ff"; socket = "$TMP/ff.sock";
    source = { plugin = "file"; path = "$TMP/mem"; }; }
);
CONF
start_daemon huge "$TMP/mm.sock" --config "$TMP/uffdkit.conf"
wait_for_socket "$TMP/ff.sock"

run=(run --image "$TMP/mem" --page-size 2M --timeout 60)
sim 0 mm-1.12 "${run[@]}" --socket "$TMP/mm.sock"
verified mm-1.12 32
expect_field mm-1.12 page_size 2097152
wait_log huge 'session [0-9]+: pid [0-9]+ uid [0-9]+ on mm, 1 regions, page size 2097152'

sim 0 mm-1.7 "${run[@]}" --socket "$TMP/mm.sock" --style 1.7 --regions 3 \
  --vcpus 4 --order random
verified mm-1.7 32
expect_field mm-1.7 regions 3

sim 0 ff-1.12 "${run[@]}" --socket "$TMP/ff.sock" --regions 2 --vcpus 2
verified ff-1.12 32

sim 0 balloon-after "${run[@]}" --socket "$TMP/mm.sock" --regions 2 \
  --balloon 16M:8M --balloon 62M:2M
verified balloon-after 32
expect_field balloon-after zero_checked 5

sim 0 balloon-during "${run[@]}" --socket "$TMP/mm.sock" --regions 3 \
  --vcpus 2 --balloon 8M:32M --balloon-during
verified balloon-during 32
expect_field balloon-during zero_checked 16

sim 0 balloon-file "${run[@]}" --socket "$TMP/ff.sock" --style 1.7 \
  --balloon 0:64M --balloon-during
verified balloon-file 32
expect_field balloon-file zero_checked 32

# The worker killed mid-restore: huge pages lost in flight are raised
# again, discarded ones stay zeros (hugetlb has no ZEROPAGE: copied from a
# zero buffer).
D=$(daemon_pid)
for run_args in "--regions 2" "--balloon 8M:32M --balloon-during"; do
  W=$(wait_worker "$D")
  # shellcheck disable=SC2086
  "$SIM" "${run[@]}" --socket "$TMP/mm.sock" --delay-us 50000 $run_args \
    >"$TMP/crash.out" 2>"$TMP/crash.err" &
  pid=$!
  wait_log huge "session [0-9]+: pid $pid "
  sleep 0.6
  kill -0 $pid 2>/dev/null || fail "the restore finished before the kill"
  kill -KILL "$W"
  W=$(wait_worker "$D" "$W")
  wait_log huge "worker $W ready; handed back 1 live sessions"
  rc=0
  wait $pid || rc=$?
  check_sim 0 crash $rc
  verified crash 32
done
expect_field crash zero_checked 16

stop_daemons
