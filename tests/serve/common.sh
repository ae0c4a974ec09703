# Functions shared by the serve tests; sourced by each, with the build
# directory as $1.  Brings in the trust tests' functions (sim, verified,
# wait_log, ctl SOCKET..., json, workers_of, new_worker).
. "$(dirname "${BASH_SOURCE[0]}")/../trust/common.sh"

CTL=$TMP/ctl.sock
STORE=$TMP/store

# template_conf FILE [EXTRA_GLOBALS [MORE_TEMPLATES]]: a configuration
# whose template "sandbox" serves $STORE/{build_id}/mem on
# $TMP/sb/{sandbox_id}.sock, followed by MORE_TEMPLATES (libconfig groups,
# comma-separated) when given.
template_conf() {
  cat >"$1" <<CONF
uffdkit = { control_socket = "$CTL"; ${2:-} };
templates = (
  { name = "sandbox"; vars = [ "build_id", "sandbox_id" ];
    socket = "$TMP/sb/{sandbox_id}.sock";
    source = { plugin = "mmap"; path = "$STORE/{build_id}/mem"; }; }${3:+,
  $3}
);
CONF
}

# build ID SEED PAGES: an image of PAGES 4 KiB pages in $STORE/ID/mem.
build() {
  mkdir -p "$STORE/$1"
  sim 0 "img-$1" mkimage "$STORE/$1/mem" --size $(($3 * 4))K --seed "$2"
}

# sctl ARGS...: uffdkit ctl on the test's control socket.
sctl() {
  ctl "$CTL" "$@"
}

# watch_start NAME: `uffdkit ctl --json watch` into $TMP/NAME.events.
watch_start() {
  "$CTL_BIN" ctl --socket "$CTL" --json watch >"$TMP/$1.events" 2>&1 &
  WATCHERS+=($!)
  wait_event "$1" '^[{]"ok":true[}]$' # the watch has begun
}
WATCHERS=()

# wait_event NAME REGEX [SECONDS]: waits for an event line matching.
wait_event() {
  local f=$TMP/$1.events i
  for ((i = 0; i < ${3:-20} * 20; i++)); do
    grep -E -q -- "$2" "$f" && return 0
    sleep 0.05
  done
  fail "no event matching '$2' in $1.events: $(cat "$f")"
}

# kinds NAME ID: the kinds of the events of restore ID in NAME.events, in
# order, separated by spaces.
kinds() {
  python3 -c '
import json, sys
out = []
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("id") == sys.argv[2]:
        out.append(e["event"])
print(" ".join(out))' "$TMP/$1.events" "$2"
}

# event NAME ID KIND EXPR: EXPR evaluated on the first KIND event of ID.
event() {
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    if e.get("id") == sys.argv[2] and e["event"] == sys.argv[3]:
        print(eval(sys.argv[4]))
        break' "$TMP/$1.events" "$2" "$3" "$4"
}
