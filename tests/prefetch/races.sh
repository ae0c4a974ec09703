# The prefetch thread (working-set replay, background fill) against balloon
# discards during the pass: every discarded page reads zeros and every other
# page its bytes, so a page removed while a run that covers it is being
# installed is never brought back with snapshot bytes; the kernel answers
# such an install with EAGAIN while the REMOVE is pending, and by the retry
# the page is removed.  Then replay and fill together, every page installed
# exactly once.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/../core/common.sh"
. "$(dirname "$0")/common.sh"

PAGES=16384 # 64 MiB of 4 KiB pages
sim 0 img mkimage "$TMP/mem" --size 64M --seed 61
WS=$TMP/ws
write_conf "$TMP/uffdkit.conf" \
  "rec $TMP/mem prefetch = { working_set = \"$WS\"; mode = \"record\"; };" \
  "rep $TMP/mem prefetch = { working_set = \"$WS\"; mode = \"replay\"; };" \
  "fill $TMP/mem background_fill = true;" \
  "both $TMP/mem background_fill = true;
     prefetch = { working_set = \"$WS\"; mode = \"replay\"; };"
start_conf pf "$TMP/uffdkit.conf"
run() {
  echo run --socket "$TMP/$1.sock" --image "$TMP/mem" --timeout 30
}

# A working set of about 30% of the pages in random order: replayed, it
# is mostly runs of a few pages, in no order the balloon follows.
# shellcheck disable=SC2046
vm 0 rec $(run rec) --order random --touch-percent 30 --seed 9
expect_field rec mismatches 0
listed=$(field rec pages)
ended pf rec
wait_log pf "session $SID: recorded a working set of $listed pages to $WS\$"

# The balloon discards every page, 1 MiB at a time (64 REMOVE events in a
# row), once a quarter of the pages to touch were touched: touching 1% of
# the pages gets there within a few milliseconds, while the replay runs.
all=()
for ((m = 0; m < 64; m++)); do
  all+=(--balloon "${m}M:1M")
done
# The first 32 MiB, 1 MiB at a time (the first 32 ranges).
half=("${all[@]:0:64}")
# Every other MiB of the first 32 MiB and a range beyond: the pages between
# the ranges must keep their bytes.
sparse=()
for ((m = 0; m < 32; m += 2)); do
  sparse+=(--balloon "${m}M:1M")
done
sparse+=(--balloon 40M:8M)

# ---- replay ----
for seed in 1 2 3 4 5 6 7 8 9 10; do
  # shellcheck disable=SC2046
  vm 0 "rep-$seed" $(run rep) --vcpus 2 --order random --seed "$seed" \
    --touch-percent 1 "${all[@]}" --balloon-during
  expect_field "rep-$seed" mismatches 0
  expect_field "rep-$seed" zero_checked $PAGES
done
for seed in 11 12; do
  # shellcheck disable=SC2046
  vm 0 "rep-$seed" $(run rep) --vcpus 2 --order random --seed "$seed" \
    --regions 3 "${sparse[@]}" --balloon-during
  verified "rep-$seed" $PAGES
  expect_field "rep-$seed" zero_checked $(((16 + 8) << 8))
done
got=$(counter rep prefetched_pages)
[ "$got" -gt 0 ] || fail "the replays installed nothing ahead of the guest"
echo "rep: $got pages installed ahead of the guest in 12 runs"

# ---- background fill ----
for seed in 1 2 3 4 5; do
  # shellcheck disable=SC2046
  vm 0 "fill-$seed" $(run fill) --vcpus 2 --order random --seed "$seed" \
    --touch-percent 10 "${half[@]}" --balloon-during
  expect_field "fill-$seed" mismatches 0
  expect_field "fill-$seed" zero_checked $((32 << 8))
done
# shellcheck disable=SC2046
vm 0 fill-6 $(run fill) --vcpus 2 --order random --seed 6 --regions 2 \
  "${sparse[@]}" --balloon-during
verified fill-6 $PAGES
got=$(counter fill prefetched_pages)
[ "$got" -gt 0 ] || fail "the fill installed nothing ahead of the guest"
echo "fill: $got pages installed ahead of the guest in 6 runs"

# ---- replay and fill together ----
# shellcheck disable=SC2046
vm 0 both-1 $(run both) --vcpus 2 --order random --seed 11 --regions 3 \
  "${sparse[@]}" --balloon-during
verified both-1 $PAGES
expect_field both-1 zero_checked $(((16 + 8) << 8))

# Without a balloon, the VM held after its pass: the fill completes and,
# with the replay and the faults, has installed every page exactly once
# (pages_copied + zero_pages counts every install, whoever made it).
before=$(counter both prefetched_pages)
# shellcheck disable=SC2046
bg_vm both-2 $(run both) --vcpus 2 --order random --seed 12 --touch-percent 20 \
  --hold 3
sid=$(live_sid pf both-2)
wait_installed "$sid" $PAGES 3
finish_vm 0 both-2
expect_field both-2 mismatches 0
replayed_then_filled pf both-2 "$before"

stop_daemons
