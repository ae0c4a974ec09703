#!/bin/bash
# A three-generation snapshot made with uffdkit-snap, restored through the
# daemon's diff source by the simulator, which checks every byte: at 4 KiB
# pages, at 2 MiB pages over 4 KiB blocks, and at 2 MiB pages and blocks.
source "$(dirname "$0")/../lib/functions.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

command -v python3 >/dev/null || skip "python3 is needed"
need_built "$UFFDKIT" "$SIM" "$SNAP"

SIZE=$((32 << 20))
python3 "$HERE/images.py" "$TMP" $SIZE
truncate -s $SIZE "$TMP/m2.sparse"
while read -r first count; do
  dd if="$TMP/m2" of="$TMP/m2.sparse" bs=4096 skip="$first" seek="$first" \
    count="$count" conv=notrunc status=none
done <"$TMP/m2.runs"

# snapshot BLOCK_SIZE: makes generations 0 (m0), 1 (m1, full input) and 2
# (m2, sparse input) in $TMP/store-BLOCK_SIZE; prints the last build id.
snapshot() {
  local store=$TMP/store-$1 g0 g1 g2
  g0=$("$SNAP" create "$TMP/m0" "$store" --block-size "$1")
  g1=$("$SNAP" diff "$store" "$g0" "$TMP/m1")
  g2=$("$SNAP" diff "$store" "$g1" "$TMP/m2.sparse" --sparse)
  "$SNAP" verify "$store" "$g2" >/dev/null || fail "verify $g2"
  echo "$g2"
}

# serve_cli NAME SOCK STORE BUILD: the diff source from the command line.
serve_cli() {
  start_daemon "$1" "$2" --socket "$2" diff \
    "header=$3/$4/memfile.header" "diffs=$3/{build_id}/memfile"
}

# serve_store NAME SOCK STORE BUILD: the diffs read through a nested file
# source, one per build, from a config file.
serve_store() {
  cat >"$TMP/$1.conf" <<EOF
listeners = (
  { name = "$1"; socket = "$2";
    source = { plugin = "diff"; header = "$3/$4/memfile.header";
               store = { plugin = "file"; path = "$3/{build_id}/memfile"; }; };
  } );
EOF
  start_daemon "$1" "$2" --config "$TMP/$1.conf"
}

# restore NAME SERVE STORE BUILD SIM_ARGS...: serves BUILD with the daemon
# (SERVE is serve_cli or serve_store) and restores it with the simulator,
# which must verify every byte.
restore() {
  local name=$1 serve=$2 store=$3 build=$4 rc=0
  shift 4
  local sock=$TMP/$name.sock
  "$SNAP" flatten "$store" "$build" "$TMP/$name.img" || fail "flatten"
  cmp "$TMP/$name.img" "$TMP/m2" || fail "$name: flattened image is not m2"
  "$serve" "$name" "$sock" "$store" "$build"
  "$SIM" run --socket "$sock" --image "$TMP/$name.img" --timeout 120 "$@" \
    >"$TMP/$name-sim.out" 2>"$TMP/$name-sim.log" || rc=$?
  [ $rc -eq 0 ] || {
    cat "$TMP/$name-sim.out" "$TMP/$name-sim.log" >&2
    fail "$name: uffdkit-sim exited with $rc"
  }
  echo "$name: $(cat "$TMP/$name-sim.out")"
  stop_daemons
}

B4K=$(snapshot 4096)
restore pages-4k serve_cli "$TMP/store-4096" "$B4K" --vcpus 2
restore pages-4k-random serve_cli "$TMP/store-4096" "$B4K" --vcpus 2 \
  --regions 3 --order random
restore pages-4k-store serve_store "$TMP/store-4096" "$B4K" --vcpus 2

B2M=$(snapshot 2M)
reserve_hugepages $((SIZE / (2 << 20) + 2))
restore pages-2m-blocks-4k serve_cli "$TMP/store-4096" "$B4K" --vcpus 2 \
  --page-size 2M
restore pages-2m-blocks-4k-store serve_store "$TMP/store-4096" "$B4K" \
  --vcpus 2 --page-size 2M
restore pages-2m-blocks-2m serve_cli "$TMP/store-2M" "$B2M" --vcpus 2 \
  --page-size 2M --order random
