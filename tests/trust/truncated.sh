#!/bin/bash
# A source file truncated under a restore, read through the paths that
# copy out of the file rather than have the kernel do it: the cache layer
# over mmap, readahead (its threads prefetching into the cache) over mmap,
# and the diff source assembling a 2 MiB page from several mappings.  Each
# VM on a truncated file gets its on_source_error (kill) at the first page
# past the end, and no wrong page before it; the worker survives (no
# SIGBUS), and a VM on another listener is served to the end meanwhile.
. "$(dirname "$0")/common.sh"

VMM=$BUILD/bin/trust-sigbus-vmm
need_built "$VMM" "$SNAP"

PAGES=4096
HALF=$((PAGES / 2))
for n in cac rah; do
  sim 0 "img-$n" mkimage "$TMP/$n.orig" --size 16M --seed 61 --zero-percent 0
  cp "$TMP/$n.orig" "$TMP/$n.mem"
done
sim 0 img-good mkimage "$TMP/good" --size 16M --seed 63
# One build with holes: its header alternates data and zero mappings, so a
# 2 MiB page is put together from several of them.
sim 0 img-dif mkimage "$TMP/dif.img" --size 16M --seed 65 --zero-percent 30
BUILD_ID=$("$SNAP" create "$TMP/dif.img" "$TMP/store" --block-size 4096)
DIFF=$TMP/store/$BUILD_ID/memfile
[ -f "$DIFF" ] || fail "no diff file at $DIFF"
reserve_hugepages 10

CACHE='{ layer = "cache"; size = "16M"; chunk = "64K"; }'
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = (
  { name = "cac"; socket = "$TMP/cac.sock"; on_source_error = "kill";
    source = { plugin = "mmap"; path = "$TMP/cac.mem"; };
    layers = ( $CACHE ); },
  { name = "rah"; socket = "$TMP/rah.sock"; on_source_error = "kill";
    source = { plugin = "mmap"; path = "$TMP/rah.mem"; };
    layers = ( { layer = "readahead"; window = "256K"; }, $CACHE ); },
  { name = "dif"; socket = "$TMP/dif.sock"; on_source_error = "kill";
    source = { plugin = "diff";
               header = "$TMP/store/$BUILD_ID/memfile.header";
               diffs = "$TMP/store/{build_id}/memfile"; }; },
  { name = "good"; socket = "$TMP/good.sock";
    source = { plugin = "mmap"; path = "$TMP/good"; }; }
);
CONF
start_daemon d "$TMP/cac.sock" --config "$TMP/d.conf"
D=$(daemon_pid)
W=$(wait_worker "$D")
wait_log d "worker $W ready"
truncate -s 8M "$TMP/cac.mem" "$TMP/rah.mem"
truncate -s $(($(stat -c %s "$DIFF") / 2)) "$DIFF"

# The other VM: slow (about 4.5 s), it runs through every failure.
"$SIM" run --socket "$TMP/good.sock" --image "$TMP/good" --delay-us 1000 \
  --timeout 60 >"$TMP/good.out" 2>"$TMP/good.err" &
GOOD=$!
wait_log d "session [0-9]+: pid $GOOD "

# killed NAME PID: the daemon killed VM PID of listener NAME for a short
# read of its file, and its worker is the one it started with.
killed() {
  local re="session [0-9]+ \(pid $2\): source $1 could not deliver .*"
  re+="file ended early; killing the VM \(on_source_error\)$"
  wait_log d "$re"
  kill -0 "$D" 2>/dev/null || fail "$1: the daemon died"
  [ "$(worker_of "$D")" = "$W" ] || fail "$1: the worker died (SIGBUS?)"
  still_running $GOOD "the other VM"
  echo "$1: killed; $(grep -E "$re" "$TMP/d.log" | head -1 | sed 's/.*: source //')"
}

for n in cac rah; do
  rc=0
  "$VMM" "$TMP/$n.sock" "$TMP/$n.orig" 20 >"$TMP/vmm-$n.out" \
    2>"$TMP/vmm-$n.err" &
  pid=$!
  wait $pid || rc=$?
  if grep '^MISMATCH' "$TMP/vmm-$n.out" >&2; then
    fail "$n: a wrong page was installed"
  fi
  [ $rc -eq 137 ] || {
    cat "$TMP/vmm-$n.out" "$TMP/vmm-$n.err" >&2
    fail "$n: the VMM exited with $rc, not killed by SIGKILL (137)"
  }
  [ "$(grep '^verified' "$TMP/vmm-$n.out" | tail -1)" = "verified $HALF" ] ||
    fail "$n: $(grep '^verified' "$TMP/vmm-$n.out" | tail -1), expected $HALF"
  killed $n $pid
done

rc=0
"$SIM" run --socket "$TMP/dif.sock" --image "$TMP/dif.img" --page-size 2M \
  --timeout 30 >"$TMP/dif.out" 2>"$TMP/dif.err" &
pid=$!
wait $pid || rc=$?
[ $rc -eq 137 ] || {
  cat "$TMP/dif.out" "$TMP/dif.err" >&2
  fail "dif: the simulator exited with $rc, not killed by SIGKILL (137)"
}
killed dif $pid

rc=0
wait $GOOD || rc=$?
check_sim 0 good $rc
verified good $PAGES
[ "$(worker_of "$D")" = "$W" ] || fail "the worker changed: it crashed"
stop_daemons
