# Working sets that must not be replayed: recorded against another image
# (another file, or the same file rewritten or touched: the identity names
# device, inode, size and mtime), with another page size or source size,
# truncated or corrupted, or missing.  Each is refused with a warning that
# names the file and the reason, nothing is installed ahead of the guest,
# and the restore still verifies every byte, served on demand.  In mode =
# auto a refused file is recorded anew, then replayed.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/../core/common.sh"
. "$(dirname "$0")/common.sh"

PAGES=8192 # 32 MiB of 4 KiB pages
sim 0 img-a mkimage "$TMP/mem-a" --size 32M --seed 51
sim 0 img-b mkimage "$TMP/mem-b" --size 32M --seed 52
WS=$TMP/ws
TRY=$TMP/ws-try
write_conf "$TMP/uffdkit.conf" \
  "rec $TMP/mem-a prefetch = { working_set = \"$WS\"; mode = \"record\"; };" \
  "rep $TMP/mem-a prefetch = { working_set = \"$TRY\"; mode = \"replay\"; };" \
  "other $TMP/mem-b prefetch = { working_set = \"$WS\"; mode = \"replay\"; };" \
  "auto $TMP/mem-a prefetch = { working_set = \"$TMP/ws-auto\"; };"
start_conf pf "$TMP/uffdkit.conf"
run() {
  echo run --socket "$TMP/$1.sock" --image "$TMP/$2" --timeout 30 \
    --order random --vcpus 2
}

# replays LOG NAME: VM NAME's session replayed its working set, installing
# at least one page ahead of the guest.
replays() {
  local n
  n=$(prefetched "$1" "$2")
  [ -n "$n" ] && [ "$n" -gt 0 ] ||
    fail "$2: the working set was not replayed (installed: '${n:-none}')"
  echo "$2: $n pages installed ahead of the guest"
}

# refused NAME PATH REASON_REGEX: VM NAME's session warned that it is not
# replaying PATH for REASON, and replayed nothing.
refused() {
  ended pf "$1"
  wait_log pf "session $SID: not replaying working set $2: $3"
  [ "$(count_log pf "session $SID: working set replayed")" -eq 0 ] ||
    fail "$1: replayed a working set that should have been refused"
  grep -E "session $SID: not replaying" "$TMP/pf.log" | sed 's/.*info: //'
}

# try NAME REASON_REGEX: restores through rep (which replays $TRY) and
# expects $TRY refused for REASON.
try() {
  # shellcheck disable=SC2046
  vm 0 "$1" $(run rep mem-a) --seed "${#1}"
  verified "$1" $PAGES
  refused "$1" "$TRY" "$2"
}

# ---- a missing file (mode = replay) ----
try missing 'No such file or directory$'

# ---- the reference recording, and a replay of it (the control case) ----
# shellcheck disable=SC2046
vm 0 rec $(run rec mem-a) --seed 1
verified rec $PAGES
ended pf rec
wait_log pf "session $SID: recorded a working set of $PAGES pages to $WS\$"
cp "$WS" "$TMP/ws-good"
cp "$WS" "$TRY"
# shellcheck disable=SC2046
vm 0 good $(run rep mem-a) --seed 2 --delay-us 20
verified good $PAGES
replays pf good

# ---- another image of the same size ----
# shellcheck disable=SC2046
vm 0 other $(run other mem-b) --seed 3
verified other $PAGES
refused other "$WS" \
  'it was recorded from another source \(recorded for file:[^,]*, serving file:'

# ---- truncated and corrupted files ----
wset_info "$WS"
idlen=${#WSI[identity]}
size=$(stat -c %s "$WS")
: >"$TRY"
try empty 'not a uffdkit working-set file'
head -c 20 "$WS" >"$TRY"
try cut-header 'not a uffdkit working-set file'
head -c $((40 + idlen - 5)) "$WS" >"$TRY"
try cut-identity "identity of $idlen bytes does not fit"
head -c $((40 + idlen + 100)) "$WS" >"$TRY"
try cut-body 'bad page size, count or source size'
head -c $((size - 1)) "$WS" >"$TRY"
try cut-last 'entry [0-9]+ is cut short'
cp "$WS" "$TRY"
printf '\0\0' >>"$TRY"
try trailing '2 bytes after the last entry'
"${WSET[@]}" forge "$WS" "$TRY" --magic UFKWSETX
try magic 'not a uffdkit working-set file'
"${WSET[@]}" forge "$WS" "$TRY" --pages 0,1,$PAGES,2
try beyond "entry 2: page $PAGES is beyond the source"
"${WSET[@]}" forge "$WS" "$TRY" --page-size 8192
try page-size-bad 'bad page size, count or source size'
"${WSET[@]}" forge "$WS" "$TRY" --page-size $((2 << 20)) --pages 0,1,2
try page-size-2m 'its page size differs'
"${WSET[@]}" forge "$WS" "$TRY" --source-size $((64 << 20)) --pages 0,1,2
try source-size 'its source size differs'
"${WSET[@]}" forge "$WS" "$TRY" --count $((PAGES + 1))
try count 'entry [0-9]+ is cut short|bad page size, count or source size'

# ---- the same file, touched: same bytes, another mtime ----
stop_daemons
touch -d "@$(($(stat -c %Y "$TMP/mem-a") + 1))" "$TMP/mem-a"
start_conf pf2 "$TMP/uffdkit.conf"
cp "$TMP/ws-good" "$TRY"
# shellcheck disable=SC2046
vm 0 touched $(run rep mem-a) --seed 4
verified touched $PAGES
ended pf2 touched
wait_log pf2 "session $SID: not replaying working set $TRY: it was recorded from another source"
[ "$(count_log pf2 "session $SID: working set replayed")" -eq 0 ] ||
  fail "touched: replayed a working set recorded before the image's mtime changed"

# ---- the same file rewritten with other bytes ----
# mode = auto refuses the old recording and records anew; the next session
# replays that one.
stop_daemons
sim 0 img-a2 mkimage "$TMP/mem-a" --size 32M --seed 53
start_conf pf3 "$TMP/uffdkit.conf"
cp "$TMP/ws-good" "$TMP/ws-auto"
# shellcheck disable=SC2046
vm 0 rewritten $(run auto mem-a) --seed 5
verified rewritten $PAGES
ended pf3 rewritten
wait_log pf3 "session $SID: not replaying working set $TMP/ws-auto: it was recorded from another source"
wait_log pf3 "session $SID: recording its working set to $TMP/ws-auto"
wait_log pf3 "session $SID: recorded a working set of $PAGES pages to $TMP/ws-auto\$"
[ "$(count_log pf3 "session $SID: working set replayed")" -eq 0 ] ||
  fail "rewritten: replayed a working set recorded from the old bytes"
cmp -s "$TMP/ws-auto" "$TMP/ws-good" && fail "auto did not record anew"
# shellcheck disable=SC2046
vm 0 rewritten-2 $(run auto mem-a) --seed 6 --delay-us 20
verified rewritten-2 $PAGES
replays pf3 rewritten-2

stop_daemons
