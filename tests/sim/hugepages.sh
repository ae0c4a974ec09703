# 2 MiB hugetlb guest memory (Firecracker huge_pages "2M"): UFFDIO_COPY of
# whole huge pages, and removed huge pages come back as zeros.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 64M --seed 13
# Without free huge pages the simulator must refuse, saying how to get them.
if [ "$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)" -lt 33 ]; then
  sim 2 nohuge run --socket "$TMP/none.sock" --image "$TMP/mem" --page-size 2M
  grep -q nr_hugepages "$TMP/nohuge.err" || fail "no hint how to reserve"
fi
reserve_hugepages 34
start_ref ref "$TMP/ref.sock" "$TMP/mem"
run=(run --socket "$TMP/ref.sock" --image "$TMP/mem" --page-size 2M
  --timeout 60)

sim 0 one "${run[@]}"
verified one 32
expect_field one page_size 2097152

sim 0 three "${run[@]}" --regions 3 --vcpus 4 --style 1.7 --order random
verified three 32
expect_field three regions 3

sim 0 after "${run[@]}" --regions 2 --balloon 16M:8M --balloon 62M:2M
verified after 32
expect_field after zero_checked 5

sim 0 during "${run[@]}" --regions 3 --vcpus 2 --balloon 8M:32M \
  --balloon-during --repeat 3
verified during 96
expect_field during zero_checked 48

sim 2 unaligned "${run[@]}" --balloon 1M:2M
grep -q "multiples of the page size" "$TMP/unaligned.err" ||
  fail "unaligned balloon range not explained: $(cat "$TMP/unaligned.err")"

stop_daemons
