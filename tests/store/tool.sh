#!/bin/bash
# uffdkit-snap store: three generations imported (raw, raw, and a diff file
# over the second) and an E2B generation, exported byte-exact; dedup across
# the generations; encryption with the right, a wrong and no key; a
# truncated pack and a flipped bit found by verify and refused by export;
# an interrupted import leaves nothing; gc deletes only unreferenced packs,
# waits for a running import, and cleans what a killed import left.
source "$(dirname "$0")/../lib/functions.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

command -v python3 >/dev/null || skip "python3 is needed"
need_built "$SNAP"
# Imports and gc run in the background below, one stopped on purpose: kill
# them on any exit, or a stopped one would keep the test's output open.
BG_PIDS=()
trap 'rc=$?; for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true
done; (exit $rc); cleanup' EXIT

SIZE=$((16 << 20))
python3 "$HERE/images.py" "$TMP" $SIZE
ST=$TMP/st

# json STORE [SNAPSHOT] KEY: a number of `store inspect --json`.
json() {
  local key=${*: -1}
  "$SNAP" store inspect "${@:1:$#-1}" --json |
    python3 -c "import json,sys; print(json.load(sys.stdin)['$key'])"
}

check_export() {
  "$SNAP" store export "$1" "$2" "$TMP/out" "${@:4}" || fail "export $2"
  cmp "$TMP/out" "$3" || fail "export of $2 is not $3"
  rm "$TMP/out"
}

