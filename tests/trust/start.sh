#!/bin/bash
# A generation whose worker cannot start gets no VM, and a VM whose worker
# can no longer be started ends per on_source_error instead of waiting for
# ever.
#   1  `--socket S file path=FIFO`: the worker waits in open() of a FIFO
#      (its source is not started) while a VM connects to S: the VM must
#      not be taken as a session; once the source fails (a writer opens
#      and closes the FIFO) the daemon exits with status 1 and the VM is
#      let go (it ends, not by its own timeout);
#   2  a live restore whose worker is SIGKILLed after its plugin was
#      removed: the replacement worker cannot start the generation's
#      sources; after a bounded number of tries one line says so and the VM
#      is killed (on_source_error = kill); with the plugin back the daemon
#      serves new VMs again.
. "$(dirname "$0")/common.sh"

PAGES=8192
sim 0 img mkimage "$TMP/mem" --size 32M --seed 71

# ---- 1: no VM before the worker is ready ----
mkfifo "$TMP/fifo"
start_daemon one "$TMP/one.sock" --socket "$TMP/one.sock" --plugin-dir \
  "$PLUGINS" file path="$TMP/fifo"
D=$(daemon_pid)
"$SIM" run --socket "$TMP/one.sock" --image "$TMP/mem" --mem-size 4M \
  --timeout 60 >"$TMP/early.out" 2>"$TMP/early.err" &
EARLY=$!
sleep 1
kill -0 $EARLY 2>/dev/null || fail "the VM gave up early: $(cat "$TMP/early.err")"
[ "$(count_log one "session [0-9]+: pid")" -eq 0 ] ||
  fail "a VM was taken before the worker was ready: $(grep session "$TMP/one.log")"
exec 3>"$TMP/fifo"
exec 3>&-
rc=0
wait "$D" || rc=$?
DAEMON_PIDS=()
[ $rc -eq 1 ] || fail "the daemon whose source failed exited $rc"
rc=0
wait $EARLY || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 3 ] ||
  fail "the VM connected before the failure ended with $rc: $(cat "$TMP/early.err")"
[ "$(count_log one "session [0-9]+: pid")" -eq 0 ] ||
  fail "a VM was taken by a daemon whose worker never started"
echo "no worker: the daemon exited 1, the waiting VM ended with $rc, no session"

# ---- 2: a worker that can no longer start ----
# (its plugin gone: the data file itself is pinned to the generation, so
# moving it away would change nothing)
mkdir "$TMP/plugins"
cp "$PLUGINS/libmmap.so" "$TMP/plugins/"
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = "$TMP/ctl.sock"; worker_restart_delay = "50ms"; };
listeners = (
  { name = "a"; socket = "$TMP/a.sock"; on_source_error = "kill";
    source = { plugin = "$TMP/plugins/libmmap.so"; path = "$TMP/mem"; }; }
);
CONF
start_daemon d "$TMP/a.sock" --config "$TMP/d.conf" --plugin-dir "$PLUGINS"
D=$(daemon_pid)
W=$(wait_worker "$D")
wait_log d "worker $W ready"
"$SIM" run --socket "$TMP/a.sock" --image "$TMP/mem" --delay-us 1000 \
  --timeout 90 >"$TMP/main.out" 2>"$TMP/main.err" &
MAIN=$!
wait_log d "session [0-9]+: pid $MAIN "
sleep 0.3
rm "$TMP/plugins/libmmap.so"
still_running $MAIN "the restore"
kill -KILL "$W"
wait_log d "error: configuration generation 1: its sources failed to start 5 times in a row; killing 1 VMs and leaving 0 blocked \(on_source_error\)" 30
rc=0
wait $MAIN || rc=$?
[ $rc -eq 137 ] || fail "the VM whose worker cannot start exited $rc, not killed"
[ "$(count_log d "failed to start [0-9]+ times in a row")" -eq 1 ] ||
  fail "the give-up is not one line"
echo "$(grep "in a row" "$TMP/d.log" | sed 's/.*error: //')"
cp "$PLUGINS/libmmap.so" "$TMP/plugins/"
sim 0 after run --socket "$TMP/a.sock" --image "$TMP/mem" --vcpus 2
verified after $PAGES
stop_daemons
