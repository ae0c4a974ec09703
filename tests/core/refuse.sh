# Peers the daemon must turn away, each with one log line saying why, while
# it keeps serving everyone else: malformed handshakes, a handshake without
# the uffd, regions that do not fit the source, a peer that sends nothing
# within handshake_timeout.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

# small is the first 32 MiB of big: a VM of big's size cannot be served
# from small.
sim 0 img mkimage "$TMP/big" --size 64M --seed 3
head -c 32M "$TMP/big" >"$TMP/small"
cat >"$TMP/uffdkit.conf" <<CONF
listeners = (
  { name = "a"; socket = "$TMP/a.sock"; handshake_timeout = "1s";
    source = { plugin = "mmap"; path = "$TMP/small"; }; }
);
CONF
start_daemon d "$TMP/a.sock" --config "$TMP/uffdkit.conf"
good=(run --socket "$TMP/a.sock" --image "$TMP/small" --timeout 60)

# refused NAME WHY SIM_ARGS...: the simulator's handshake must be refused
# (it sees the connection closed) and the log must hold exactly one line
# about its pid, naming WHY.
refused() {
  local name=$1 why=$2 rc=0
  shift 2
  "$SIM" run --socket "$TMP/a.sock" --image "$TMP/small" --expect-refused \
    --timeout 5 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  local pid=$!
  wait $pid || rc=$?
  check_sim 0 "$name" $rc
  wait_log d "closing connection from pid $pid "
  local lines
  lines=$(grep -c "closing connection from pid $pid " "$TMP/d.log" || true)
  [ "$lines" -eq 1 ] || fail "$name: $lines log lines about pid $pid, expected 1"
  grep "closing connection from pid $pid " "$TMP/d.log" | grep -q -F -- "$why" ||
    fail "$name: the log line does not say '$why': $(grep "pid $pid " "$TMP/d.log")"
  echo "$name: $(grep "closing connection from pid $pid " "$TMP/d.log" | sed 's/.*: closing/closing/')"
}

printf 'not json' >"$TMP/bad1"
refused notjson "handshake is not a JSON array" --raw-handshake "$TMP/bad1"
printf '[{"base_host_virt_addr":4096,"size":4096}]' >"$TMP/bad2"
refused nooffset "region 0: offset is missing" --raw-handshake "$TMP/bad2"
printf '[{"base_host_virt_addr":8192,"size":8192,"offset":0,"page_size":8192}]' \
  >"$TMP/bad3"
refused pagesize "page size 8192 is neither 4096 nor 2097152" \
  --raw-handshake "$TMP/bad3"
printf '[{"base_host_virt_addr":4096,"size":4096,"offset":0} x]' >"$TMP/bad4"
refused garbage "not valid JSON" --raw-handshake "$TMP/bad4"
refused nofd "handshake came without a file descriptor" --no-fd

# The same daemon still restores a good VM.
sim 0 good-after "${good[@]}" --vcpus 2
verified good-after 8192

# ---- regions larger than the source ----
# A slow good restore runs while a VM of 64 MiB asks for the 32 MiB source:
# the oversized one is refused, the good one never notices.
"$SIM" "${good[@]}" --vcpus 2 --delay-us 200 >"$TMP/alongside.out" \
  2>"$TMP/alongside.err" &
alongside=$!
wait_log d "session [0-9]+: pid $alongside "
"$SIM" run --socket "$TMP/a.sock" --image "$TMP/big" --expect-refused \
  --timeout 10 >"$TMP/oversized.out" 2>"$TMP/oversized.err" &
oversized=$!
rc=0
wait $oversized || rc=$?
check_sim 0 oversized $rc
kill -0 $alongside 2>/dev/null ||
  fail "the good restore ended before the oversized VM was refused: make it slower"
rc=0
wait $alongside || rc=$?
check_sim 0 alongside $rc
verified alongside 8192
wait_log d "\(pid $oversized\) on a: region 0 \[0, \+67108864\) lies outside the source's 33554432 bytes"
wait_log d "session [0-9]+ \(pid $oversized\) on a was refused by its source"
[ "$(count_log d "\(pid $alongside\) on a ended")" -eq 1 ] ||
  fail "the good session did not end exactly once"

