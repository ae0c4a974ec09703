# mkimage is deterministic, sparse, and its zero share follows --zero-percent.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 a mkimage "$TMP/a" --size 8M --seed 3
sim 0 b mkimage "$TMP/b" --size 8M --seed 3
sim 0 c mkimage "$TMP/c" --size 8M --seed 4
sim 0 d mkimage "$TMP/d" --size 8M --seed 3 --zero-percent 50
cmp -s "$TMP/a" "$TMP/b" || fail "same seed gave different images"
cmp -s "$TMP/a" "$TMP/c" && fail "different seeds gave the same image"
[ "$(stat -c %s "$TMP/a")" -eq $((8 << 20)) ] || fail "image size is not 8M"

# Count zero pages by content and compare with the allocated blocks.
zero_pages() {
  od -An -v -tx1 -w4096 "$1" | grep -c -x -E '( 00)+' || true
}
za=$(zero_pages "$TMP/a")
zd=$(zero_pages "$TMP/d")
echo "zero pages: $za of 2048 at 10%, $zd of 2048 at 50%"
[ "$za" -gt 100 ] && [ "$za" -lt 320 ] || fail "10% gave $za zero pages"
[ "$zd" -gt 900 ] && [ "$zd" -lt 1150 ] || fail "50% gave $zd zero pages"
alloc_kib=$(du -k "$TMP/d" | cut -f1)
[ "$alloc_kib" -le $(((2048 - zd) * 4 + 64)) ] ||
  fail "zero pages are not holes: $alloc_kib KiB allocated"

sim 2 bad-size mkimage "$TMP/e" --size 5000
sim 2 no-size mkimage "$TMP/e"
sim 0 suffix mkimage "$TMP/f" --size 1G --zero-percent 100
[ "$(du -k "$TMP/f" | cut -f1)" -lt 64 ] || fail "an all-zero image is not sparse"
