#!/bin/bash
# A restore's data files are pinned for as long as the restore lives, not
# for its configuration generation's life:
#   1  pins survive a worker crash: a restore served, its image then
#      replaced by rename and the worker killed, still restores the bytes
#      it was served with;
#   2  50 restores of distinct snapshots, served (all live at once: the
#      daemon holds their files, but the worker starts no thread for
#      restores waiting for their VM) and ended (stop, expiry, a VM's
#      one-shot restore), leave the supervisor and the worker with as
#      many open descriptors as before them, within a small constant.
. "$(dirname "$0")/common.sh"

N=50
# fds PID: how many descriptors PID has open.
fds() {
  ls "/proc/$1/fd" | wc -l
}
# threads PID: how many threads PID has.
threads() {
  awk '/^Threads:/ { print $2 }' "/proc/$1/status"
}

for ((i = 0; i <= N; i++)); do
  build "b$i" $((100 + i)) 16
done
build big 7 1024
template_conf "$TMP/d.conf" 'max_restores = 100;'
start_daemon d "$CTL" --config "$TMP/d.conf" --plugin-dir "$PLUGINS"
D=$(daemon_pid)
W=$(wait_worker "$D")
watch_start all

# ---- 1: a worker crash keeps the files a restore was served from ----
sctl serve sandbox build_id=big sandbox_id=crash --id crash >/dev/null
cp "$STORE/big/mem" "$TMP/big.orig"
sim 0 other mkimage "$TMP/other" --size 4M --seed 8
mv "$TMP/other" "$STORE/big/mem"
kill -KILL "$W"
W=$(new_worker "$D" "$W")
wait_log d "worker $W ready"
sim 0 crashvm run --socket "$TMP/sb/crash.sock" --image "$TMP/big.orig" \
  --timeout 60
verified crashvm 1024
wait_event all '"event":"removed","id":"crash"'

# ---- 2: descriptors come back to where they were ----
# One restore served and ended first: what stays open for good (the
# plugin's own, the log) is in the baseline.
sctl serve sandbox build_id=b0 sandbox_id=warm --id warm >/dev/null
sctl stop warm >/dev/null
wait_event all '"event":"removed","id":"warm"'
S0=$(fds "$D")
W0=$(fds "$W")
T0=$(threads "$W")

for ((i = 1; i <= N; i++)); do
  extra=()
  [ $((i % 5)) -eq 1 ] && extra=(--expiry 1)
  sctl serve sandbox "build_id=b$i" "sandbox_id=r$i" --id "r$i" \
    "${extra[@]}" >/dev/null || fail "serve r$i"
done
S1=$(fds "$D")
W1=$(fds "$W")
T1=$(threads "$W")
[ "$T1" -le $((T0 + 2)) ] ||
  fail "the worker has $T1 threads with $N idle restores ($T0 before)"
[ "$W1" -ge $((W0 + N)) ] ||
  fail "the worker holds $W1 descriptors with $N restores live (baseline" \
    "$W0): is the test serving anything?"
for ((i = 1; i <= N; i++)); do
  case $((i % 5)) in
    1) ;; # expires
    2) sim 0 "vm$i" run --socket "$TMP/sb/r$i.sock" \
         --image "$STORE/b$i/mem" --timeout 30
       verified "vm$i" 16 ;;
    *) sctl stop "r$i" >/dev/null ;;
  esac
done
for ((i = 1; i <= N; i++)); do
  wait_event all "\"event\":\"removed\",\"id\":\"r$i\"" 30
done
S2=$(fds "$D")
W2=$(fds "$W")
echo "supervisor: $S0 before, $S1 with $N restores, $S2 after;" \
  "worker: $W0, $W1, $W2"
[ "$S2" -le $((S0 + 3)) ] ||
  fail "the supervisor keeps $((S2 - S0)) descriptors of $N ended restores" \
    "($S0 before, $S2 after): $(ls -l "/proc/$D/fd" | tail -n 20)"
[ "$W2" -le $((W0 + 3)) ] ||
  fail "the worker keeps $((W2 - W0)) descriptors of $N ended restores" \
    "($W0 before, $W2 after): $(ls -l "/proc/$W/fd" | tail -n 20)"
