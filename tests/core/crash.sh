# The worker dies (SIGKILL) in the middle of restores; the supervisor keeps
# every socket and uffd, starts a new worker and hands the sessions back,
# and the VMs never see a wrong byte: faults lost in flight are raised
# again, pages discarded by the balloon stay zeros.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

PAGES=16384
sim 0 img mkimage "$TMP/mem" --size 64M --seed 17
cat >"$TMP/uffdkit.conf" <<CONF
uffdkit = { worker_restart_delay = "100ms"; };
listeners = (
  { name = "mm"; socket = "$TMP/mm.sock";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; },
  { name = "ff"; socket = "$TMP/ff.sock";
    source = { plugin = "file"; path = "$TMP/mem"; }; }
);
CONF
# fresh NAME: a new daemon logging to $TMP/NAME.log (each scenario gets its
# own, so the back-off of quick deaths, up to 5 s, starts from 100 ms).
LOG=
fresh() {
  if [ -n "$LOG" ]; then
    check_deaths
    stop_daemons
  fi
  LOG=$1
  deaths=0
  start_daemon "$LOG" "$TMP/mm.sock" --config "$TMP/uffdkit.conf"
  wait_for_socket "$TMP/ff.sock"
  D=$(daemon_pid)
  W=$(wait_worker "$D")
  wait_log "$LOG" "worker $W ready"
}

# check_deaths: every death of this daemon's worker was logged and
# followed by a new worker.
check_deaths() {
  local died ready
  died=$(count_log "$LOG" "worker ([0-9]+ )?died \(signal 9\); restarting")
  ready=$(count_log "$LOG" "ready; handed back")
  [ "$died" -eq $deaths ] || fail "$LOG: $died deaths logged, $deaths caused"
  [ "$ready" -eq $deaths ] ||
    fail "$LOG: $ready restarts logged, $deaths expected"
}

# kill_worker SIM_PID: SIGKILLs the current worker while the simulator
# SIM_PID still runs, then waits for the new worker to take the sessions
# back.
kill_worker() {
  local sim=$1 old=$W
  kill -0 "$sim" 2>/dev/null ||
    fail "the restore finished before the worker could be killed"
  kill -KILL "$old"
  deaths=$((deaths + 1))
  echo "killed worker $old"
  for ((i = 0; i < 200; i++)); do
    [ "$(count_log "$LOG" "died \(signal 9\); restarting it in [0-9]+ ms")" -eq $deaths ] &&
      break
    sleep 0.05
  done
  [ "$(count_log "$LOG" "died \(signal 9\); restarting it in [0-9]+ ms")" -eq $deaths ] ||
    fail "death $deaths of the worker was not logged"
  W=$(wait_worker "$D" "$old")
  wait_log "$LOG" "worker $W ready; handed back [0-9]+ live sessions" 15
  echo "  $(grep -E "worker $W ready" "$TMP/$LOG.log" | sed 's/.*info: //')"
}

# crash_run NAME KILL_TIMES SIM_ARGS...: a slow restore (4 vCPUs, 200 us
# between touches) with the worker killed at 0.4 s and then every 0.5 s.
crash_run() {
  local name=$1 kills=$2 rc=0 k
  shift 2
  "$SIM" run --image "$TMP/mem" --vcpus 4 --delay-us 200 --timeout 60 "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" &
  local pid=$!
  wait_log "$LOG" "session [0-9]+: pid $pid "
  sleep 0.4
  for ((k = 0; k < kills; k++)); do
    kill_worker $pid
    sleep 0.5
  done
  wait $pid || rc=$?
  check_sim 0 "$name" $rc
  verified "$name" $PAGES
  wait_log "$LOG" "\(pid $pid\) on [a-z]+ ended"
}

fresh plain
crash_run once 1 --socket "$TMP/mm.sock"
crash_run twice 2 --socket "$TMP/mm.sock" --regions 3 --style 1.1

# With the balloon discarding ranges while the vCPUs run.
fresh balloon
crash_run balloon 1 --socket "$TMP/mm.sock" --regions 3 --balloon 8M:16M \
  --balloon 40M:8M --balloon-during
expect_field balloon zero_checked $((24 << 8))
crash_run balloon2 2 --socket "$TMP/mm.sock" --style 1.7 \
  --balloon 0:32M --balloon-during
expect_field balloon2 zero_checked $((32 << 8))

# A source read with pread into the worker's buffers, not mapped.
fresh file
crash_run file 2 --socket "$TMP/ff.sock" --regions 2

# Two VMs on two listeners through one death.
fresh pair
"$SIM" run --image "$TMP/mem" --vcpus 2 --delay-us 200 --timeout 60 \
  --socket "$TMP/mm.sock" >"$TMP/pair1.out" 2>"$TMP/pair1.err" &
p1=$!
"$SIM" run --image "$TMP/mem" --vcpus 2 --delay-us 200 --timeout 60 \
  --socket "$TMP/ff.sock" --style 1.1 >"$TMP/pair2.out" 2>"$TMP/pair2.err" &
p2=$!
wait_log "$LOG" "session [0-9]+: pid $p1 "
wait_log "$LOG" "session [0-9]+: pid $p2 "
sleep 0.4
kill_worker $p1
kill -0 $p2 2>/dev/null || fail "the second VM finished before the kill"
grep -E -q "worker $W ready; handed back 2 live sessions" "$TMP/$LOG.log" ||
  fail "the new worker did not get both sessions back"
rc1=0 rc2=0
wait $p1 || rc1=$?
wait $p2 || rc2=$?
check_sim 0 pair1 $rc1
check_sim 0 pair2 $rc2
verified pair1 $PAGES
verified pair2 $PAGES

check_deaths

# After all that, a fresh restore, then a clean stop.
sim 0 after run --image "$TMP/mem" --socket "$TMP/mm.sock" --vcpus 2
verified after $PAGES
stop_daemons
