# uffdkit-capture workload: two generations of a real Python interpreter;
# the images are neither all zeros nor incompressible, and line up.  One
# image of node and of nginx, and the workloads are stopped at the end.
source "$(dirname "$0")/../lib/functions.sh"
CAPTURE=$BUILD/bin/uffdkit-capture
need_built "$CAPTURE"
command -v python3 >/dev/null || { echo "SKIPPED: no python3"; exit 77; }
if command -v zstd >/dev/null; then
  compress() { zstd -q -3 -c "$1" | wc -c; }
elif command -v gzip >/dev/null; then
  compress() { gzip -c "$1" | wc -c; }
else
  echo "SKIPPED: neither zstd nor gzip"
  exit 77
fi

"$CAPTURE" workload python -o "$TMP/py" --generations 2 --interval 1 \
  >"$TMP/py.out" || fail "python workload failed: $(cat "$TMP/py.out")"
cat "$TMP/py.out"
for g in 0 1; do
  img=$TMP/py.$g
  size=$(stat -c %s "$img")
  [ "$size" -ge $((4 << 20)) ] || fail "$img is only $size bytes"
  zero=$(grep -o "^$img: .*zero [0-9.]*%" "$TMP/py.out" | grep -o '[0-9.]*%$')
  [ -n "$zero" ] && [ "${zero%%.*}" -lt 95 ] || fail "$img: zero share $zero"
  packed=$(compress "$img")
  [ $((packed * 10)) -lt $((size * 8)) ] ||
    fail "$img does not compress below 0.8: $packed of $size bytes"
  [ $((packed * 100)) -gt "$size" ] ||
    fail "$img compresses to $packed of $size bytes: nearly all zeros"
  echo "$img: $size bytes, zero $zero, compressed $packed"
done
grep -q "^$TMP/py.1: .*changed vs previous [1-9]" "$TMP/py.out" ||
  fail "generation 1 shows no changed pages"
head -n "$(wc -l <"$TMP/py.0.layout")" "$TMP/py.1.layout" |
  cmp -s - "$TMP/py.0.layout" || fail "generation 1 moved ranges of generation 0"

# node and nginx: one image each, with data in it, and nothing left running
# from the temporary prefix.
for w in node nginx; do
  command -v "$w" >/dev/null || { echo "no $w: not checked"; continue; }
  "$CAPTURE" workload "$w" -o "$TMP/$w" >"$TMP/$w.out" ||
    fail "$w workload failed: $(cat "$TMP/$w.out")"
  cat "$TMP/$w.out"
  size=$(stat -c %s "$TMP/$w")
  packed=$(compress "$TMP/$w")
  [ "$size" -ge $((512 << 10)) ] && [ $((packed * 100)) -gt "$size" ] &&
    [ $((packed * 10)) -lt $((size * 8)) ] ||
    fail "$w image: $packed compressed of $size bytes"
  pid=$(awk '!/^#/ {print $1; exit}' "$TMP/$w.layout")
  ! kill -0 "$pid" 2>/dev/null || fail "the $w workload ($pid) still runs"
done
echo "capture workload: ok"
