# Working-set record and replay (prefetch { working_set; mode; record_for }):
# mode = record writes the pages in first-touch order, replacing the file
# atomically, with fault-around kept off so every touched page is listed;
# mode = replay installs them ahead of the guest (prefetched_pages > 0 in
# the log and in uffdkit ctl stats) while every byte stays right; auto
# records when the file is missing and replays when it is present;
# record_for stops the recording early, and fault-around comes back then.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/../core/common.sh"
. "$(dirname "$0")/common.sh"

PAGES=8192 # 32 MiB of 4 KiB pages
sim 0 img mkimage "$TMP/mem" --size 32M --seed 41
WS=$TMP/ws-rec
write_conf "$TMP/uffdkit.conf" \
  "rec $TMP/mem fault_around = 64;
     prefetch = { working_set = \"$WS\"; mode = \"record\"; };" \
  "rep $TMP/mem fault_around = 64;
     prefetch = { working_set = \"$WS\"; mode = \"replay\"; };" \
  "auto $TMP/mem prefetch = { working_set = \"$TMP/ws-auto\"; };" \
  "rfor $TMP/mem fault_around = 16;
     prefetch = { working_set = \"$TMP/ws-for\"; mode = \"record\";
                  record_for = \"200ms\"; };"
start_conf pf "$TMP/uffdkit.conf"
run() {
  echo run --socket "$TMP/$1.sock" --image "$TMP/mem" --timeout 30
}

# ---- record: every touched page, in first-touch order ----
[ ! -e "$WS" ] || fail "$WS exists before any recording"
# shellcheck disable=SC2046
vm 0 rec-seq $(run rec) --order seq
verified rec-seq $PAGES
ended pf rec-seq
[ "$(session_lines pf rec-seq 'recording its working set to ')" -eq 1 ] ||
  fail "rec-seq: no 'recording its working set' line"
wait_log pf "session $SID: recorded a working set of $PAGES pages to $WS\$"
[ -s "$WS" ] || fail "the recording left no file, or an empty one"
[ "$FAULTS" -ge $PAGES ] ||
  fail "rec-seq: $FAULTS faults for $PAGES pages: fault-around ran while recording"
wset_info "$WS"
[ "${WSI[n]}" -eq $PAGES ] || fail "$WS does not list $PAGES pages"
[ "${WSI[distinct]}" -eq $PAGES ] || fail "$WS lists a page twice"
[ "${WSI[ascending]}" = 1 ] && [ "${WSI[first]}" = 0 ] &&
  [ "${WSI[last]}" = $((PAGES - 1)) ] ||
  fail "a sequential pass was not recorded as pages 0..$((PAGES - 1)) in order"
[ "${WSI[page_size]}" = 4096 ] && [ "${WSI[source_size]}" = $((32 << 20)) ] ||
  fail "$WS: wrong page size or source size"
[[ "${WSI[identity]}" == file:* ]] ||
  fail "$WS: the identity does not name the source file"

# ---- a second recording replaces the file atomically ----
# A reader that opened the first file keeps reading it whole: the new one
# is written aside and renamed over it, never rewritten in place.
cp "$WS" "$TMP/ws-first"
ino=$(stat -c %i "$WS")
exec 3<"$WS"
# shellcheck disable=SC2046
vm 0 rec-rand $(run rec) --order random --vcpus 2 --seed 5 --touch-percent 50
expect_field rec-rand mismatches 0
touched=$(field rec-rand pages)
ended pf rec-rand
wait_log pf "session $SID: recorded a working set of $touched pages to $WS\$"
[ "$(stat -c %i "$WS")" != "$ino" ] ||
  fail "the second recording rewrote $WS in place"
cmp -s /proc/self/fd/3 "$TMP/ws-first" ||
  fail "the first recording changed under a reader while the second was written"
exec 3<&-
! cmp -s "$WS" "$TMP/ws-first" || fail "the second recording left $WS as it was"
wset_info "$WS"
[ "${WSI[n]}" -eq "$touched" ] && [ "${WSI[distinct]}" -eq "$touched" ] ||
  fail "$WS does not list the $touched pages touched, each once"
[ "${WSI[ascending]}" = 0 ] ||
  fail "a random pass was recorded in ascending order"
leftover=$(find "$TMP" -name 'ws-rec?*')
[ -z "$leftover" ] || fail "temporary files left behind: $leftover"
[ "$(counter rec prefetched_pages)" -eq 0 ] ||
  fail "the recording listener installed pages ahead of the guest"

# ---- replay: pages installed ahead of the guest, every byte right ----
cp "$WS" "$TMP/ws-second"
sum=0
i=0
for args in "--order random --vcpus 2 --seed 6" "--order seq --regions 3" \
  "--order random --regions 2 --vcpus 2 --seed 8 --style 1.7"; do
  i=$((i + 1))
  # shellcheck disable=SC2046,SC2086
  vm 0 "rep-$i" $(run rep) $args --delay-us 20
  verified "rep-$i" $PAGES
  ended pf "rep-$i"
  n=$(prefetched pf "rep-$i")
  [ -n "$n" ] || fail "rep-$i: no 'working set replayed' line"
  [ "$n" -gt 0 ] || fail "rep-$i: no page was installed ahead of the guest"
  wait_log pf "session $SID: working set replayed \($touched pages listed, "
  # Runs bridge short gaps between listed pages: more pages than listed
  # may go in ahead, never more than the guest has.
  expect_le "rep-$i: pages installed ahead" "$n" $PAGES
  [ "$(session_lines pf "rep-$i" 'recording')" -eq 0 ] ||
    fail "rep-$i: mode = replay recorded"
  echo "rep-$i: $n pages installed ahead of the guest"
  sum=$((sum + n))
done
got=$(counter rep prefetched_pages)
[ "$got" -eq "$sum" ] ||
  fail "uffdkit ctl stats counts $got prefetched pages on rep, the log $sum"
cmp -s "$WS" "$TMP/ws-second" || fail "replaying changed $WS"

# ---- auto: records when missing, replays when present ----
# shellcheck disable=SC2046
vm 0 auto-1 $(run auto) --order random --seed 9 --vcpus 2
verified auto-1 $PAGES
ended pf auto-1
[ "$(session_lines pf auto-1 'recording its working set')" -eq 1 ] ||
  fail "auto-1: mode = auto without a file did not record"
[ "$(session_lines pf auto-1 'not replaying')" -eq 0 ] ||
  fail "auto-1: a missing file in mode = auto is worth no warning"
wait_log pf "session $SID: recorded a working set of $PAGES pages to $TMP/ws-auto\$"
cp "$TMP/ws-auto" "$TMP/ws-auto-1"
# shellcheck disable=SC2046
vm 0 auto-2 $(run auto) --order random --seed 10 --delay-us 20
verified auto-2 $PAGES
n=$(prefetched pf auto-2)
[ -n "$n" ] && [ "$n" -gt 0 ] ||
  fail "auto-2: mode = auto with a file installed nothing ahead of the guest"
[ "$(session_lines pf auto-2 'recording')" -eq 0 ] ||
  fail "auto-2: mode = auto recorded although it replayed"
cmp -s "$TMP/ws-auto" "$TMP/ws-auto-1" || fail "auto-2 changed ws-auto"

# ---- record_for: the recording stops (and is written) early ----
# One vCPU, 4096 pages at >= 100 us each: the pass lasts far longer than
# 200 ms, and the VM is held another second.
# shellcheck disable=SC2046
bg_vm rfor $(run rfor) --mem-size 16M --order seq --delay-us 100 --hold 1
wait_log pf "session [0-9]+: recorded a working set of [0-9]+ pages to $TMP/ws-for\$" 10
kill -0 "${VM_PID[rfor]}" 2>/dev/null ||
  fail "record_for = 200ms: the working set was written only when the VM ended"
finish_vm 0 rfor
verified rfor 4096
ended pf rfor
wset_info "$TMP/ws-for"
n=${WSI[n]}
wait_log pf "session $SID: recorded a working set of $n pages to $TMP/ws-for\$"
[ "$n" -gt 0 ] && [ "$n" -lt 4096 ] ||
  fail "record_for = 200ms recorded $n of 4096 pages"
[ "$(count_log pf "session $SID: recorded a working set")" -eq 1 ] ||
  fail "record_for: the working set was written twice"
# After the recording, fault-around (16) serves the rest of the pass.
expect_lt "rfor: faults after the recording" "$FAULTS" $((n + (4096 - n) / 2))
echo "rfor: $n pages recorded, $FAULTS faults"

stop_daemons
