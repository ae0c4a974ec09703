#!/bin/bash
# examples/pattern built as an out-of-tree plugin: a copy of the directory,
# its Makefile finding the SDK with pkg-config only (the build tree's
# uffdkit-plugin-uninstalled.pc), installed into a plugin directory of its
# own, checked by --describe and --check-config, and serving restores that
# the simulator compares with pattern-image's output.
source "$(dirname "$0")/../lib/functions.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
for tool in make cc pkg-config; do
  command -v $tool >/dev/null || { echo "no $tool" >&2; exit 77; }
done
need_built "$UFFDKIT" "$SIM"

cp -r "$SRC/examples/pattern" "$TMP/pattern"
export PKG_CONFIG_PATH=$BUILD/packaging
cflags=$(pkg-config --cflags uffdkit-plugin | xargs)
[ "$cflags" = "-I$SRC/include" ] || fail "pkg-config --cflags gave '$cflags'"
make -C "$TMP/pattern" >"$TMP/make.log" 2>&1 || {
  cat "$TMP/make.log"
  fail "make failed"
}
PLUGINS=$TMP/plugins
make -C "$TMP/pattern" install PLUGINDIR="$PLUGINS" >>"$TMP/make.log" ||
  fail "make install failed"
[ -f "$PLUGINS/libpattern.so" ] || fail "make install put nothing in $PLUGINS"
syms=$(nm -D --defined-only "$PLUGINS/libpattern.so" | awk '{print $3}')
[ "$syms" = uffdkit_plugin_entry ] || fail "exports more than the entry: $syms"

desc=$("$UFFDKIT" --plugin-dir "$PLUGINS" --describe pattern) ||
  fail "--describe pattern failed"
grep -qx 'flags: fast' <<<"$desc" || fail "pattern is not FAST"
grep -qx 'thread model: parallel' <<<"$desc" || fail "pattern is not PARALLEL"
grep -q '^callbacks:.* extents' <<<"$desc" || fail "no extents callback"

# conf NAME SETTINGS [LISTENER_SETTINGS]: a config serving pattern with
# SETTINGS on $TMP/NAME.sock from $PLUGINS.
conf() {
  printf 'uffdkit = { plugin_dir = "%s"; };\n' "$PLUGINS" >"$TMP/$1.conf"
  printf 'listeners = ( { name = "%s"; socket = "%s";\n' "$1" \
    "$TMP/$1.sock" >>"$TMP/$1.conf"
  printf '  source = { plugin = "pattern"; %s }; %s } );\n' "$2" "${3:-}" \
    >>"$TMP/$1.conf"
}

# Settings are checked by create() through the host getters.
conf bad-size 'size = "1000";'
out=$("$UFFDKIT" --check-config "$TMP/bad-size.conf" 2>&1) &&
  fail "a size that is not a multiple of 4096 was accepted"
grep -q "bad-size.conf:3: size 1000 is not a positive multiple" <<<"$out" ||
  fail "unexpected message: $out"
conf bad-zero 'size = "1M"; zero_percent = 101;'
out=$("$UFFDKIT" --check-config "$TMP/bad-zero.conf" 2>&1) &&
  fail "zero_percent 101 was accepted"
grep -q "zero_percent must be 0 to 100" <<<"$out" ||
  fail "unexpected message: $out"

# restore NAME SIZE SEED ZERO SIM_ARGS...: serves the pattern with these
# settings and has the simulator check every page against pattern-image's.
# $LISTENER adds settings to the listener.
restore() {
  local name=$1 size=$2 seed=$3 zero=$4 rc=0
  shift 4
  conf "$name" "size = \"$size\"; seed = $seed; zero_percent = $zero;" \
    "${LISTENER:-}"
  "$UFFDKIT" --check-config "$TMP/$name.conf" >/dev/null ||
    fail "$name: --check-config failed"
  "$TMP/pattern/pattern-image" "$TMP/$name.img" "$size" "$seed" "$zero" ||
    fail "pattern-image failed"
  start_daemon "$name" "$TMP/$name.sock" --config "$TMP/$name.conf"
  "$SIM" run --socket "$TMP/$name.sock" --image "$TMP/$name.img" \
    --timeout 120 "$@" >"$TMP/$name-sim.out" 2>"$TMP/$name-sim.log" || rc=$?
  [ $rc -eq 0 ] || {
    cat "$TMP/$name-sim.out" "$TMP/$name-sim.log" >&2
    fail "$name: uffdkit-sim exited with $rc"
  }
  echo "$name: $(cat "$TMP/$name-sim.out")"
  stop_daemons
}

restore seq 32M 1 10 --vcpus 2
grep -Eq 'ended: 8192 faults, [0-9]+ pages copied, [1-9][0-9]* zero pages' \
  "$TMP/seq.log" || fail "no page was installed from a zero extent"
restore random 48M 77 25 --vcpus 2 --regions 3 --order random
restore nozero 16M 5 0 --vcpus 1 --order stride:7
grep -q ' 0 zero pages' "$TMP/nozero.log" || fail "zero pages with zero_percent 0"

# identity(): a working set recorded from seed 1 names it, and is not
# replayed for seed 2.
LISTENER="prefetch = { working_set = \"$TMP/ws\"; mode = \"record\"; };" \
  restore record 8M 1 10 --vcpus 1
grep -aq 'pattern size=8388608 seed=1 zero_percent=10' "$TMP/ws" ||
  fail "the recorded working set does not carry the pattern's identity"
LISTENER="prefetch = { working_set = \"$TMP/ws\"; mode = \"replay\"; };" \
  restore replay 8M 2 10 --vcpus 1
grep -q 'not replaying working set .*: it was recorded from another source' \
  "$TMP/replay.log" || fail "a working set of seed 1 was replayed for seed 2"

# The comparison is real: another seed's image differs.
conf other 'size = "16M"; seed = 6;'
"$TMP/pattern/pattern-image" "$TMP/seed5.img" 16M 5
start_daemon other "$TMP/other.sock" --config "$TMP/other.conf"
rc=0
"$SIM" run --socket "$TMP/other.sock" --image "$TMP/seed5.img" --timeout 60 \
  >"$TMP/other-sim.out" 2>"$TMP/other-sim.log" || rc=$?
[ $rc -eq 1 ] || fail "seed 6 served, seed 5 expected: sim exit $rc, not 1"
stop_daemons
echo "ok: the example plugin builds with pkg-config alone and serves its pattern"
