# Functions shared by the prefetch tests (fault-around, working-set record
# and replay, background fill); sourced after tests/lib/functions.sh and
# tests/core/common.sh.
command -v python3 >/dev/null ||
  skip "python3 is needed to read working-set files and JSON"
# The interpreter itself, run directly from here on (a version manager's
# shim costs a few hundred milliseconds a call on a busy machine).
PYTHON=$(python3 -c 'import sys; print(sys.executable)')
WSET=("$PYTHON" "$(dirname "${BASH_SOURCE[0]}")/wset.py")
declare -A WSI=()
CTL=$TMP/ctl.sock
declare -A VM_PID=()
# Simulators started in the background (bg_vm): killed if the test stops
# early, before the daemons are (tests/lib/functions.sh's cleanup).
BG_VMS=()
stop_all() {
  local rc=$? p
  set +e
  for p in "${BG_VMS[@]}"; do
    kill -KILL "$p" 2>/dev/null
  done
  (exit $rc) # cleanup reads the test's status from $?
  cleanup
}
trap stop_all EXIT

# bg_vm NAME ARGS...: starts uffdkit-sim ARGS in the background, output in
# $TMP/NAME.out and $TMP/NAME.err, its pid in VM_PID[NAME]; finish_vm
# checks it.
bg_vm() {
  local name=$1
  shift
  "$SIM" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
  VM_PID[$name]=$!
  BG_VMS+=($!)
}

# reap_vm PID: waits for the simulator PID (started by bg_vm) and forgets
# it, so its pid, free for reuse, is never signalled; returns its status.
reap_vm() {
  local rc=0 p left=()
  wait "$1" || rc=$?
  for p in "${BG_VMS[@]}"; do
    [ "$p" = "$1" ] || left+=("$p")
  done
  BG_VMS=("${left[@]}")
  return $rc
}

# finish_vm RC NAME: waits for VM NAME (started by bg_vm) and checks it
# exited with RC.
finish_vm() {
  local rc=0
  reap_vm "${VM_PID[$2]}" || rc=$?
  check_sim "$1" "$2" "$rc"
}

