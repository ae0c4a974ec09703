# The simulator must notice wrong bytes: ref-handler serves one image while
# the simulator expects another.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 a mkimage "$TMP/a" --size 16M --seed 21
sim 0 b mkimage "$TMP/b" --size 16M --seed 22
start_ref ref "$TMP/ref.sock" "$TMP/a"
run=(run --socket "$TMP/ref.sock" --image "$TMP/a" --timeout 60)

sim 0 same "${run[@]}"
verified same 4096

sim 1 other "${run[@]}" --expect "$TMP/b" --regions 2 --vcpus 2
m=$(field other mismatches)
# Only pages that are zero in both images may match.
[ "$m" -gt 3900 ] && [ "$m" -le 4096 ] || fail "found $m wrong pages of 4096"
grep -q "first at memory offset 0x" "$TMP/other.err" ||
  fail "first wrong page not named: $(cat "$TMP/other.err")"

stop_daemons
