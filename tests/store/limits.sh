#!/bin/bash
# The size of a store's metadata, the same bound on both sides: the
# importer refuses an image whose manifest would be larger than a reader
# loads (UFK_STORE_META_MAX, 512 MiB), at once, naming the chunk size that
# would do and leaving no store behind; an image whose manifest is above
# the 64 MiB the reader took before (8 GiB in 4 KiB chunks: 72 MiB) is
# imported, served and restored, every touched byte checked.
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
echo "PASS: store metadata bounds"
