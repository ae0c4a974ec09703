# Fault-around (fault_around = N: a fault installs up to N more pages that
# follow it, neither present nor removed, within its region) at 4 KiB pages:
# every byte verified for N = 0, 1, 16, 64 and 512, in sequential and random
# order, with 1 and 2 vCPUs and 1 or 3 regions; balloon discards after and
# during the pass read zeros (a run never covers a removed page); a run
# never crosses the end of a region (the simulator leaves unmapped gaps
# between regions: a copy over one fails and the vCPU would hang).
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/../core/common.sh"
. "$(dirname "$0")/common.sh"

PAGES=8192 # 32 MiB of 4 KiB pages
sim 0 img mkimage "$TMP/mem" --size 32M --seed 31
listeners=()
for n in 0 1 16 64 512; do
  listeners+=("fa$n $TMP/mem fault_around = $n;")
done
write_conf "$TMP/uffdkit.conf" "${listeners[@]}"
start_conf fa "$TMP/uffdkit.conf"

run() {
  echo run --socket "$TMP/$1.sock" --image "$TMP/mem" --timeout 20
}

for n in 0 1 16 64 512; do
  # shellcheck disable=SC2046
  {
    # Sequential, one vCPU, three regions: every run that starts within N
    # pages of a region's end must stop there.
    vm 0 "seq-$n" $(run "fa$n") --regions 3 --order seq
    verified "seq-$n" $PAGES
    expect_field "seq-$n" regions 3
    ended fa "seq-$n"
    echo "seq-$n: the daemon served $FAULTS faults"
    # How many faults the daemon served shows fault-around at work (a page
    # of a zero extent is installed alone, so some faults serve 1 page).
    case $n in
    0) [ "$FAULTS" -ge $PAGES ] ||
      fail "fault_around = 0: $FAULTS faults for $PAGES pages" ;;
    1) expect_le "fault_around = 1: faults" "$FAULTS" $((PAGES * 6 / 10)) ;;
    16) expect_le "fault_around = 16: faults" "$FAULTS" $((PAGES / 8)) ;;
    64) expect_le "fault_around = 64: faults" "$FAULTS" $((PAGES / 32)) ;;
    512) expect_le "fault_around = 512: faults" "$FAULTS" $((PAGES / 128)) ;;
    esac
    vm 0 "rand-$n" $(run "fa$n") --order random --vcpus 2 --seed "$n"
    verified "rand-$n" $PAGES
    expect_field "rand-$n" vcpus 2
    vm 0 "rand1-$n" $(run "fa$n") --order random --regions 3 --seed $((n + 1))
    verified "rand1-$n" $PAGES
    vm 0 "seq2-$n" $(run "fa$n") --order seq --vcpus 2 --regions 2
    verified "seq2-$n" $PAGES
  }
done

# Balloon discards with fault-around on.  After the pass: the discarded
# pages fault again and must read zeros (the first range crosses the end of
# region 0).  During it, in sequential order, the vCPUs reach pages just
# before each range after it was discarded: their runs must stop at the
# range, and the range's pages read zeros.
for n in 1 16 512; do
  # shellcheck disable=SC2046
  {
    vm 0 "after-$n" $(run "fa$n") --regions 3 --balloon 9M:4M \
      --balloon 0:4K --balloon 28M:4M
    verified "after-$n" $PAGES
    expect_field "after-$n" zero_checked $(((4 << 8) + 1 + (4 << 8)))
    vm 0 "during-$n" $(run "fa$n") --regions 3 --vcpus 2 --order seq \
      --balloon 12M:2M --balloon 16M:1M --balloon 20M:4K --balloon 24M:6M \
      --balloon-during
    verified "during-$n" $PAGES
    expect_field "during-$n" zero_checked $(((2 << 8) + (1 << 8) + 1 + (6 << 8)))
    vm 0 "during-rand-$n" $(run "fa$n") --vcpus 2 --order random \
      --seed $((n + 7)) --balloon 4M:8M --balloon 20M:8M --balloon-during
    verified "during-rand-$n" $PAGES
    expect_field "during-rand-$n" zero_checked $((16 << 8))
    # Pages never touched before the discard: every one must read zeros.
    vm 0 "partial-$n" $(run "fa$n") --regions 2 --touch-percent 30 \
      --order random --balloon 8M:16M
    expect_field "partial-$n" mismatches 0
    expect_field "partial-$n" zero_checked $((16 << 8))
  }
done

stop_daemons
