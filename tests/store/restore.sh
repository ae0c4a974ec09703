#!/bin/bash
# The store source through the real daemon, restored by uffdkit-sim, which
# checks every byte: three generations imported into local stores (64 KiB
# zstd, 16 KiB encrypted LZ4 and 4 MiB LZ4HC chunks, checked by page, and
# 16 KiB chunks checked whole) restored at 4 KiB and 2 MiB pages;
# the same served by nginx through a nested http source; a wrong key and a
# truncated pack refused at start; a pack truncated while the daemon serves
# from it (mapped) fails only the VM that reads past its end (killed), and
# the same worker goes on serving; and one bit flipped in a chunk served
# over HTTP never installed: the VM is killed (on_source_error = "kill"),
# after a retry layer's tries where configured, every page before it right.
source "$(dirname "$0")/../lib/functions.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../http/servers.sh"

command -v python3 >/dev/null || skip "python3 is needed"
[ -x /usr/sbin/nginx ] || skip "nginx is needed"
VMM=$BUILD/bin/test-http-strict-vmm
need_built "$UFFDKIT" "$SIM" "$SNAP" "$VMM"

SIZE=$((32 << 20))
python3 "$HERE/images.py" "$TMP" $SIZE
WWW=$TMP/www
mkdir -p "$WWW"
head -c 32 /dev/urandom >"$TMP/key"

# store DIR ARGS...: g0, g1 and g2 (a diff over g1) in DIR.
store() {
  local dir=$1
  shift
  "$SNAP" store import "$dir" g0 "$TMP/m0" "$@" >/dev/null
  "$SNAP" store import "$dir" g1 "$TMP/m1" "$@" >/dev/null
  "$SNAP" store import "$dir" g2 "$TMP/m2.diff" --base g1 "$@" >/dev/null
}
store "$WWW/st64" --chunk-size 64K --codec zstd
store "$TMP/st16" --chunk-size 16K --codec lz4 --level 1 --key-file "$TMP/key"
store "$TMP/st4m" --chunk-size 4M
# Checked by chunk, as stores made before page sums; decoded by chunk, as
# stores made before page blocks.
store "$TMP/stc" --chunk-size 16K --check-by chunk
store "$TMP/stw" --chunk-size 16K --decode-by chunk

# restore NAME SOURCE_SETTINGS IMAGE SIM_ARGS...: serves a store source
# (libconfig settings) and restores IMAGE, every byte checked.
restore() {
  local name=$1 src=$2 img=$3 rc=0
  shift 3
  local sock=$TMP/$name.sock
  cat >"$TMP/$name.conf" <<CONF
uffdkit = { control_socket = "$TMP/$name.ctl"; };
listeners = ( { name = "$name"; socket = "$sock"; ${LAYERS:-}
                source = { plugin = "store"; $src }; } );
CONF
  start_daemon "$name" "$sock" --config "$TMP/$name.conf"
  "$SIM" run --socket "$sock" --image "$img" --timeout 120 "$@" \
    >"$TMP/$name-sim.out" 2>"$TMP/$name-sim.log" || rc=$?
  [ $rc -eq 0 ] || {
    cat "$TMP/$name-sim.out" "$TMP/$name-sim.log" >&2
    fail "$name: uffdkit-sim exited with $rc"
  }
  echo "$name: $(cat "$TMP/$name-sim.out")"
  stop_daemons
  grep -Eq "listener $name: store(\\+cache)?, $SIZE bytes" "$TMP/$name.log" ||
    fail "$name: the listener did not start the store source"
  ! grep -q "could not deliver" "$TMP/$name.log" ||
    fail "$name: the daemon failed a read"
}

L64="path = \"$WWW/st64\";"
L16="path = \"$TMP/st16\"; key_file = \"$TMP/key\";"
L4M="path = \"$TMP/st4m\";"
restore g2-64k-4k "$L64 snapshot = \"g2\";" "$TMP/m2" --vcpus 2
restore g0-64k-4k-random "$L64 snapshot = \"g0\";" "$TMP/m0" --vcpus 2 \
  --order random --regions 3
restore g2-16k-enc-4k "$L16 snapshot = \"g2\";" "$TMP/m2" --vcpus 2 \
  --order random
restore g2-16k-by-chunk-4k "path = \"$TMP/stc\"; snapshot = \"g2\";" \
  "$TMP/m2" --vcpus 2 --order random
