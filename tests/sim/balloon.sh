# Balloon discards (madvise MADV_DONTNEED -> UFFD_EVENT_REMOVE) after the
# pass and during it: discarded pages must come back as zeros.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 64M --seed 12
start_ref ref "$TMP/ref.sock" "$TMP/mem"
run=(run --socket "$TMP/ref.sock" --image "$TMP/mem" --timeout 60)

# The first range crosses the boundary between regions 0 and 1.
sim 0 after "${run[@]}" --regions 3 --balloon 20M:8M --balloon 0:4K \
  --balloon 60M:4M
verified after 16384
expect_field after zero_checked $(((8 << 8) + 1 + (4 << 8)))

# Pages never touched before the discard must read zeros as well.
sim 0 partial "${run[@]}" --regions 2 --vcpus 2 --touch-percent 30 \
  --order random --balloon 16M:32M
expect_field partial mismatches 0
expect_field partial zero_checked $((32 << 8))

sim 0 during "${run[@]}" --regions 3 --vcpus 4 --balloon 8M:16M \
  --balloon 40M:8M --balloon-during
verified during 16384
expect_field during zero_checked $((24 << 8))

sim 0 during1 "${run[@]}" --vcpus 1 --order random --balloon 0:64M \
  --balloon-during
verified during1 16384

# Without UFFD_FEATURE_EVENT_REMOVE the handler never hears of the discard
# and serves file bytes again: the check must catch it.
sim 1 noremove "${run[@]}" --no-remove-event --balloon 4M:4M
[ "$(field noremove mismatches)" -gt 800 ] ||
  fail "no-remove-event balloon found only $(field noremove mismatches) mismatches"

stop_daemons
