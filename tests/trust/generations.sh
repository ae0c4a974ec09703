#!/bin/bash
# Configuration generations: a live VM keeps what it started with.
# Listener a serves image A; a slow restore starts against it.  The config
# is edited so that a serves image B, and SIGHUP: the same worker serves
# both generations (no second worker), and a second slow restore starts on
# generation 2.  The worker is then killed (SIGKILL) while both restores
# run: the next worker starts both generations again and takes both
# sessions back; the first must still get A's bytes to the end and the
# second B's, while a new VM after the reload gets B.  Then garbage is
# appended to the config and SIGUSR2: the upgrade carries on with the
# generations handed over, with one worker for both, so the live VM still
# gets A and new VMs still get B, and `uffdkit ctl reload` (and SIGHUP)
# now fail naming the file.
. "$(dirname "$0")/common.sh"

PAGES=4096
sim 0 imgA mkimage "$TMP/A" --size 16M --seed 41
sim 0 imgB mkimage "$TMP/B" --size 16M --seed 42
cmp -s "$TMP/A" "$TMP/B" && fail "images A and B are the same"
SOCK=$TMP/a.sock
CTL=$TMP/ctl.sock
CONF=$TMP/d.conf
serve() {
  cat >"$CONF" <<CONF
uffdkit = { control_socket = "$CTL"; worker_restart_delay = "50ms"; };
listeners = (
  { name = "a"; socket = "$SOCK";
    source = { plugin = "mmap"; path = "$1"; }; }
);
CONF
}
serve "$TMP/A"
start_daemon d "$SOCK" --config "$CONF"
D=$(daemon_pid)
W1=$(wait_worker "$D")
wait_log d "worker $W1 ready"
wait_for_socket "$CTL"

# The first VM: image A, one vCPU, 3 ms between touches (about 13 s, so
# that it outlasts every step below also under a sanitizer on a busy host).
"$SIM" run --socket "$SOCK" --image "$TMP/A" --delay-us 3000 --timeout 120 \
  >"$TMP/first.out" 2>"$TMP/first.err" &
FIRST=$!
wait_log d "session [0-9]+: pid $FIRST "
sleep 0.3

# ---- reload: a now serves B ----
serve "$TMP/B"
kill -HUP "$D"
wait_log d "reloading $CONF as configuration generation 2"
wait_log d "configuration generation 2 \($CONF\) is live"
wait_log d "worker $W1 ready \(configuration generation 2\)"
[ "$(workers_of "$D" | wc -l)" -eq 1 ] ||
  fail "the reload started another worker: $(workers_of "$D" | tr '\n' ' ')"
[ "$(count_log d "generation 1 has no sessions left")" -eq 0 ] ||
  fail "generation 1 was retired with a live session"

# A second slow VM, on generation 2 (image B).
"$SIM" run --socket "$SOCK" --image "$TMP/B" --delay-us 3000 --timeout 120 \
  >"$TMP/second2.out" 2>"$TMP/second2.err" &
SECOND=$!
wait_log d "session [0-9]+: pid $SECOND "
sleep 0.3

# ---- the worker dies with sessions on both generations ----
still_running $FIRST "the first VM"
still_running $SECOND "the VM on generation 2"
kill -KILL "$W1"
wait_log d "worker $W1 died \(signal 9\); restarting it in [0-9]+ ms, its 2 sessions kept"
W3=$(new_worker "$D" "$W1")
wait_log d "worker $W3 ready; handed back 1 live sessions \(configuration generation 1\)"
wait_log d "worker $W3 ready; handed back 1 live sessions \(configuration generation 2\)"
[ "$(workers_of "$D" | wc -l)" -eq 1 ] ||
  fail "after the crash the daemon has workers $(workers_of "$D" | tr '\n' ' ')"
echo "worker $W1 killed with sessions on generations 1 and 2: $W3 took both back"

# A new VM gets B.
sim 0 second run --socket "$SOCK" --image "$TMP/B" --vcpus 2
verified second $PAGES

# ---- a broken config file, then an upgrade ----
still_running $FIRST "the first VM"
echo 'this is not a configuration {' >>"$CONF"
kill -USR2 "$D"
wait_log d "carrying on with the configuration handed over"
wait_log d "uffdkit\[$D\] info: took over 2 live sessions"
took=$(line_of d "took over")
# One worker serves both generations again: 1 for the live VMs, 2 for new
# ones.
wait_count d "uffdkit\[$D\] info: worker [0-9]+ ready; handed back 1 live sessions \(configuration generation 1\)" 2 20
wait_count d "uffdkit\[$D\] info: worker [0-9]+ ready; handed back 1 live sessions \(configuration generation 2\)" 2 20
[ "$(workers_of "$D" | wc -l)" -eq 1 ] ||
  fail "after the upgrade the daemon has workers $(workers_of "$D" | tr '\n' ' ')"
echo "upgrade with a broken file: one worker serves both generations"

# New VMs still get B, from the configuration handed over.
sim 0 third run --socket "$SOCK" --image "$TMP/B" --vcpus 2 --style 1.7
verified third $PAGES

# A reload reads the file, which is now broken: refused, naming it.
rc=0
ctl "$CTL" reload >"$TMP/reload.out" 2>"$TMP/reload.err" || rc=$?
[ $rc -eq 1 ] || fail "ctl reload of a broken file exited $rc: $(cat "$TMP/reload.out")"
grep -q "^uffdkit ctl: .*$CONF" "$TMP/reload.err" ||
  fail "ctl reload does not name $CONF: $(cat "$TMP/reload.err")"
echo "ctl reload: $(cat "$TMP/reload.err")"
kill -HUP "$D"
wait_log d "error: reload: $CONF"
sim 0 fourth run --socket "$SOCK" --image "$TMP/B"
verified fourth $PAGES

# ---- both slow VMs: every byte of their image to the end ----
still_running $FIRST "the first VM"
rc=0
wait $FIRST || rc=$?
check_sim 0 first $rc
verified first $PAGES
rc=0
wait $SECOND || rc=$?
check_sim 0 second2 $rc
verified second2 $PAGES
wait_log d "\(pid $FIRST\) on a ended"
# Its generation is retired once it has no session.
wait_log d "configuration generation 1 has no sessions left"
stop_daemons