# 4 KiB faults in 4 MiB chunks: each reads its whole chunk (and decodes
# and checks its own page), so a cache layer of the chunk size keeps them
# for the next faults.
LAYERS='layers = ( { layer = "cache"; size = "32M"; chunk = "4M"; } );' \
  restore g1-4m-4k-cache "$L4M snapshot = \"g1\";" "$TMP/m1" --order random
grep -q "[1-9][0-9]* zero pages" "$TMP/g2-64k-4k.log" ||
  fail "no zero chunk was installed as zeros"

# The command line, as uffdkit-store(5) shows it.
start_daemon cli "$TMP/cli.sock" --socket "$TMP/cli.sock" \
  --control-socket "$TMP/cli.ctl" store path="$WWW/st64" snapshot=g1
sim 0 cli run --socket "$TMP/cli.sock" --image "$TMP/m1" --vcpus 2
stop_daemons

reserve_hugepages $((SIZE / (2 << 20) + 4))
restore g2-64k-2m "$L64 snapshot = \"g2\";" "$TMP/m2" --page-size 2M \
  --vcpus 2
restore g2-16k-enc-2m "$L16 snapshot = \"g2\";" "$TMP/m2" --page-size 2M
restore g2-4m-2m "$L4M snapshot = \"g2\";" "$TMP/m2" --page-size 2M \
  --order random

# ---- refused at start ----
# refused NAME SOURCE_SETTINGS MESSAGE: the source does not start, saying so.
refused() {
  local name=$1 src=$2 msg=$3
  cat >"$TMP/$name.conf" <<CONF
uffdkit = { control_socket = "$TMP/$name.ctl"; };
listeners = ( { name = "$name"; socket = "$TMP/$name.sock";
                source = { plugin = "store"; $src }; } );
CONF
  if timeout 30 "$UFFDKIT" --config "$TMP/$name.conf" >"$TMP/$name.log" 2>&1
  then
    fail "$name: the daemon started"
  fi
  grep -q -- "$msg" "$TMP/$name.log" || {
    cat "$TMP/$name.log" >&2
    fail "$name: the log does not say: $msg"
  }
  echo "$name: refused: $(grep -o -- "$msg.*" "$TMP/$name.log" | head -1)"
}
export WRONG_KEY
WRONG_KEY=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
refused wrong-key "path = \"$TMP/st16\"; key_env = \"WRONG_KEY\";
                   snapshot = \"g2\";" "the key given is not the store's key"
refused no-key "path = \"$TMP/st16\"; snapshot = \"g2\";" \
  "the store is encrypted; give its key"
cp -r "$WWW/st64" "$TMP/trunc"
pack=$(ls -S "$TMP/trunc/packs/"*.pack | head -1)
truncate -s -1 "$pack"
refused truncated "path = \"$TMP/trunc\"; snapshot = \"g0\";" \
  "$(basename "$pack"): [0-9]* bytes, its header says [0-9]* (truncated)"
refused no-snapshot "path = \"$WWW/st64\"; snapshot = \"g9\";" \
  "snapshots/g9: cannot open"

# ---- a pack truncated under the daemon ----
# Read from a mapping, a pack cut short after the start must fail the reads
# past its new end (the VM killed, nothing wrong installed), not kill the
# worker with a SIGBUS: the other listener of the same worker then restores
# in full.
"$SNAP" store import "$TMP/cut" g0 "$TMP/m0" >/dev/null # one pack
cat >"$TMP/cut.conf" <<CONF
uffdkit = { control_socket = "$TMP/cut.ctl"; };
listeners = (
  { name = "cut"; socket = "$TMP/cut.sock"; on_source_error = "kill";
    source = { plugin = "store"; path = "$TMP/cut"; snapshot = "g0"; }; },
  { name = "whole"; socket = "$TMP/whole.sock";
    source = { plugin = "store"; $L4M snapshot = "g0"; }; } );
CONF
start_daemon cut "$TMP/cut.sock" --config "$TMP/cut.conf"
wait_for_socket "$TMP/whole.sock"
pack=$(ls "$TMP/cut/packs/"*.pack)
truncate -s $(($(stat -c %s "$pack") / 2)) "$pack"
rc=0
"$VMM" "$TMP/cut.sock" "$TMP/m0" 1 60 >"$TMP/cut-vmm.out" \
  2>"$TMP/cut-vmm.log" || rc=$?
