#!/bin/bash
# Per-restore listeners have the guarantees of configured ones.  With two
# restores live (each VM faulting slowly) and a third served but not yet
# connected:
#   1  the worker is killed (SIGKILL): a new worker starts the restores'
#      sources again and takes both sessions over;
#   2  SIGHUP with the template changed to another store: the live
#      restores keep their template, a new serve uses the new one;
#   3  SIGUSR2: the upgraded daemon (same pid) keeps the sessions, the
#      restores (list) and the third one's socket, where a VM then
#      restores.
# Every VM ends with every byte right.
. "$(dirname "$0")/common.sh"

PAGES=2048
build b1 61 $PAGES
build b2 62 $PAGES
mkdir -p "$TMP/bin"
EXE=$TMP/bin/uffdkit
cp "$UFFDKIT" "$EXE"
template_conf "$TMP/d.conf"
UFFDKIT=$EXE start_daemon d "$CTL" --config "$TMP/d.conf" \
  --plugin-dir "$PLUGINS"
D=$(daemon_pid)
W=$(wait_worker "$D")
watch_start all

sctl serve sandbox build_id=b1 sandbox_id=vm1 --id vm1 >/dev/null
sctl serve sandbox build_id=b2 sandbox_id=vm2 --id vm2 >/dev/null
# About 12 s each: through every step below.
for i in 1 2; do
  "$SIM" run --socket "$TMP/sb/vm$i.sock" --image "$STORE/b$i/mem" \
    --delay-us 6000 --timeout 120 >"$TMP/vm$i.out" 2>"$TMP/vm$i.err" &
  eval "VM$i=$!"
done
wait_event all '"event":"ready","id":"vm1"'
wait_event all '"event":"ready","id":"vm2"'
sctl serve sandbox build_id=b1 sandbox_id=later --id later >/dev/null

# ---- 1: the worker is killed ----
kill -KILL "$W"
W2=$(new_worker "$D" "$W")
wait_log d "worker $W2 ready; handed back 2 live sessions"
wait_count d "listener (vm1|vm2|later): mmap" 6 20
still_running $VM1 "VM 1"
still_running $VM2 "VM 2"

# ---- 2: reload with the template pointing at another store ----
mkdir -p "$TMP/store2/b1"
sim 0 img-other mkimage "$TMP/store2/b1/mem" --size $((PAGES * 4))K --seed 63
sed -i "s|$STORE/{build_id}|$TMP/store2/{build_id}|" "$TMP/d.conf"
kill -HUP "$D"
wait_log d "configuration generation 2 .* is live"
sctl serve sandbox build_id=b1 sandbox_id=new --id new >/dev/null
sim 0 new run --socket "$TMP/sb/new.sock" --image "$TMP/store2/b1/mem" \
  --timeout 60
verified new $PAGES
[ "$(event all new listening 'e["generation"]')" = 2 ] || fail "new gen"
[ "$(event all vm1 listening 'e["generation"]')" = 1 ] || fail "vm1 gen"

# ---- 3: upgrade ----
kill -USR2 "$D"
wait_log d "took over 2 live sessions" 30
kill -0 "$D" || fail "the daemon is gone after the upgrade"
still_running $VM1 "VM 1"
sctl --json list >"$TMP/up.json"
[ "$(json 'sorted(r["id"] for r in j["restores"])' <"$TMP/up.json")" = "['later', 'vm1', 'vm2']" ] ||
  fail "restores after the upgrade: $(cat "$TMP/up.json")"
[ "$(json '[r["generation"] for r in sorted(j["restores"], key=lambda r: r["id"])]' <"$TMP/up.json")" = "[1, 1, 1]" ] ||
  fail "generations after the upgrade: $(cat "$TMP/up.json")"
sim 0 later run --socket "$TMP/sb/later.sock" --image "$STORE/b1/mem" \
  --timeout 60
verified later $PAGES
for i in 1 2; do
  rc=0
  eval "wait \$VM$i" || rc=$?
  check_sim 0 "vm$i" $rc
  verified "vm$i" $PAGES
done
sctl --json list >"$TMP/end.json"
until_true 20 test "$(sctl --json list | json 'len(j["restores"])')" = 0 ||
  fail "restores left: $(sctl --json list)"
echo "serve-survive: ok"
