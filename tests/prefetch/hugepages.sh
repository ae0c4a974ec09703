# Fault-around and the prefetch thread with 2 MiB hugetlb guest memory:
# fault_around = 4 (runs of up to 5 huge pages, never across a region's end
# nor over a removed page); a working set recorded at 4 KiB is refused at
# 2 MiB; one recorded at 2 MiB is replayed, with the background fill, while
# the balloon discards, and every page is installed exactly once.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/../core/common.sh"
. "$(dirname "$0")/common.sh"

PAGES=16 # 32 MiB of 2 MiB pages
sim 0 img mkimage "$TMP/mem" --size 32M --seed 81
# The guest's 16 huge pages, one spare for the simulator's bounce buffer,
# and one for each daemon thread that may copy at the same time (the fault
# loop and the prefetch thread), with one more to spare.
reserve_hugepages 20

write_conf "$TMP/uffdkit.conf" \
  "fa4 $TMP/mem fault_around = 4;" \
  "rec4k $TMP/mem prefetch = { working_set = \"$TMP/ws-4k\"; mode = \"record\"; };" \
  "rep2m $TMP/mem prefetch = { working_set = \"$TMP/ws-4k\"; mode = \"replay\"; };" \
  "rec2m $TMP/mem fault_around = 4;
     prefetch = { working_set = \"$TMP/ws-2m\"; mode = \"record\"; };" \
  "both $TMP/mem background_fill = true; fault_around = 4;
     prefetch = { working_set = \"$TMP/ws-2m\"; mode = \"replay\"; };"
start_conf huge "$TMP/uffdkit.conf"
run() {
  echo run --socket "$TMP/$1.sock" --image "$TMP/mem" --timeout 30 \
    --page-size 2M
}

# ---- fault_around = 4 ----
# shellcheck disable=SC2046
{
  vm 0 fa-seq $(run fa4) --order seq --regions 3
  verified fa-seq $PAGES
  expect_field fa-seq page_size $((2 << 20))
  ended huge fa-seq
  echo "fa-seq: the daemon served $FAULTS faults"
  # Regions of 6, 5 and 5 huge pages: 2 + 1 + 1 runs.
  expect_le "fault_around = 4 at 2 MiB: faults" "$FAULTS" 6
  vm 0 fa-rand $(run fa4) --order random --vcpus 2 --regions 2 --seed 3
  verified fa-rand $PAGES
  vm 0 fa-after $(run fa4) --regions 2 --balloon 8M:6M --balloon 30M:2M
  verified fa-after $PAGES
  expect_field fa-after zero_checked 4
  # Discarded once 4 pages were touched (pages 0-4 installed by the first
  # fault), 2 ms between touches: the faults at pages 6 and 11 (the first of
  # regions 1 and 2) come after the discard of pages 8-9 and 13, and their
  # runs must stop there.
  vm 0 fa-during $(run fa4) --order seq --vcpus 2 --regions 3 \
    --balloon 16M:4M --balloon 26M:2M --balloon-during --delay-us 2000
  verified fa-during $PAGES
  expect_field fa-during zero_checked 3
}

# ---- a working set recorded at 4 KiB is refused at 2 MiB ----
# shellcheck disable=SC2046
vm 0 rec-4k run --socket "$TMP/rec4k.sock" --image "$TMP/mem" --timeout 30 \
  --order random --vcpus 2
verified rec-4k 8192
ended huge rec-4k
wait_log huge "session $SID: recorded a working set of 8192 pages to $TMP/ws-4k\$"
# shellcheck disable=SC2046
vm 0 rep-2m $(run rep2m) --order random --seed 4
verified rep-2m $PAGES
ended huge rep-2m
wait_log huge "session $SID: not replaying working set $TMP/ws-4k: its page size differs"
[ "$(count_log huge "session $SID: working set replayed")" -eq 0 ] ||
  fail "rep-2m: replayed a working set recorded at 4 KiB"

# ---- recorded at 2 MiB, replayed with the background fill ----
# shellcheck disable=SC2046
vm 0 rec-2m $(run rec2m) --order random --seed 5 --touch-percent 50
expect_field rec-2m mismatches 0
listed=$(field rec-2m pages)
ended huge rec-2m
wait_log huge "session $SID: recorded a working set of $listed pages to $TMP/ws-2m\$"
wset_info "$TMP/ws-2m"
[ "${WSI[page_size]}" = $((2 << 20)) ] && [ "${WSI[n]}" = "$listed" ] ||
  fail "ws-2m is not a 2 MiB working set of $listed pages"
# Recording keeps fault-around off: one fault per page touched.
[ "$FAULTS" -ge "$listed" ] ||
  fail "rec-2m: $FAULTS faults for $listed pages: fault-around ran while recording"

# shellcheck disable=SC2046
for seed in 11 12 13 14 15 16 17 18; do
  vm 0 "both-$seed" $(run both) --order random --vcpus 2 --seed $seed \
    --regions 3 --balloon 4M:4M --balloon 16M:6M --balloon-during
  verified "both-$seed" $PAGES
  expect_field "both-$seed" zero_checked 5
done
# shellcheck disable=SC2046
vm 0 both-2 $(run both) --order seq --vcpus 2 --seed 7 --regions 2 \
  --balloon 20M:8M
verified both-2 $PAGES
expect_field both-2 zero_checked 4

# Held after a pass over a quarter of the pages, with the guest slowed so
# the replay gets ahead: every page is installed exactly once.
before=$(counter both prefetched_pages)
# shellcheck disable=SC2046
bg_vm both-3 $(run both) --order random --seed 8 --touch-percent 25 \
  --delay-us 2000 --hold 3
sid=$(live_sid huge both-3)
wait_installed "$sid" $PAGES 3
finish_vm 0 both-3
expect_field both-3 mismatches 0
replayed_then_filled huge both-3 "$before"

stop_daemons