! grep '^MISMATCH' "$TMP/cut-vmm.out" >&2 ||
  fail "cut: a wrong page was installed"
[ $rc -eq 137 ] || {
  cat "$TMP/cut-vmm.out" "$TMP/cut-vmm.log" >&2
  fail "cut: the VM exited with $rc, not killed by SIGKILL"
}
grep -q "$(basename "$pack"): .* cannot be read: the file is shorter" \
  "$TMP/cut.log" || fail "cut: the log does not name the short pack"
sim 0 whole run --socket "$TMP/whole.sock" --image "$TMP/m0" --order random
! grep -q "worker .* died\|restarting the worker" "$TMP/cut.log" ||
  fail "cut: the worker died"
stop_daemons
echo "cut: the VM reading past the cut was killed; the worker served on"

# ---- over HTTP ----
start_nginx "$WWW"
URL="http://127.0.0.1:$NGINX_PORT"
H64="objects = { plugin = \"http\"; url = \"$URL/st64/{object}\"; };"
restore http-g2-4k "$H64 snapshot = \"g2\";" "$TMP/m2" --vcpus 2 \
  --order random
restore http-g2-2m "$H64 snapshot = \"g2\";" "$TMP/m2" --page-size 2M
bad=$(grep ' "GET /st64/' "$NGINX_DIR/access.log" | grep -cvE ' 20[06] ' ||
  true)
[ "$bad" -eq 0 ] || fail "$bad store requests failed at nginx"
grep -q '"GET /st64/snapshots/g2 ' "$NGINX_DIR/access.log" ||
  fail "the manifest was not fetched over HTTP"

# One bit flipped in a chunk of g2 near the middle of the image.
BAD_AT=$(python3 "$HERE/storelib.py" flip "$WWW/st64" g2)
echo "flipped a bit in the chunk first read at byte $BAD_AT"
cat >"$TMP/flip.conf" <<CONF
uffdkit = { control_socket = "$TMP/flip.ctl"; };
listeners = (
  { name = "kill"; socket = "$TMP/kill.sock"; on_source_error = "kill";
    source = { plugin = "store"; $H64 snapshot = "g2"; }; },
  { name = "retry"; socket = "$TMP/retry.sock"; on_source_error = "kill";
    layers = ( { layer = "retry"; tries = 3; delay = "10ms"; } );
    source = { plugin = "store"; $H64 snapshot = "g2"; }; } );
CONF
start_daemon flip "$TMP/kill.sock" --config "$TMP/flip.conf"
wait_for_socket "$TMP/retry.sock"

# flipped NAME: the VM on NAME is killed at the flipped chunk; every page it
# verified before was right, and no wrong page was installed.
flipped() {
  local name=$1 rc=0 out=$TMP/$1-vmm.out
  "$VMM" "$TMP/$name.sock" "$TMP/m2" 1 60 >"$out" 2>"$TMP/$name-vmm.log" ||
    rc=$?
  if grep '^MISMATCH' "$out" >&2; then
    fail "$name: a wrong page was installed"
  fi
  [ $rc -eq 137 ] || {
    cat "$out" "$TMP/$name-vmm.log" >&2
    fail "$name: the VM exited with $rc, not killed by SIGKILL"
  }
  local pages
  pages=$(grep '^verified' "$out" | tail -1 | cut -d' ' -f2)
  [ "${pages:-0}" -ge $((BAD_AT / 4096 - 64)) ] ||
    fail "$name: only ${pages:-0} pages verified before byte $BAD_AT"
  grep -q "hash to the chunk id\|hash to its page sum\|does not decode" "$TMP/flip.log" ||
    fail "$name: the log does not name the bad chunk"
  echo "$name: killed after $pages pages verified (bad chunk at page" \
    "$((BAD_AT / 4096)))"
}
flipped kill
grep -q "source kill could not deliver.*chunk .* of snapshot g2.*killing the VM" \
  "$TMP/flip.log" || fail "kill: the log does not name the chunk and policy"
flipped retry
[ "$(grep -c "retry" "$TMP/flip.log")" -ge 2 ] ||
  fail "retry: the retry layer did not try again"
grep -q "source retry could not deliver.*killing the VM" "$TMP/flip.log" ||
  fail "retry: the VM was not killed after the tries"
stop_daemons
stop_nginx
echo "store restore: all checks passed"
