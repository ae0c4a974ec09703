#!/bin/bash
# E2B header versions 4 and 5: three-generation stores made by uffdkit-snap
# that mix versions and codecs in one chain, restored through the daemon's
# diff source by the simulator, which checks every byte, at 4 KiB pages and
# at 2 MiB pages (which cross mapping and frame boundaries).
#   s4  4 KiB blocks: v3 -> v4 zstd (64 KiB frames) -> v5 lz4 (96 KiB
#       frames, sparse input);
#   s2  2 MiB blocks: v4 lz4 (2 MiB frames) -> v5 zstd (4 MiB frames) ->
#       v5 uncompressed;
#   sf  ancestor entries left out (as E2B wrote before 2026-08-18): the
#       source reads each ancestor's own header to find its frames;
#   sr  s4 with generation 2's entry for generation 1 made the all-zero
#       entry, which proves false (no memfile): E2B's rescue, the build's
#       own header, gives its frames.
# Builds are read from local files (diffs) and through a nested file source
# (store, with {suffix}; sr too).
source "$(dirname "$0")/../lib/functions.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

command -v python3 >/dev/null || skip "python3 is needed"
need_built "$UFFDKIT" "$SIM" "$SNAP" "$BUILD/bin/test-diff-corrupt"

SIZE=$((32 << 20))
python3 "$HERE/images.py" "$TMP" $SIZE compressible
truncate -s $SIZE "$TMP/m2.sparse"
while read -r first count; do
  dd if="$TMP/m2" of="$TMP/m2.sparse" bs=4096 skip="$first" seek="$first" \
    count="$count" conv=notrunc status=none
done <"$TMP/m2.runs"

S4=$TMP/s4 S2=$TMP/s2 SF=$TMP/sf
A0=$("$SNAP" create "$TMP/m0" "$S4")
A1=$("$SNAP" diff "$S4" "$A0" "$TMP/m1" --header-version 4 --codec zstd \
  --frame-size 64K)
A2=$("$SNAP" diff "$S4" "$A1" "$TMP/m2.sparse" --sparse --header-version 5 \
  --codec lz4 --frame-size 96K)
B0=$("$SNAP" create "$TMP/m0" "$S2" --block-size 2M --header-version 4 \
  --codec lz4)
B1=$("$SNAP" diff "$S2" "$B0" "$TMP/m1" --header-version 5 --codec zstd \
  --frame-size 4M)
B2=$("$SNAP" diff "$S2" "$B1" "$TMP/m2" --codec none)
C0=$("$SNAP" create "$TMP/m0" "$SF" --header-version 4 --codec zstd \
  --frame-size 128K)
C1=$("$SNAP" diff "$SF" "$C0" "$TMP/m1" --codec lz4 --frame-size 64K \
  --no-ancestor-entries)
C2=$("$SNAP" diff "$SF" "$C1" "$TMP/m2" --header-version 5 --codec zstd \
  --no-ancestor-entries)

# json STORE BUILD EXPR: EXPR over j, the build's inspect --json.
json() {
  "$SNAP" inspect "$1" "$2" --json |
    python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$3"
}
codecs() {
  json "$1" "$2" '" ".join(e["codec"] for e in j["entries"])'
}

SR=$TMP/sr
cp -r "$S4" "$SR"
"$BUILD/bin/test-diff-corrupt" "$S4/$A2/memfile.header" \
  "$SR/$A2/memfile.header" zero-ancestor || fail "cannot zero an entry"
[ "$(json "$SR" "$A2" '[e["frames"] for e in j["entries"]].count(0)')" = 2 ] ||
  fail "SR: A1's entry was not zeroed"

for s in "$S4 $A2" "$S2 $B2" "$SF $C2" "$SR $A2"; do
  set -- $s
  "$SNAP" verify "$1" "$2" >/dev/null || fail "verify $2"
  "$SNAP" flatten "$1" "$2" "$TMP/flat" || fail "flatten $2"
  cmp "$TMP/flat" "$TMP/m2" || fail "$1: the flattened generation 2 is not m2"
  [ "$(json "$1" "$2" 'len(j["builds"])')" = 3 ] ||
    fail "$1: generation 2 does not read from three builds"
