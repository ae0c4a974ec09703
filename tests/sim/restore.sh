# 4 KiB restores against ref-handler: 1 and 3 regions, 1 and 4 vCPUs, and
# every handshake style.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 64M --seed 11
start_ref ref "$TMP/ref.sock" "$TMP/mem"
run=(run --socket "$TMP/ref.sock" --image "$TMP/mem" --timeout 60)

for regions in 1 3; do
  for vcpus in 1 4; do
    name=r${regions}v$vcpus
    sim 0 $name "${run[@]}" --regions $regions --vcpus $vcpus
    verified $name 16384
    expect_field $name regions $regions
    expect_field $name vcpus $vcpus
    expect_field $name page_size 4096
    expect_field $name bytes $((64 << 20))
  done
done

for style in 1.1 1.7 1.12; do
  sim 0 style$style "${run[@]}" --style $style --regions 2 --vcpus 2 \
    --order random --seed 5
  verified style$style 16384
done

# Split handshake, extra fds, partial touch, stride order, repeats, a
# smaller guest than the image, and the JSON form of the summary.
sim 0 split "${run[@]}" --split-send 7 --extra-fds 3 --touch-percent 10 \
  --order stride:5 --repeat 2 --mem-size 32M --regions 3
pages=$(field split pages)
[ "$pages" -gt 1400 ] && [ "$pages" -lt 1900 ] ||
  fail "10% of 2 x 8192 pages touched $pages"
expect_field split mismatches 0

sim 0 json "${run[@]}" --json --touch-percent 1
grep -q '^{"pages":[0-9]*,"bytes":[0-9]*,"seconds":[0-9.]*,"us_per_fault":.*"mismatches":0,"zero_checked":0,"vcpus":1,"page_size":4096,"regions":1}$' \
  "$TMP/json.out" || fail "unexpected --json output: $(cat "$TMP/json.out")"

stop_daemons
