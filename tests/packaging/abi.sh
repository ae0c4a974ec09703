#!/bin/bash
# The ABI promise: a plugin built against an older minor (its struct
# ufk_plugin ends at prefetch, see old-minor/) is listed and described with
# its own struct size and without the newer callbacks, and serves a restore
# through the daemon, checked byte for byte by the simulator.  Its read path
# is the I/O pool, since without caps() its flags are its plugin flags.
source "$(dirname "$0")/../lib/functions.sh"
PLUGIN=${2:?usage: abi.sh BUILD_DIR PLUGIN_SO}
DIR=$(dirname "$PLUGIN")
need_built "$UFFDKIT" "$SIM" "$PLUGIN"

struct_size() { sed -n 's/^abi: [0-9.]* (struct size \([0-9]*\))$/\1/p'; }

desc=$("$UFFDKIT" --describe "$PLUGIN") || fail "--describe $PLUGIN failed"
echo "$desc"
grep -qx 'name: oldminor' <<<"$desc" || fail "wrong name"
grep -q '^abi: 1\.0 (struct size' <<<"$desc" || fail "not described as ABI 1.0"
grep -qx 'thread model: serial' <<<"$desc" || fail "thread model"
grep -qx 'flags: -' <<<"$desc" || fail "flags"
grep '^callbacks:' <<<"$desc" | grep -qw caps &&
  fail "a callback past struct_size was taken for caps"
old=$(struct_size <<<"$desc")
cur=$("$UFFDKIT" --describe mmap | struct_size)
[ -n "$old" ] && [ -n "$cur" ] || fail "no struct size in --describe"
[ "$old" -lt "$cur" ] ||
  fail "old plugin struct ($old bytes) is not smaller than the current ($cur)"
echo "struct size: old minor $old, this daemon's plugins $cur"

list=$("$UFFDKIT" --plugin-dir "$DIR" --list-plugins)
grep -Eq '^oldminor +source +1\.0 ' <<<"$list" || {
  echo "$list"
  fail "--list-plugins does not list oldminor as an ABI 1.0 source"
}

"$SIM" mkimage "$TMP/mem" --size 64M --seed 3 >/dev/null
cat >"$TMP/old.conf" <<CONF
uffdkit = { plugin_dir = "$DIR"; };
listeners = (
  { name = "old"; socket = "$TMP/old.sock";
    source = { plugin = "oldminor"; path = "$TMP/mem"; }; } );
CONF
"$UFFDKIT" --check-config "$TMP/old.conf" || fail "--check-config refused it"
start_daemon old "$TMP/old.sock" --config "$TMP/old.conf"
rc=0
"$SIM" run --socket "$TMP/old.sock" --image "$TMP/mem" --vcpus 2 --regions 2 \
  --order random --timeout 120 --repeat 2 >"$TMP/sim.out" 2>"$TMP/sim.log" ||
  rc=$?
cat "$TMP/sim.out"
[ $rc -eq 0 ] || { cat "$TMP/sim.log"; fail "uffdkit-sim exited with $rc"; }
grep -q ' mismatches=0 ' "$TMP/sim.out" || fail "pages differ"
stop_daemons
grep -q 'listener old: oldminor, 67108864 bytes$' "$TMP/old.log" ||
  fail "the listener was not served from the I/O pool"
grep -q 'past struct_size' "$TMP/old.log" && fail "read past struct_size"
echo "ok: an ABI 1.0 plugin with an older struct_size served two restores"