done
[ "$(json "$S4" "$A1" 'j["version"]')" = 4 ] || fail "A1 is not version 4"
[ "$(json "$S4" "$A2" 'j["version"]')" = 5 ] || fail "A2 is not version 5"
# Own entry first; the v3 ancestor gets the all-zero entry.
[ "$(codecs "$S4" "$A2")" = "lz4 none zstd" ] ||
  [ "$(codecs "$S4" "$A2")" = "lz4 zstd none" ] ||
  fail "A2 entries: $(codecs "$S4" "$A2")"
[ "$(json "$S2" "$B2" 'j["entries"][0]["codec"]')" = none ] ||
  fail "B2's own entry is not uncompressed"
[ "$(json "$SF" "$C2" 'len(j["entries"])')" = 1 ] ||
  fail "C2 should hold its own entry only"
# A compressed build has only its compressed object, and it is smaller.
[ ! -e "$S4/$A1/memfile" ] && [ -e "$S4/$A1/memfile.zstd" ] ||
  fail "A1: $(ls "$S4/$A1")"
raw=$(json "$S4" "$A1" 'j["entries"][0]["size"]')
packed=$(stat -c %s "$S4/$A1/memfile.zstd")
[ "$packed" -lt $((raw / 2)) ] || fail "A1: $packed bytes of zstd for $raw"
echo "stores: verified and flattened; A1 zstd $packed bytes for $raw"

# serve_cli NAME SOCK STORE BUILD
serve_cli() {
  start_daemon "$1" "$2" --socket "$2" diff \
    "header=$3/$4/memfile.header" "diffs=$3/{build_id}/memfile"
}

# serve_store NAME SOCK STORE BUILD: each build through a nested file
# source, whose path names the compressed object with {suffix}.
serve_store() {
  cat >"$TMP/$1.conf" <<CONF
listeners = (
  { name = "$1"; socket = "$2";
    source = { plugin = "diff"; header = "$3/$4/memfile.header";
               frame_cache = "8M";
               store = { plugin = "file";
                         path = "$3/{build_id}/memfile{suffix}"; }; };
  } );
CONF
  start_daemon "$1" "$2" --config "$TMP/$1.conf"
}

# restore NAME SERVE STORE BUILD SIM_ARGS...
restore() {
  local name=$1 serve=$2 store=$3 build=$4 rc=0
  shift 4
  local sock=$TMP/$name.sock
  "$serve" "$name" "$sock" "$store" "$build"
  "$SIM" run --socket "$sock" --image "$TMP/m2" --timeout 120 "$@" \
    >"$TMP/$name-sim.out" 2>"$TMP/$name-sim.log" || rc=$?
  [ $rc -eq 0 ] || {
    cat "$TMP/$name-sim.out" "$TMP/$name-sim.log" >&2
    fail "$name: uffdkit-sim exited with $rc"
  }
  echo "$name: $(cat "$TMP/$name-sim.out")"
  stop_daemons
}

restore s4-4k serve_cli "$S4" "$A2" --vcpus 2
restore s4-4k-store serve_store "$S4" "$A2" --vcpus 3 --order random
restore s2-4k serve_cli "$S2" "$B2" --vcpus 2 --order random
restore sf-4k-store serve_store "$SF" "$C2" --vcpus 2
restore sr-4k serve_cli "$SR" "$A2" --vcpus 2
# The rescue through the store: the nested source's ENOENT for A1's
# memfile proves the all-zero entry false.
restore sr-4k-store serve_store "$SR" "$A2" --vcpus 2

reserve_hugepages $((SIZE / (2 << 20) + 2))
restore s4-2m serve_cli "$S4" "$A2" --vcpus 2 --page-size 2M
restore s4-2m-store serve_store "$S4" "$A2" --vcpus 2 --page-size 2M \
  --order random
restore s2-2m serve_cli "$S2" "$B2" --vcpus 2 --page-size 2M --order random
restore sf-2m serve_cli "$SF" "$C2" --vcpus 2 --page-size 2M