# write_conf FILE LISTENER...: a config with the control socket $CTL and
# one listener on the mmap source per argument "NAME IMAGE SETTINGS...",
# listening on $TMP/NAME.sock.
write_conf() {
  local file=$1 sep="" l name image extra
  shift
  {
    echo "uffdkit = { control_socket = \"$CTL\"; };"
    echo "listeners = ("
    for l in "$@"; do
      name=${l%% *}
      l=${l#* }
      image=${l%% *}
      extra=${l#* }
      printf '%s  { name = "%s"; socket = "%s/%s.sock";\n' "$sep" "$name" \
        "$TMP" "$name"
      printf '    source = { plugin = "mmap"; path = "%s"; };\n    %s }' \
        "$image" "$extra"
      sep=$',\n'
    done
    printf '\n);\n'
  } >"$file"
}

# start_conf LOGNAME FILE: starts the daemon on config FILE and waits for
# every listener's socket.
start_conf() {
  local name=$1 file=$2 sock
  local socks=()
  mapfile -t socks < <(grep -o 'socket = "[^"]*"' "$file" | cut -d'"' -f2)
  start_daemon "$name" "${socks[0]}" --config "$file"
  for sock in "${socks[@]}"; do
    wait_for_socket "$sock"
  done
}

# vm RC NAME ARGS...: like sim (uffdkit-sim ARGS, checked to exit with RC),
# remembering the simulator's pid as VM_PID[NAME] so the daemon's log lines
# about its session can be found.
vm() {
  bg_vm "$2" "${@:3}"
  finish_vm "$1" "$2"
}

# ended LOG NAME: waits for the end of VM NAME's session in $TMP/LOG.log and
# sets SID and FAULTS from its line ("session SID (pid P) on L ended: F
# faults, C pages copied, Z zero pages").
ended() {
  local log=$1 pid=${VM_PID[$2]:?no VM named $2} line
  wait_log "$log" "session [0-9]+ \(pid $pid\) on [^ ]+ ended: " 30
  line=$(grep -E -m1 "session [0-9]+ \(pid $pid\) on [^ ]+ ended: " \
    "$TMP/$log.log")
  SID=$(sed -E 's/.*session ([0-9]+) \(pid.*/\1/' <<<"$line")
  # shellcheck disable=SC2034 # read by the tests
  FAULTS=$(sed -E 's/.* ended: ([0-9]+) faults.*/\1/' <<<"$line")
}

# prefetched LOG NAME: the pages VM NAME's session installed ahead of the
# guest, from its "working set replayed" line (waits for the session's end;
# nothing if it replayed nothing).
prefetched() {
  ended "$1" "$2"
  { grep -E "session $SID: working set replayed \(" "$TMP/$1.log" || true; } |
    sed -E 's/.*listed, ([0-9]+) installed ahead.*/\1/' | tail -1
}

# session_lines LOG NAME REGEX: how many lines of VM NAME's session (by its
# id) in $TMP/LOG.log match REGEX.
session_lines() {
  ended "$1" "$2"
  grep -E -c "session ${SID}[: ].*$3" "$TMP/$1.log" || true
}

# counter LISTENER KEY: a counter of uffdkit ctl --json stats (sessions that
# ended and live ones) for LISTENER.
counter() {
  "$UFFDKIT" ctl --socket "$CTL" --json stats | "$PYTHON" -c '
import json, sys
for l in json.load(sys.stdin)["listeners"]:
    if l["name"] == sys.argv[1]:
        print(int(l["counters"][sys.argv[2]]))
        break
else:
    sys.exit("no listener " + sys.argv[1])' "$1" "$2"
}

# live_sid LOG NAME: the session id of VM NAME (started by bg_vm), once
# the worker has logged its start in $TMP/LOG.log.
live_sid() {
  local re="session [0-9]+ \\(pid ${VM_PID[$2]}\\) on [^ ]+: [0-9]+ regions"
  wait_log "$1" "$re" 30
  grep -E -m1 "$re" "$TMP/$1.log" | sed -E 's/.*session ([0-9]+) .*/\1/'
}

# installed SID: pages_copied + zero_pages of live session SID (every page
# installed, whether for a fault, by the replay or by the fill), or -1 if
# it is not live.
installed() {
  "$UFFDKIT" ctl --socket "$CTL" --json list | "$PYTHON" -c '
import json, sys
for s in json.load(sys.stdin)["sessions"]:
    if s["id"] == int(sys.argv[1]):
        print(int(s["pages_copied"] + s["zero_pages"]))
        break
else:
    print(-1)' "$1"
}

# wait_installed SID PAGES SECONDS: waits until live session SID has
# installed PAGES pages, and fails unless it installed exactly that many.
wait_installed() {
  local end=$((SECONDS + $3)) got
  got=$(installed "$1")
  while [ "$got" -lt "$2" ] && [ $SECONDS -lt $end ]; do
    sleep 0.1
    got=$(installed "$1")
  done
  [ "$got" -eq "$2" ] ||
    fail "session $1: $got pages installed while the VM was held, not $2"
}

# wset_info FILE: reads working-set file FILE into WSI (page_size,
# source_size, n, distinct, first, last, ascending, identity: see wset.py
# show), failing unless it decodes.
wset_info() {
  local out kv
  out=$("${WSET[@]}" show "$1") || fail "$1 is not a valid working-set file"
  echo "$(basename "$1"): $out"
  WSI=()
  for kv in $out; do
    # shellcheck disable=SC2034 # read by the tests
    WSI[${kv%%=*}]=${kv#*=}
  done
}

# expect_le NAME A B / expect_lt NAME A B: numeric checks with a message.
# replayed_then_filled LOG NAME BEFORE: VM NAME (ended, its daemon logging
# to LOG) had pages installed by the replay, and the listener "both" counted
# more prefetched pages since BEFORE than the replay's: the fill ran after.
replayed_then_filled() {
  local log=$1 name=$2 before=$3 n after
  n=$(prefetched "$log" "$name")
  [ -n "$n" ] && [ "$n" -gt 0 ] || fail "$name: the replay installed nothing"
  after=$(counter both prefetched_pages)
  [ $((after - before)) -gt "$n" ] ||
    fail "$name: the fill installed nothing after the replay"
}

expect_le() {
  [ "$2" -le "$3" ] || fail "$1: $2 is more than $3"
}
expect_lt() {
  [ "$2" -lt "$3" ] || fail "$1: $2 is not less than $3"
}