# ---- three generations, deduplicated ----
"$SNAP" store import "$ST" g0 "$TMP/m0" --chunk-size 16K --codec zstd
n0=$(json "$ST" chunks_stored)
"$SNAP" store import "$ST" g1 "$TMP/m1" --codec lz4
n1=$(json "$ST" chunks_stored)
"$SNAP" store import "$ST" g2 "$TMP/m2.diff" --base g1 | tee "$TMP/g2.out"
n2=$(json "$ST" chunks_stored)
for g in 0 1 2; do check_export "$ST" g$g "$TMP/m$g"; done
"$SNAP" store verify "$ST" || fail "verify"
# Each generation adds only the chunks that changed: a tenth or so of the
# 16 KiB chunks, never as many as the first.
d1=$((n1 - n0)) d2=$((n2 - n1))
echo "chunks stored: $n0, then +$d1, then +$d2"
[ "$d1" -gt 0 ] && [ "$d1" -lt $((n0 / 2)) ] || fail "g1 added $d1 chunks"
[ "$d2" -gt 0 ] && [ "$d2" -lt $((n0 / 2)) ] || fail "g2 added $d2 chunks"
grep -q "kept from the base" "$TMP/g2.out" || fail "no chunk kept from g1"
# What every snapshot holds is stored once: the same image again adds none.
"$SNAP" store import "$ST" g0-again "$TMP/m0"
[ "$(json "$ST" chunks_stored)" = "$n2" ] || fail "m0 again added chunks"
# Encoders on several threads lay a pack out as one thread does, and an
# image's equal chunks are stored once even while their twin is still
# being encoded (three distinct 16 KiB chunks, repeated).
python3 -c "
import os, sys
parts = [os.urandom(8192) * 2 for _ in range(3)]
open(sys.argv[1], 'wb').write(b''.join(parts[i % 3] for i in range(256)))
" "$TMP/twins"
for t in 1 4; do
  "$SNAP" store import "$TMP/t$t" g0 "$TMP/m0" --threads $t >/dev/null
  "$SNAP" store import "$TMP/tw$t" twins "$TMP/twins" --threads $t \
    >"$TMP/twins$t.out"
  check_export "$TMP/tw$t" twins "$TMP/twins"
  # One pack each; its bytes after the header (which names the pack's
  # random id) as one encoder wrote them.
  for st in t tw; do
    tail -c +65 "$TMP/$st$t"/packs/*.pack >"$TMP/$st$t.bytes"
    cmp "$TMP/$st$t.bytes" "$TMP/${st}1.bytes" ||
      fail "$st: the pack written by $t encoders differs from one's"
  done
done
grep -q ": 3 new .* 253 already stored" "$TMP/twins4.out" ||
  fail "twins: $(cat "$TMP/twins4.out")"
"$SNAP" store import "$TMP/t9" g0 "$TMP/m0" --threads 0 2>"$TMP/err" &&
  fail "--threads 0"
grep -q "threads: 1..64" "$TMP/err" || fail "$(cat "$TMP/err")"
rm -rf "$TMP"/t1 "$TMP"/t4 "$TMP"/tw1 "$TMP"/tw4 "$TMP"/*.bytes "$TMP/twins"

# Chunks checked by page by default; a store checked by chunk (as made
# before page sums) round-trips too, and neither may be contradicted.
[ "$(json "$ST" page_sums)" = True ] || fail "a new store has no page sums"
"$SNAP" store import "$TMP/whole" g0 "$TMP/m0" --check-by chunk
[ "$(json "$TMP/whole" page_sums)" = False ] || fail "--check-by chunk"
"$SNAP" store inspect "$TMP/whole" | grep -q "checked by chunk" ||
  fail "inspect does not say how chunks are checked"
check_export "$TMP/whole" g0 "$TMP/m0"
"$SNAP" store verify "$TMP/whole" || fail "verify of a store checked by chunk"
"$SNAP" store import "$TMP/whole" g1 "$TMP/m1" --check-by page 2>"$TMP/err" &&
  fail "--check-by page into a store checked by chunk"
grep -q "checked by chunk, not by page" "$TMP/err" || fail "$(cat "$TMP/err")"
"$SNAP" store import "$TMP/whole" g1 "$TMP/m1" --check-by nope 2>"$TMP/err" &&
  fail "--check-by nope"
grep -q "'nope' is not page or chunk" "$TMP/err" || fail "$(cat "$TMP/err")"
rm -rf "$TMP/whole"

# Pages decoded each alone by default; a store decoded by chunk (as made
# before page blocks) round-trips too, neither may be contradicted, and
# decoding by page needs checking by page.
[ "$(json "$ST" page_blocks)" = True ] || fail "a new store has no page blocks"
"$SNAP" store import "$TMP/bychunk" g0 "$TMP/m0" --decode-by chunk
[ "$(json "$TMP/bychunk" page_blocks)" = False ] || fail "--decode-by chunk"
[ "$(json "$TMP/bychunk" page_sums)" = True ] || fail "--decode-by chunk sums"
"$SNAP" store inspect "$TMP/bychunk" | grep -q "decoded by chunk" ||
  fail "inspect does not say how chunks are decoded"
check_export "$TMP/bychunk" g0 "$TMP/m0"
"$SNAP" store verify "$TMP/bychunk" || fail "verify of a store decoded by chunk"
"$SNAP" store import "$TMP/bychunk" g1 "$TMP/m1" --decode-by page \
  2>"$TMP/err" && fail "--decode-by page into a store decoded by chunk"
grep -q "decoded by chunk, not by page" "$TMP/err" || fail "$(cat "$TMP/err")"
"$SNAP" store import "$TMP/nosums" g0 "$TMP/m0" --check-by chunk \
  --decode-by page 2>"$TMP/err" && fail "--decode-by page without page sums"
grep -q "decode-by page needs --check-by page" "$TMP/err" ||
  fail "$(cat "$TMP/err")"
[ ! -e "$TMP/nosums/store" ] || fail "a refused store was written"
rm -rf "$TMP/bychunk" "$TMP/nosums"
dedup=$(json "$ST" dedup_ratio)
python3 -c "import sys; sys.exit(0 if float('$dedup') > 2 else 1)" ||
  fail "dedup ratio $dedup for four images of one guest"
comp=$(json "$ST" compression_ratio)
python3 -c "import sys; sys.exit(0 if float('$comp') < 0.8 else 1)" ||
  fail "compression ratio $comp"
"$SNAP" store import "$ST" g0 "$TMP/m0" 2>"$TMP/err" && fail "imported g0 twice"
grep -q "exists already" "$TMP/err" || fail "$(cat "$TMP/err")"

# ---- an E2B generation ----
B0=$("$SNAP" create "$TMP/m0" "$TMP/e2b" --block-size 4096)
B1=$("$SNAP" diff "$TMP/e2b" "$B0" "$TMP/m1")
"$SNAP" store import "$ST" e2b-g1 "$B1" --e2b "$TMP/e2b" | tee "$TMP/e.out"
grep -q ": 0 new" "$TMP/e.out" || fail "the E2B generation of m1 added chunks"
check_export "$ST" e2b-g1 "$TMP/m1"

# ---- encryption ----
head -c 32 /dev/urandom >"$TMP/key"
export STORE_KEY
STORE_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
"$SNAP" store import "$TMP/enc" g0 "$TMP/m0" --key-file "$TMP/key"
"$SNAP" store import "$TMP/enc" g1 "$TMP/m1" --key-file "$TMP/key"
check_export "$TMP/enc" g1 "$TMP/m1" --key-file "$TMP/key"
"$SNAP" store verify "$TMP/enc" --key-file "$TMP/key" || fail "verify enc"
"$SNAP" store export "$TMP/enc" g1 "$TMP/out" --key-env STORE_KEY \
  2>"$TMP/err" && fail "exported with a wrong key"
grep -q "key check): the key given is not the store's key" "$TMP/err" ||
  fail "wrong key: $(cat "$TMP/err")"
"$SNAP" store export "$TMP/enc" g1 "$TMP/out" 2>"$TMP/err" &&
  fail "exported without a key"
grep -q "the store is encrypted; give its key" "$TMP/err" || fail "no key"
[ ! -e "$TMP/out" ] || fail "a refused export left $TMP/out"
# Equal plaintext is not deduplicated across keys: ids are keyed.
"$SNAP" store import "$TMP/enc2" g0 "$TMP/m0" --key-env STORE_KEY
cmp -s <(ls "$TMP/enc/packs" | head -1) <(ls "$TMP/enc2/packs" | head -1) &&
  fail "two keys, one pack name"
python3 - "$TMP/enc/packs" "$TMP/enc2/packs" "$ST/packs" <<'PY' ||
import sys, os
def ids(d):
    out = set()
    for f in os.listdir(d):
        if f.endswith(".idx"):
            b = open(os.path.join(d, f), "rb").read()
            n = int.from_bytes(b[48:52], "little")
            out |= {b[64 + 56 * i:96 + 56 * i] for i in range(n)}
    return out
a, b, c = ids(sys.argv[1]), ids(sys.argv[2]), ids(sys.argv[3])
sys.exit(0 if a and b and not (a & b) and not (a & c) else 1)
PY
  fail "chunk ids are shared between keys or with the plain store"

# ---- damage ----
cp -r "$ST" "$TMP/bad"
pack=$(ls -S "$TMP/bad/packs/"*.pack | head -1)
# One bit flipped in the middle of the largest pack.
python3 -c "
import sys
f = open(sys.argv[1], 'r+b'); f.seek(0, 2); n = f.tell()
f.seek(n // 2); b = f.read(1); f.seek(n // 2); f.write(bytes([b[0] ^ 4]))
" "$pack"
"$SNAP" store verify "$TMP/bad" >"$TMP/v.out" 2>"$TMP/err" &&
  fail "verify passed a flipped bit"
grep -Eq "(does not decode|hash to the chunk id|hash to its page sum)" "$TMP/err" ||
  fail "flipped bit: $(cat "$TMP/err")"
grep -q ", 1 bad" "$TMP/v.out" || fail "$(cat "$TMP/v.out")"
truncate -s -100 "$pack"
"$SNAP" store verify "$TMP/bad" 2>"$TMP/err" && fail "verify passed a truncated pack"
grep -q "its header says .* (truncated)" "$TMP/err" ||
  fail "truncated pack: $(cat "$TMP/err")"
rm -rf "$TMP/bad"

# ---- interrupted imports ----
python3 -c "import os,sys; open(sys.argv[1],'wb').write(os.urandom(64<<20))" \
  "$TMP/big"
tmp_has_file() { [ -n "$(ls "$ST/tmp")" ]; }
packs_before=$(ls "$ST/packs" | wc -l)
"$SNAP" store import "$ST" big "$TMP/big" --codec zstd --level 19 --chunk-size 16K &
imp=$!
BG_PIDS+=($imp)
until_true 60 tmp_has_file || fail "the import wrote nothing to tmp/"
kill -INT $imp
rc=0
wait $imp || rc=$?
[ $rc -eq 1 ] || fail "interrupted import exited with $rc"
[ -z "$(ls "$ST/tmp")" ] || fail "an interrupted import left $(ls "$ST/tmp")"
[ ! -e "$ST/snapshots/big" ] || fail "an interrupted import published"
[ "$(ls "$ST/packs" | wc -l)" = "$packs_before" ] || fail "packs changed"

# ---- gc ----
"$SNAP" store delete "$ST" g0-again
"$SNAP" store gc "$ST" | tee "$TMP/gc.out"
grep -q ": 0 unreferenced packs deleted" "$TMP/gc.out" ||
  fail "gc deleted packs still referenced"
"$SNAP" store delete "$ST" g2
"$SNAP" store gc "$ST" | tee "$TMP/gc.out"
grep -q ": 1 unreferenced packs deleted" "$TMP/gc.out" ||
  fail "gc did not delete the pack only g2 used"
"$SNAP" store verify "$ST" || fail "verify after gc"
check_export "$ST" g1 "$TMP/m1"

# gc while an import runs: the import is stopped once it has written to
# tmp/; gc --no-wait refuses, gc waits; both finish and the import's
# snapshot is whole.
"$SNAP" store import "$ST" big "$TMP/big" --codec zstd --level 19 &
imp=$!
BG_PIDS+=($imp)
until_true 60 tmp_has_file || fail "the import wrote nothing to tmp/"
kill -STOP $imp
"$SNAP" store gc "$ST" --no-wait 2>"$TMP/err" && fail "gc --no-wait ran"
grep -q "an import is running" "$TMP/err" || fail "$(cat "$TMP/err")"
"$SNAP" store gc "$ST" >"$TMP/gc.out" 2>"$TMP/gc.err" &
gc=$!
BG_PIDS+=($gc)
sleep 1
kill -0 $gc 2>/dev/null || fail "gc did not wait for the import"
[ -n "$(ls "$ST/tmp")" ] || fail "gc removed the running import's files"
kill -CONT $imp
wait $imp || fail "the import failed while gc waited"
wait $gc || fail "gc failed"
grep -q "waiting for the imports running" "$TMP/gc.err" ||
  fail "gc: $(cat "$TMP/gc.err")"
check_export "$ST" big "$TMP/big"
"$SNAP" store verify "$ST" || fail "verify after gc and import"

# A killed import leaves files in tmp/ that only gc removes.
"$SNAP" store import "$ST" big2 "$TMP/m2" --codec zstd --level 19 --chunk-size 16K \
  2>/dev/null &
imp=$!
BG_PIDS+=($imp)
until_true 60 tmp_has_file || fail "the import wrote nothing to tmp/"
kill -KILL $imp
wait $imp || true
"$SNAP" store gc "$ST" | tee "$TMP/gc.out"
[ -z "$(ls "$ST/tmp")" ] || fail "gc left $(ls "$ST/tmp")"
echo "store tool: all checks passed"
