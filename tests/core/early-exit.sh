# A VM that exits before the daemon accepted its connection (the handshake
# waits in the socket's backlog while the supervisor is busy; here it is
# stopped with SIGSTOP).  Its session must still end, and must not hold a
# slot of max_sessions forever.  With 1.12 the hang-up says so; with 1.1 to
# 1.11 the socket is closed anyway, so only the process can tell, and it is
# already gone when the supervisor looks for it.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 8M --seed 11
cat >"$TMP/uffdkit.conf" <<CONF
listeners = (
  { name = "a"; socket = "$TMP/a.sock"; max_sessions = 1;
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
start_daemon d "$TMP/a.sock" --config "$TMP/uffdkit.conf"
D=$(daemon_pid)
wait_log d "worker [0-9]+ ready"

for style in 1.12 1.1; do
  # The VM connects, sends its handshake, touches nothing and exits, all
  # while the supervisor is stopped.
  kill -STOP "$D"
  rc=0
  "$SIM" run --socket "$TMP/a.sock" --image "$TMP/mem" --style $style \
    --touch-percent 0 --timeout 5 >"$TMP/early-$style.out" \
    2>"$TMP/early-$style.err" &
  pid=$!
  wait $pid || rc=$?
  kill -CONT "$D"
  check_sim 0 "early-$style" $rc
  wait_log d "session [0-9]+: pid $pid "
  for ((i = 0; i < 100; i++)); do
    grep -E -q "\(pid $pid\) on a ended" "$TMP/d.log" && break
    sleep 0.05
  done
  grep -E -q "\(pid $pid\) on a ended" "$TMP/d.log" ||
    fail "style $style: the session of pid $pid, which exited before its connection was accepted, never ended (core/supervisor.c on_accept: pidfd_open of an exited pid fails and the session goes on without a pidfd; with style 1.1 nothing else can tell it ended)"
  echo "style $style: the session of the exited VM ended"
  # Its slot of max_sessions (1) is free again: a full restore is served.
  sim 0 "after-$style" run --socket "$TMP/a.sock" --image "$TMP/mem" \
    --style $style --timeout 10
  verified "after-$style" 2048
done
stop_daemons
