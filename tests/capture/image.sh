# uffdkit-capture image: a process holding a known pattern at a known
# address is captured; the pattern is in the image at the offset its layout
# gives, the zero share is plausible, and the next generation (after the
# process rewrote 8 pages) differs in about those pages, at the same offsets.
source "$(dirname "$0")/../lib/functions.sh"
CAPTURE=$BUILD/bin/uffdkit-capture
need_built "$CAPTURE" "$BUILD/bin/test-capture-pattern"

coproc HELPER { exec "$BUILD/bin/test-capture-pattern"; }
DAEMON_PIDS+=("$HELPER_PID")
read -r addr <&"${HELPER[0]}" || fail "the pattern process did not start"

"$CAPTURE" image --pid "$HELPER_PID" -o "$TMP/a" >"$TMP/a.out" ||
  fail "capture failed: $(cat "$TMP/a.out")"
cat "$TMP/a.out"
echo "change 8" >&"${HELPER[1]}"
read -r reply <&"${HELPER[0]}"
[ "$reply" = changed ] || fail "the pattern process did not change its pages"
"$CAPTURE" image --prev "$TMP/a" -o "$TMP/b" >"$TMP/b.out" ||
  fail "capture of the next generation failed: $(cat "$TMP/b.out")"
cat "$TMP/b.out"

# Checks the images against what the process holds (layout lines: pid start
# end offset name, hexadecimal).
python3 - "$TMP" "$addr" "$HELPER_PID" <<'PY' || fail "images are wrong"
import os, re, sys
tmp, addr, pid = sys.argv[1], int(sys.argv[2], 16), int(sys.argv[3])
P = 4096

def layout(name):
    lines = [l.split(None, 4) for l in open(f"{tmp}/{name}.layout")
             if not l.startswith("#")]
    return [(int(p), int(s, 16), int(e, 16), int(o, 16)) for p, s, e, o, *_
            in lines]

def offset(segs, a):
    for p, s, e, o in segs:
        if p == pid and s <= a < e:
            return o + a - s
    sys.exit(f"{a:#x} is in no segment of the layout")

def page(name, off):
    with open(f"{tmp}/{name}", "rb") as f:
        f.seek(off)
        return f.read(P)

def summary(name):
    line = open(f"{tmp}/{name}.out").read()
    zero = float(re.search(r"zero ([0-9.]+)%", line).group(1))
    m = re.search(r"changed vs previous (\d+)", line)
    return zero, int(m.group(1)) if m else None

a, b = layout("a"), layout("b")
assert b[:len(a)] == a, "the next generation moved ranges of the first"
for segs in a, b:
    spans = sorted((p, s, e) for p, s, e, o in segs)
    for x, y in zip(spans, spans[1:]):
        assert x[0] != y[0] or x[2] <= y[1], f"ranges overlap: {x} {y}"
    offs = [(o, o + e - s) for p, s, e, o in segs]
    assert all(x[1] == y[0] for x, y in zip(offs, offs[1:])), "gap in layout"
assert os.path.getsize(f"{tmp}/a") % P == 0, "image not a page multiple"
base = offset(a, addr)
for i in range(64):
    want = f"UFFDKIT-PATTERN page {i}".encode() if i < 32 else b""
    got = page("a", base + i * P)
    assert got == want.ljust(P, b"\0"), f"page {i} of generation 0: {got[:40]}"
    if 32 <= i < 40:
        want = f"UFFDKIT-CHANGED page {i}".encode()
    got = page("b", base + i * P)
    assert got == want.ljust(P, b"\0"), f"page {i} of generation 1: {got[:40]}"
zero, _ = summary("a")
assert 0 < zero < 100, f"zero share {zero}%"
_, changed = summary("b")
# The 8 rewritten pages, plus a few of the stack and stdio buffers.
assert 8 <= changed <= 24, f"{changed} pages changed, expected about 8"
print(f"pattern at offset {base:#x}, zero {zero}%, changed {changed}")
PY

# --size pads with zero pages; less than the mappings is refused.
"$CAPTURE" image --pid "$HELPER_PID" -o "$TMP/c" --size 64M >"$TMP/c.out" ||
  fail "capture with --size failed"
[ "$(stat -c %s "$TMP/c")" = $((64 << 20)) ] || fail "--size 64M not applied"
if "$CAPTURE" image --pid "$HELPER_PID" -o "$TMP/d" --size 4K 2>"$TMP/d.err"; then
  fail "--size smaller than the mappings was accepted"
fi
grep -q "more than --size" "$TMP/d.err" || fail "unclear error: $(cat "$TMP/d.err")"
[ ! -e "$TMP/d" ] && [ ! -e "$TMP/d.tmp" ] || fail "a refused image was left"
rc=0
"$CAPTURE" image --pid "$HELPER_PID" -o "$TMP/d" --size 5000 2>/dev/null || rc=$?
[ $rc = 2 ] || fail "--size 5000 (not a page multiple) not refused as usage"
echo "capture image: ok"
