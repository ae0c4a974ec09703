#!/bin/bash
# The size of a store's metadata, the same bound on both sides: the
# importer refuses an image whose manifest would be larger than a reader
# loads (UFK_STORE_META_MAX, 512 MiB), at once, naming the chunk size that
# would do and leaving no store behind; an image whose manifest is above
# the 64 MiB the reader took before (8 GiB in 4 KiB chunks: 72 MiB) is
# imported, served and restored, every touched byte checked; and with the
# bound made small, packs cut where their index would pass it.
source "$(dirname "$0")/../lib/functions.sh"
need_built "$UFFDKIT" "$SIM" "$SNAP"

# 64 GiB in 4 KiB chunks: a 576 MiB manifest.
truncate -s 64G "$TMP/huge"
"$SNAP" store import "$TMP/st-huge" g0 "$TMP/huge" --chunk-size 4K \
  2>"$TMP/huge.err" && fail "a 64 GiB image was imported in 4 KiB chunks"
grep -q "g0: 68719476736 bytes in chunks of 4096 are 16777216 chunks, a manifest larger than the 536870912 bytes a reader loads; import it into a new store with --chunk-size 8192 or more" \
  "$TMP/huge.err" || { cat "$TMP/huge.err" >&2; fail "unexpected message"; }
[ ! -e "$TMP/st-huge" ] || fail "the refused import left a store behind"
# An existing store of 4 KiB chunks refuses it too (its chunk size is its
# own), and keeps only what it had.
"$SIM" mkimage "$TMP/small" --size 1M >/dev/null
"$SNAP" store import "$TMP/st4" small "$TMP/small" --chunk-size 4K >/dev/null
"$SNAP" store import "$TMP/st4" g0 "$TMP/huge" 2>"$TMP/huge4.err" &&
  fail "a 64 GiB image was imported into a store of 4 KiB chunks"
grep -q "chunks of 4096 are 16777216 chunks" "$TMP/huge4.err" ||
  fail "unexpected message: $(cat "$TMP/huge4.err")"
[ "$(ls "$TMP/st4/snapshots")" = small ] || fail "a snapshot was written"

# 8 GiB in 4 KiB chunks, real bytes in the first and last 4 MiB.
"$SIM" mkimage "$TMP/ends" --size 4M --seed 5 >/dev/null
truncate -s 8G "$TMP/big"
dd if="$TMP/ends" of="$TMP/big" conv=notrunc status=none
dd if="$TMP/ends" of="$TMP/big" conv=notrunc status=none bs=1M seek=8188
"$SNAP" store import "$TMP/st4" big "$TMP/big" >/dev/null ||
  fail "an 8 GiB image was not imported in 4 KiB chunks"
size=$(stat -c %s "$TMP/st4/snapshots/big")
[ "$size" -gt $((64 << 20)) ] || fail "the manifest has $size bytes"
start_daemon big "$TMP/big.sock" --socket "$TMP/big.sock" \
  --control-socket "$TMP/big.ctl" store path="$TMP/st4" snapshot=big
# 1% of the pages at random, every touched byte checked.
sim 0 big-random run --socket "$TMP/big.sock" --image "$TMP/big" \
  --order random --touch-percent 1 --seed 3
stop_daemons
grep -q "listener cli: store, 8589934592 bytes" "$TMP/big.log" ||
  fail "the daemon did not serve the store: $(tail -3 "$TMP/big.log")"

# The same bounds at 64 KiB (test-snap-small-meta, the tool built with
# UFK_STORE_META_MAX = 65536), where a few thousand chunks reach them: an
# index holds at most (65536 - 128) / 56 = 1,168 entries, so 1,536
# distinct chunks go into two packs, cut at the index bound (the pack size,
# 256M, is far off); the snapshot exports byte-exact and the daemon serves
# it.  A manifest of 8 MiB in 4 KiB chunks (2,048 chunks, 73 KiB) is
# refused, naming 8 KiB chunks.
SMALL=$BUILD/bin/test-snap-small-meta
need_built "$SMALL"
"$SIM" mkimage "$TMP/many" --size 6M --seed 9 --zero-percent 0 >/dev/null
"$SMALL" store import "$TMP/st-cut" g0 "$TMP/many" --chunk-size 4K >/dev/null ||
  fail "the import with a 64 KiB bound failed"
packs=$("$SMALL" store inspect "$TMP/st-cut" --json |
  python3 -c "import json,sys; print(json.load(sys.stdin)['packs'])")
[ "$packs" = 2 ] || fail "1,536 chunks went into $packs packs, not 2"
for idx in "$TMP"/st-cut/packs/*.idx; do
  [ "$(stat -c %s "$idx")" -le 65536 ] || fail "$idx is over the bound"
done
"$SMALL" store export "$TMP/st-cut" g0 "$TMP/many.out"
cmp "$TMP/many" "$TMP/many.out" || fail "the cut packs do not export right"
start_daemon cut "$TMP/cut.sock" --socket "$TMP/cut.sock" \
  --control-socket "$TMP/cut.ctl" store path="$TMP/st-cut" snapshot=g0
sim 0 cut run --socket "$TMP/cut.sock" --image "$TMP/many" --order random
stop_daemons
"$SIM" mkimage "$TMP/more" --size 8M --seed 9 >/dev/null
"$SMALL" store import "$TMP/st-more" g0 "$TMP/more" --chunk-size 4K \
  2>"$TMP/more.err" && fail "a manifest over the 64 KiB bound was written"
grep -q "2048 chunks, a manifest larger than the 65536 bytes a reader loads; import it into a new store with --chunk-size 8192 or more" \
  "$TMP/more.err" || fail "unexpected message: $(cat "$TMP/more.err")"
# 1,817 chunks fit a 64 KiB manifest with no pack list, not with the two
# packs they fill: refused when the manifest is made, before any pack is
# published, so the store is left as it was.
"$SIM" mkimage "$TMP/edge" --size $((1817 * 4096)) --seed 4 --zero-percent 0 \
  >/dev/null
"$SMALL" store import "$TMP/st-cut" edge "$TMP/edge" 2>"$TMP/edge.err" &&
  fail "a manifest over the bound with its pack list was written"
grep -q "edge: a manifest of 65588 bytes (2 packs), more than the 65536 a reader loads" \
  "$TMP/edge.err" || fail "unexpected message: $(cat "$TMP/edge.err")"
[ "$(ls "$TMP/st-cut/packs" | wc -l)" = 4 ] ||
  fail "the refused import left packs: $(ls "$TMP/st-cut/packs")"
[ -z "$(ls -A "$TMP/st-cut/tmp")" ] || fail "the refused import left tmp/"
[ "$(ls "$TMP/st-cut/snapshots")" = g0 ] || fail "a snapshot was written"
echo "PASS: store metadata bounds"
