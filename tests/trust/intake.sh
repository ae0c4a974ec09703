#!/bin/bash
# What a hostile peer can make the daemon spend, each bounded:
#   max_sessions = 1 counts connections still in their handshake: of 50
#     half-open connections 1 is held and 49 refused, and the refusals
#     log at most LOG_LIMIT_BURST lines, then "N similar messages
#     suppressed";
#   a VMM that turns on fork events and forks 100 times leaves the
#     worker's descriptor count flat, and its 1024 UNMAP events log at
#     most LOG_LIMIT_BURST lines per 10 s;
#   a blocking userfaultfd is refused with the reason;
#   a ctl request with bytes that are not UTF-8 gets an answer that is;
#   with descriptors exhausted (a low RLIMIT_NOFILE) the listener and the
#     control socket stop accepting for a while instead of spinning, log
#     it once, and accept again once descriptors are freed.
. "$(dirname "$0")/common.sh"
command -v prlimit >/dev/null || fail "prlimit (util-linux) is needed"
BURST=20 # LOG_LIMIT_BURST in core/log.h

sim 0 img mkimage "$TMP/mem" --size 4M --seed 73
CTL=$TMP/ctl.sock
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = "$CTL"; };
listeners = (
  { name = "one"; socket = "$TMP/one.sock"; max_sessions = 1;
    handshake_timeout = "60s";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; },
  { name = "vm"; socket = "$TMP/vm.sock";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
start_daemon d "$TMP/one.sock" --config "$TMP/d.conf"
D=$(daemon_pid)
W=$(wait_worker "$D")
wait_log d "worker $W ready"

# ---- max_sessions = 1 with 50 half-open connections ----
python3 - "$TMP/one.sock" >"$TMP/halfopen.out" <<'PY' &
import select, socket, sys, time
conns = []
for _ in range(50):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    conns.append(s)
def closed(s):
    r, _, _ = select.select([s], [], [], 0)
    return bool(r) and s.recv(1, socket.MSG_DONTWAIT) == b""
open_ = conns
for _ in range(200):  # up to 10 s for the daemon to answer all 50
    open_ = [s for s in open_ if not closed(s)]
    if len(open_) <= 1:
        break
    time.sleep(0.05)
time.sleep(1)  # and the one held stays held
open_ = [s for s in open_ if not closed(s)]
print("held %d refused %d" % (len(open_), 50 - len(open_)), flush=True)
time.sleep(30)
PY
HALF=$!
until_true 20 grep -q held "$TMP/halfopen.out" ||
  fail "the half-open connections got no answer"
[ "$(cat "$TMP/halfopen.out")" = "held 1 refused 49" ] ||
  fail "max_sessions = 1 with 50 half-open connections: $(cat "$TMP/halfopen.out"), expected held 1 refused 49"
refused=$(ctl "$CTL" --json stats |
  json '[l["refused_peers"] for l in j["listeners"] if l["name"] == "one"][0]')
[ "$refused" = 49 ] || fail "refused_peers is $refused, expected 49"
lines=$(count_log d "listener one: refused .*max_sessions reached")
[ "$lines" -eq $BURST ] ||
  fail "49 refusals logged $lines lines, expected $BURST (rate-limited)"
echo "half-open: held 1, refused 49, logged $lines lines"
# In the next window of the limit, the next refusal says what was left out.
sleep 10
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(1)' \
  "$TMP/one.sock"
wait_log d "listener one: refused .*max_sessions reached \(29 similar messages suppressed\)"
kill $HALF 2>/dev/null || true
wait $HALF 2>/dev/null || true

# ---- fork events: every descriptor they deliver is closed ----
fds_before=$(ls /proc/"$W"/fd | wc -l)
"$PEER" forker "$TMP/vm.sock" "$TMP/mem" 100 5 >"$TMP/forker.out" \
  2>"$TMP/forker.err" &
FORKER=$!
until_true 60 grep -q "hung up" "$TMP/forker.out" ||
  fail "the forking VM did not finish: $(cat "$TMP/forker.out" "$TMP/forker.err")"
grep -q "forked 100" "$TMP/forker.out" || fail "the peer did not fork 100 times"
grep -q "verified 1024 pages" "$TMP/forker.out" || fail "pages not verified"
grep -q "unmapped 1024" "$TMP/forker.out" || fail "pages not unmapped"
fds_during=$(ls /proc/"$W"/fd | wc -l) # its session is still live
[ "$fds_during" -le $((fds_before + 8)) ] ||
  fail "worker descriptors $fds_before -> $fds_during after 100 forks"
flines=$(count_log d "the VMM forked with fork events on")
# A limit's window is 10 s from its first line: a slow run may see two.
[ "$flines" -le $((2 * BURST)) ] && [ "$flines" -ge 1 ] ||
  fail "100 forks logged $flines lines, expected 1 to $((2 * BURST))"
wait_count d "session [0-9]+: the VMM unmapped" 1
ulines=$(count_log d "the VMM unmapped")
[ "$ulines" -le $((2 * BURST)) ] && [ "$ulines" -ge 1 ] ||
  fail "1024 UNMAP events logged $ulines lines, expected 1 to $((2 * BURST))"
wait $FORKER || fail "the forking VM failed"
echo "fork events: worker descriptors $fds_before -> $fds_during, $flines log lines; unmap: $ulines"

# ---- a blocking userfaultfd ----
"$PEER" blocking "$TMP/vm.sock" "$TMP/mem" >"$TMP/blocking.out" \
  2>"$TMP/blocking.err" || fail "blocking uffd: $(cat "$TMP/blocking.err")"
wait_log d "closing connection from pid [0-9]+ uid 0: the userfaultfd is blocking"

# ---- ctl errors quote bytes that are not UTF-8 ----
python3 - "$CTL" <<'PY' || fail "ctl echoed bytes that are not UTF-8"
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"cmd":"li\xffst\xc3"}\n')
ans = b""
while not ans.endswith(b"\n"):
    b = s.recv(4096)
    if not b:
        break
    ans += b
ans.decode("utf-8")  # raises if not UTF-8
assert b"\\\\xff" in ans, ans
print("ctl:", ans.decode().strip())
PY
stop_daemons

# ---- descriptors exhausted ----
cat >"$TMP/low.conf" <<CONF
uffdkit = { control_socket = "$TMP/lowctl.sock"; };
listeners = (
  { name = "low"; socket = "$TMP/low.sock"; handshake_timeout = "60s";
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
prlimit --nofile=48:48 "$UFFDKIT" --config "$TMP/low.conf" >"$TMP/low.log" 2>&1 &
DAEMON_PIDS+=($!)
L=$!
wait_for_socket "$TMP/low.sock"
wait_log low "worker [0-9]+ ready"
python3 - "$TMP/low.sock" >"$TMP/hold.out" <<'PY' &
import socket, sys, time
conns = []
for _ in range(80):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    conns.append(s)
print("connected", flush=True)
sys.stdin.close()
time.sleep(float(8))
PY
HOLD=$!
until_true 20 grep -q connected "$TMP/hold.out" || fail "could not connect 80"
wait_log low "Too many open files" # the listener met the limit
timeout 5 "$UFFDKIT" ctl --socket "$TMP/lowctl.sock" list >/dev/null 2>&1 &
CTLPID=$!
sleep 1
ticks() { awk '{print $14 + $15}' /proc/"$L"/stat; }
t0=$(ticks)
sleep 3
t1=$(ticks)
# Spinning on accept takes every tick it can get (100 a second).
[ $((t1 - t0)) -lt 60 ] ||
  fail "with descriptors exhausted the supervisor used $((t1 - t0)) ticks in 3 s"
[ "$(count_log low "listener low: cannot accept")" -eq 1 ] ||
  fail "the exhaustion was logged $(count_log low "listener low: cannot accept") times"
[ "$(count_log low "control socket: cannot accept")" -le 1 ] ||
  fail "the control socket logged the exhaustion more than once"
[ "$(count_log low "(listener low|control socket): accept: ")" -eq 0 ] ||
  fail "accept failures logged one by one"
wait_log low "listener low: cannot accept: Too many open files"
echo "exhausted: $((t1 - t0)) ticks in 3 s, logged once"
wait $CTLPID 2>/dev/null || true
wait $HOLD 2>/dev/null || true # its connections close: descriptors free up
sim 0 after-exhaustion run --socket "$TMP/low.sock" --image "$TMP/mem" \
  --timeout 60
verified after-exhaustion 1024
wait_log low "listener low: accepting again"
stop_daemons
