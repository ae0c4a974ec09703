# Functions shared by the simulator's own tests; sourced after
# tests/lib/functions.sh.
REF=$BUILD/bin/ref-handler
[ -x "$SIM" ] || fail "$SIM is missing: build the uffdkit-sim target"
[ -x "$REF" ] || fail "$REF is missing: build the ref-handler target"

# start_ref LOGNAME SOCKET MEMFILE: runs ref-handler in the background.
start_ref() {
  local name=$1 sock=$2 mem=$3
  "$REF" "$sock" "$mem" >"$TMP/$name.log" 2>&1 &
  DAEMON_PIDS+=($!)
  wait_for_socket "$sock"
}

# sim RC NAME ARGS...: runs uffdkit-sim ARGS, stdout to $TMP/NAME.out and
# stderr to $TMP/NAME.log, and fails unless it exits with RC.
sim() {
  local want=$1 name=$2 rc=0
  shift 2
  "$SIM" "$@" >"$TMP/$name.out" 2>"$TMP/$name.log" || rc=$?
  if [ "$rc" -ne "$want" ]; then
    cat "$TMP/$name.out" "$TMP/$name.log" >&2
    fail "$name: uffdkit-sim $* exited with $rc, expected $want"
  fi
  [ -s "$TMP/$name.out" ] && echo "$name: $(cat "$TMP/$name.out")"
  return 0
}

# field NAME KEY: a key=value of the summary line in $TMP/NAME.out.
field() {
  grep -o "\b$2=[^ ]*" "$TMP/$1.out" | cut -d= -f2
}

# expect_field NAME KEY VALUE
expect_field() {
  local got
  got=$(field "$1" "$2")
  [ "$got" = "$3" ] || fail "$1: $2=$got, expected $3"
}

# verified NAME PAGES: the run touched PAGES pages, all correct.
verified() {
  expect_field "$1" pages "$2"
  expect_field "$1" mismatches 0
}
