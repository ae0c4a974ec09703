#!/bin/bash
# Reloads that cannot take over, and reloads that arrive during a reload.
#   1  a reload moving listener a to a path that cannot be bound (its
#      directory does not exist): `ctl reload` fails naming the path, no
#      generation is started, and a still accepts: a VM restores through it;
#   2  two reloads in a row, the first held while its worker starts (its
#      new listener reads a FIFO nobody writes yet, so the worker waits in
#      open): the second is queued, not refused, and once the first has
#      ended it runs with the newest file: listeners b and c of the second
#      edit appear and VMs restore through both.
. "$(dirname "$0")/common.sh"

PAGES=2048
sim 0 img mkimage "$TMP/mem" --size 8M --seed 61
CTL=$TMP/ctl.sock
CONF=$TMP/d.conf
# conf A_SOCKET [MORE_LISTENERS]: writes the configuration.
conf() {
  cat >"$CONF" <<CONF
uffdkit = { control_socket = "$CTL"; };
listeners = (
  { name = "a"; socket = "$1";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
  ${2:-}
);
CONF
}
conf "$TMP/a.sock"
start_daemon d "$TMP/a.sock" --config "$CONF" --plugin-dir "$PLUGINS"
D=$(daemon_pid)
wait_for_socket "$CTL"
wait_log d "worker [0-9]+ ready"

# ---- 1: a path that cannot be bound ----
conf "$TMP/nodir/a.sock"
rc=0
ctl "$CTL" reload >"$TMP/r1.out" 2>"$TMP/r1.err" || rc=$?
[ $rc -eq 1 ] || fail "ctl reload with an unbindable path exited $rc: $(cat "$TMP/r1.out")"
grep -q "$TMP/nodir/a.sock: No such file or directory" "$TMP/r1.err" ||
  fail "ctl reload does not give the reason: $(cat "$TMP/r1.err")"
echo "unbindable: $(cat "$TMP/r1.err")"
[ "$(count_log d "generation 2")" -eq 0 ] ||
  fail "a generation was started: $(grep "generation 2" "$TMP/d.log")"
[ -S "$TMP/a.sock" ] || fail "listener a's socket is gone"
sim 0 one run --socket "$TMP/a.sock" --image "$TMP/mem" --vcpus 2
verified one $PAGES
ctl "$CTL" --json list >"$TMP/l1.json"
[ "$(json '[(l["name"], l["accepting"]) for l in j["listeners"]]' <"$TMP/l1.json")" = "[('a', True)]" ] ||
  fail "listeners after the failed reload: $(cat "$TMP/l1.json")"

# ---- 2: a reload during a reload ----
mkfifo "$TMP/fifo"
conf "$TMP/a.sock" ", { name = \"b\"; socket = \"$TMP/b.sock\";
    source = { plugin = \"file\"; path = \"$TMP/fifo\"; }; }"
ctl "$CTL" reload >"$TMP/r2.out" || fail "first reload: $(cat "$TMP/r2.out")"
grep -q "configuration generation 2" "$TMP/r2.out" ||
  fail "the first reload does not say its generation: $(cat "$TMP/r2.out")"
conf "$TMP/a.sock" ", { name = \"b\"; socket = \"$TMP/b.sock\";
    source = { plugin = \"mmap\"; path = \"$TMP/mem\"; }; },
  { name = \"c\"; socket = \"$TMP/c.sock\";
    source = { plugin = \"file\"; path = \"$TMP/mem\"; }; }"
ctl "$CTL" reload >"$TMP/r3.out" 2>&1 ||
  fail "a reload during a reload was refused: $(cat "$TMP/r3.out")"
grep -q "generation 2 is still loading; this reload runs once it is done" \
  "$TMP/r3.out" || fail "the second reload does not say it waits: $(cat "$TMP/r3.out")"
echo "second reload: $(cat "$TMP/r3.out")"
[ "$(count_log d "generation 2 \(.*\) is live")" -eq 0 ] ||
  fail "generation 2 got ready while held"
# Let the first reload's worker go on (it fails: a FIFO is no image).
exec 3>"$TMP/fifo"
exec 3>&-
wait_log d "reloading $CONF as configuration generation 3" 20
wait_log d "configuration generation 3 \($CONF\) is live" 20
until_true 10 ctl "$CTL" list >/dev/null
ctl "$CTL" --json list >"$TMP/l2.json"
[ "$(json 'sorted(l["name"] for l in j["listeners"] if l["accepting"])' <"$TMP/l2.json")" = "['a', 'b', 'c']" ] ||
  fail "listeners after the queued reload: $(cat "$TMP/l2.json")"
sim 0 b run --socket "$TMP/b.sock" --image "$TMP/mem" --vcpus 2
verified b $PAGES
sim 0 c run --socket "$TMP/c.sock" --image "$TMP/mem" --vcpus 2
verified c $PAGES
sim 0 a run --socket "$TMP/a.sock" --image "$TMP/mem"
verified a $PAGES
stop_daemons
