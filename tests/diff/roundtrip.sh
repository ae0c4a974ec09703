#!/bin/bash
# uffdkit-snap round trip: create -> diff -> diff (full and sparse input) ->
# flatten gives back each generation's image, at 4 KiB and 2 MiB blocks,
# with pages and whole huge pages changed to zeros.  Then failures: each
# leaves the store as it was, and verify names what is wrong.
source "$(dirname "$0")/../lib/functions.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

command -v python3 >/dev/null || skip "python3 is needed"
[ -x "$SNAP" ] || fail "$SNAP not built"

SIZE=$((16 << 20))
python3 "$HERE/images.py" "$TMP" $SIZE

# A Firecracker-style sparse diff snapshot of m2: data only where m1 -> m2
# wrote, holes elsewhere (written zeros stay data).
truncate -s $SIZE "$TMP/m2.sparse"
while read -r first count; do
  dd if="$TMP/m2" of="$TMP/m2.sparse" bs=4096 skip="$first" seek="$first" \
    count="$count" conv=notrunc status=none
done <"$TMP/m2.runs"
[ $(($(stat -c '%b * %B' "$TMP/m2.sparse"))) -lt $((SIZE / 2)) ] ||
  skip "the file system of $TMP keeps no holes: no sparse input"

# expect_flat STORE BUILD IMAGE
expect_flat() {
  "$SNAP" flatten "$1" "$2" "$TMP/flat" || fail "flatten $2"
  cmp "$TMP/flat" "$3" || fail "flatten of $2 differs from $(basename "$3")"
  "$SNAP" verify "$1" "$2" >/dev/null || fail "verify $2"
}

# json_field STORE BUILD KEY: one top-level field of inspect --json.
json_field() {
  "$SNAP" inspect "$1" "$2" --json |
    python3 -c "import json,sys; print(json.load(sys.stdin)['$3'])"
}

roundtrip() {
  local bs=$1 bytes=$2 store=$TMP/store-$1
  local g0 g1 g2 g2s
  g0=$("$SNAP" create "$TMP/m0" "$store" --block-size "$bs")
  g1=$("$SNAP" diff "$store" "$g0" "$TMP/m1")
  g2=$("$SNAP" diff "$store" "$g1" "$TMP/m2")
  g2s=$("$SNAP" diff "$store" "$g1" "$TMP/m2.sparse" --sparse)
  expect_flat "$store" "$g0" "$TMP/m0"
  expect_flat "$store" "$g1" "$TMP/m1"
  expect_flat "$store" "$g2" "$TMP/m2"
  expect_flat "$store" "$g2s" "$TMP/m2"

  [ "$(json_field "$store" "$g2" generation)" = 2 ] || fail "generation"
  [ "$(json_field "$store" "$g2" base_build_id)" = "$g0" ] ||
    fail "base build id not inherited"
  [ "$(json_field "$store" "$g2" block_size)" = "$bytes" ] || fail "block size"
  "$SNAP" inspect "$store" "$g2" | grep -q "^builds referenced: 3$" ||
    fail "generation 2 should reference 3 builds"

  # The diff holds only what changed: m1 rewrote far less than m0 holds.
  local s0 s1
  s0=$(stat -c %s "$store/$g0/memfile")
  s1=$(stat -c %s "$store/$g1/memfile")
  [ "$s1" -lt "$s0" ] || fail "diff of generation 1 ($s1) not smaller than $s0"
  echo "block size $bs: ok ($(ls "$store" | wc -l) builds)"
}

roundtrip 4096 4096
roundtrip 2M 2097152

STORE=$TMP/store-4096
G0=$("$SNAP" create "$TMP/m0" "$STORE")
BEFORE=$(ls -A "$STORE" | sort)

# Failures leave nothing behind.
truncate -s $((SIZE - 4096)) "$TMP/short"
rc=0; "$SNAP" diff "$STORE" "$G0" "$TMP/short" 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] || fail "diff with a short image: exit $rc"
grep -q "short: $((SIZE - 4096)) bytes, but the parent" "$TMP/err" ||
  fail "unexpected message: $(cat "$TMP/err")"
[ "$(ls -A "$STORE" | sort)" = "$BEFORE" ] || fail "failed diff left files"

truncate -s $((SIZE + 4096)) "$TMP/odd"
rc=0; "$SNAP" create "$TMP/odd" "$TMP/newstore" --block-size 2M 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] || fail "create with an odd size: exit $rc"
grep -q "is not a multiple of the block size 2097152" "$TMP/err" ||
  fail "unexpected message: $(cat "$TMP/err")"
[ ! -e "$TMP/newstore" ] || fail "failed create left the store folder"

rc=0; "$SNAP" create "$TMP/m0" "$STORE" --block-size 8K 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "bad block size: exit $rc, want 2"
rc=0; "$SNAP" frobnicate 2>/dev/null || rc=$?
[ $rc -eq 2 ] || fail "unknown command: exit $rc, want 2"
"$SNAP" --help | grep -q "diff STORE PARENT_BUILD NEWMEM \[--sparse\]" ||
  fail "--help lacks the diff command"

# verify names the broken file.
G1=$("$SNAP" diff "$STORE" "$G0" "$TMP/m1")
truncate -s 4096 "$STORE/$G0/memfile"
rc=0; "$SNAP" verify "$STORE" "$G1" 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] || fail "verify of a truncated diff: exit $rc"
grep -q "$STORE/$G0/memfile: 4096 bytes, too short for build $G0: mapping" \
  "$TMP/err" || fail "unexpected message: $(cat "$TMP/err")"
rc=0; "$SNAP" flatten "$STORE" "$G1" "$TMP/never" 2>/dev/null || rc=$?
[ $rc -eq 1 ] || fail "flatten of a broken store: exit $rc"
ls "$TMP" | grep -q '^never' && fail "failed flatten left a file"

head -c 100 "$STORE/$G1/memfile.header" >"$TMP/h" &&
  cp "$TMP/h" "$STORE/$G1/memfile.header"
rc=0; "$SNAP" verify "$STORE" "$G1" 2>"$TMP/err" || rc=$?
[ $rc -eq 1 ] || fail "verify of a cut header: exit $rc"
grep -q "memfile.header: 100 bytes: mapping 0 (byte 64) is partial, 36 of 40" \
  "$TMP/err" || fail "unexpected message: $(cat "$TMP/err")"
echo "failures: ok"
