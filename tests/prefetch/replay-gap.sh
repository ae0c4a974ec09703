# Working-set replay installs the pages listed and, with prefetch { max_gap
# = N; }, at most N unlisted pages between two listed ones; max_gap = 0 (the
# default) installs exactly what the guest touched when recorded.  Counted
# from uffdkit ctl stats (pages copied + zero pages of the listener, one
# session each) against the working-set file, with every byte checked.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/../core/common.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 32M --seed 43
WS=$TMP/ws
write_conf "$TMP/uffdkit.conf" \
  "rec $TMP/mem prefetch = { working_set = \"$WS\"; mode = \"record\"; };" \
  "g0 $TMP/mem prefetch = { working_set = \"$WS\"; mode = \"replay\"; };" \
  "g3 $TMP/mem prefetch = { working_set = \"$WS\"; mode = \"replay\";
                            max_gap = 3; };"
start_conf pf "$TMP/uffdkit.conf"
# The same pages every time: the replaying VMs touch what was recorded.
TOUCH=(--order random --touch-percent 30 --seed 12 --timeout 60)

vm 0 rec run --socket "$TMP/rec.sock" --image "$TMP/mem" "${TOUCH[@]}"
expect_field rec mismatches 0
touched=$(field rec pages)
ended pf rec
wait_log pf "session $SID: recorded a working set of $touched pages to $WS\$"
wset_info "$WS"
[ "${WSI[distinct]}" -eq "$touched" ] || fail "$WS does not list $touched pages"

installed_by() {
  echo $(($(counter "$1" pages_copied) + $(counter "$1" zero_pages)))
}
for g in 0 3; do
  vm 0 "g$g" run --socket "$TMP/g$g.sock" --image "$TMP/mem" "${TOUCH[@]}" \
    --delay-us 20
  verified "g$g" "$touched"
  n=$(prefetched pf "g$g")
  [ -n "$n" ] && [ "$n" -gt 0 ] || fail "g$g: nothing was replayed"
  got=$(installed_by "g$g")
  bound=$("${WSET[@]}" bridged "$WS" "$g")
  echo "max_gap = $g: $touched pages touched, $got installed" \
    "($n ahead of the guest), at most $bound allowed"
  expect_le "max_gap = $g: pages installed" "$got" "$bound"
  expect_le "max_gap = $g: pages touched" "$touched" "$got"
done
[ "$("${WSET[@]}" bridged "$WS" 0)" -eq "$touched" ] ||
  fail "the bound for max_gap = 0 is not the pages touched"
# Bridging happened at 3: a 30% random set has many gaps of 1 to 3 pages.
expect_lt "max_gap = 3 installs more than 0" "$(installed_by g0)" \
  "$(installed_by g3)"

stop_daemons
