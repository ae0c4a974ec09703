#!/bin/bash
# uffdkit-snap store gc --repack: after the snapshot that filled a pack is
# deleted, the pack, mostly unreferenced, is rewritten with its live chunks
# only; the store's packs shrink, the manifests that listed it name the new
# pack, and every remaining snapshot exports byte-exact (plain and
# encrypted; an encrypted store is repacked only with its key).
source "$(dirname "$0")/../lib/functions.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

command -v python3 >/dev/null || skip "python3 is needed"
need_built "$SNAP"

SIZE=$((16 << 20))
python3 "$HERE/images.py" "$TMP" $SIZE
# m0 fills one pack; x shares its first quarter and adds 12 MiB of its own;
# y shares m0's first 2 MiB, then zeros.
python3 - "$TMP" <<'PY'
import random, sys
d = sys.argv[1]
m0 = open(d + "/m0", "rb").read()
q = len(m0) // 4
open(d + "/x", "wb").write(m0[:q] + random.Random(16).randbytes(len(m0) - q))
open(d + "/y", "wb").write(m0[:2 << 20] + bytes(len(m0) - (2 << 20)))
PY
printf '%s' 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff \
  >"$TMP/key"

pack_bytes() { du -cb "$1"/packs/*.pack | tail -1 | cut -f1; }

check_export() {
  "$SNAP" store export "$1" "$2" "$TMP/out" "${@:4}" || fail "export $2"
  cmp "$TMP/out" "$3" || fail "export of $2 from $1 is not $3"
  rm "$TMP/out"
}

# repack_case STORE [KEY_ARGS...]
repack_case() {
  local st=$1
  shift
  "$SNAP" store import "$st" g0 "$TMP/m0" --chunk-size 16K "$@" >/dev/null
  local p0
  p0=$(ls "$st/packs" | grep '\.pack$')
  "$SNAP" store import "$st" x "$TMP/x" "$@" >/dev/null
  "$SNAP" store import "$st" y "$TMP/y" "$@" >/dev/null
  "$SNAP" store delete "$st" g0
  local before after p0_bytes
  before=$(pack_bytes "$st")
  p0_bytes=$(stat -c %s "$st/packs/$p0")
  if [ $# -gt 0 ]; then
    # Without the key, gc collects but cannot write MACs: it refuses.
    "$SNAP" store gc "$st" --repack 2>"$TMP/err" && fail "$st: repacked without the key"
    grep -q "the store is encrypted; give its key" "$TMP/err" ||
      fail "$st: $(cat "$TMP/err")"
    [ -e "$st/packs/$p0" ] || fail "$st: a refused repack removed a pack"
  fi
  "$SNAP" store gc "$st" --repack "$@" | tee "$TMP/gc.out"
  grep -q ": 1 packs under 50% live repacked" "$TMP/gc.out" ||
    fail "$st: the pack g0 filled was not repacked"
  grep -q "2 manifests listing them published again" "$TMP/gc.out" ||
    fail "$st: the manifests were not published again"
  after=$(pack_bytes "$st")
  echo "$st: packs $before -> $after bytes"
  # x and y use g0's first quarter: at least half of its pack goes.
  [ "$after" -le $((before - p0_bytes / 2)) ] ||
    fail "$st: packs $before -> $after bytes: g0's pack ($p0_bytes) not halved"
  [ ! -e "$st/packs/$p0" ] || fail "$st: the old pack is still there"
  [ -z "$(ls "$st/tmp")" ] || fail "$st: tmp/ holds $(ls "$st/tmp")"
  check_export "$st" x "$TMP/x" "$@"
  check_export "$st" y "$TMP/y" "$@"
  "$SNAP" store verify "$st" "$@" || fail "$st: verify after repack"
  # Nothing is under the threshold any more; a higher one rewrites again.
  "$SNAP" store gc "$st" --repack "$@" | tee "$TMP/gc.out"
  grep -q ": 0 packs under 50% live repacked" "$TMP/gc.out" ||
    fail "$st: repacked twice"
  "$SNAP" store gc "$st" --repack=150% "$@" 2>"$TMP/err" &&
    fail "$st: a share over 100% was taken"
  grep -q "not a live share" "$TMP/err" || fail "$(cat "$TMP/err")"
}

repack_case "$TMP/plain"
repack_case "$TMP/enc" --key-file "$TMP/key"
echo "store repack: all checks passed"