# The same with three regions, only the last one past the end.
"$SIM" run --socket "$TMP/a.sock" --image "$TMP/big" --mem-size 36M \
  --regions 3 --expect-refused --timeout 10 >"$TMP/tail.out" \
  2>"$TMP/tail.err" &
tailpid=$!
rc=0
wait $tailpid || rc=$?
check_sim 0 tail $rc
wait_log d "\(pid $tailpid\) on a: region 2 .* lies outside the source's"

# ---- a peer that sends nothing is cut at handshake_timeout (1 s) ----
"$PEER" silent "$TMP/a.sock" 10 >"$TMP/silent.out" 2>"$TMP/silent.err" ||
  fail "the silent peer was not cut: $(cat "$TMP/silent.err")"
took=$(awk '{print $3}' "$TMP/silent.out")
awk -v t="$took" 'BEGIN { exit !(t >= 0.9 && t < 3) }' ||
  fail "the silent peer was cut after $took s, expected about 1 s"
echo "silent: closed after $took s"
wait_log d "no complete handshake before handshake_timeout"

# Two silent peers and a good restore at the same time: the good one is
# not held up by the others' timeouts.
"$PEER" silent "$TMP/a.sock" 10 >"$TMP/silent2.out" 2>&1 &
s2=$!
"$PEER" silent "$TMP/a.sock" 10 >"$TMP/silent3.out" 2>&1 &
s3=$!
sim 0 good-while-silent "${good[@]}" --style 1.1
verified good-while-silent 8192
wait $s2 || fail "second silent peer not cut"
wait $s3 || fail "third silent peer not cut"

stop_daemons

# ---- the listener's limits ----
cat >"$TMP/limits.conf" <<CONF
listeners = (
  { name = "l"; socket = "$TMP/l.sock"; max_sessions = 1; max_regions = 4;
    max_handshake_bytes = "4K";
    source = { plugin = "mmap"; path = "$TMP/small"; }; }
);
CONF
start_daemon lim "$TMP/l.sock" --config "$TMP/limits.conf"
lim=(run --socket "$TMP/l.sock" --image "$TMP/small")

# limited NAME WHY SIM_ARGS...: like refused, on this daemon.
limited() {
  local name=$1 why=$2 rc=0
  shift 2
  "$SIM" "${lim[@]}" --expect-refused --timeout 5 "$@" >"$TMP/$name.out" \
    2>"$TMP/$name.err" &
  local pid=$!
  wait $pid || rc=$?
  check_refused "$name" $rc
  wait_log lim "pid $pid .*$why"
  if grep -q "session [0-9]*: pid $pid " "$TMP/lim.log"; then
    fail "$name: a refused peer got a session"
  fi
  echo "$name: $(grep "pid $pid " "$TMP/lim.log" | sed 's/.*warn: //')"
}

limited regions5 "handshake has 5 regions, more than the 4 allowed" \
  --regions 5
{
  printf '['
  head -c 5000 /dev/zero | tr '\0' ' '
} >"$TMP/long"
limited long "handshake longer than max_handshake_bytes \(4096\)" \
  --raw-handshake "$TMP/long"
limited notuffd "the descriptor sent is not a userfaultfd" --no-fd \
  --extra-fds 1
# Four regions is the limit, not past it; extra descriptors are closed; a
# handshake in two sends is read to its end.
sim 0 regions4 "${lim[@]}" --regions 4 --extra-fds 3 --split-send 10
verified regions4 8192
# One live session is max_sessions: a second VM is turned away meanwhile.
"$SIM" "${lim[@]}" --hold 3 >"$TMP/holder.out" 2>"$TMP/holder.err" &
holder=$!
wait_log lim "session [0-9]+: pid $holder "
limited second "uid 0 gid 0: max_sessions reached"
rc=0
wait $holder || rc=$?
check_sim 0 holder $rc
verified holder 8192
wait_log lim "\(pid $holder\) on l ended"
sim 0 third "${lim[@]}" --style 1.7
verified third 8192
stop_daemons
