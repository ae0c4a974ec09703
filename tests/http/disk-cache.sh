#!/bin/bash
# The cache layer's disk mode (`dir`): chunks kept in a directory across
# daemon restarts, shared by the listeners of a daemon and refused to a
# second daemon, bounded, and never served unless complete and checked.
# The origin is nginx; its access log counts the chunks fetched, and the
# cache's counters (ctl stats, metrics) say which tier served them.  Every
# restore checks every byte.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/../control/common.sh"
source "$(dirname "$0")/servers.sh"

need_built "$UFFDKIT" "$SIM"

MIB=32
CHUNK=$((1 << 20))
ENTRY=$((CHUNK + 96)) # an entry file: a 96-byte header and the chunk
make_image ${MIB}M --seed 61
touch -d '-2 hours' "$IMG" # nginx's ETag: mtime and size
start_nginx "$TMP/www"
CDIR=$TMP/chunks
CTL=$TMP/ctl.sock
METRICS=
[ "$HTTP" = 1 ] && METRICS='metrics = "127.0.0.1:0";'

# fetched: range requests for chunks nginx answered so far (not the probes).
fetched() {
  grep ' 206 "GET /mem.img ' "$NGINX_DIR/access.log" |
    grep -vc '"bytes=0-1"' || true
}

# daemon DIR_SIZE: uffdkit with listeners a and b on the image, each with
# its own cache layer keeping chunks in $CDIR.
daemon() {
  local l
  {
    echo "uffdkit = { control_socket = \"$CTL\"; $METRICS };"
    echo 'listeners = ('
    for l in a b; do
      [ $l = b ] && echo ','
      cat <<CONF
  { name = "$l"; socket = "$TMP/$l.sock";
    source = { plugin = "http";
               url = "http://127.0.0.1:$NGINX_PORT/mem.img"; };
    layers = ( { layer = "cache"; size = "${MIB}M"; chunk = "1M";
                 dir = "$CDIR"; dir_size = "$1"; },
               { layer = "retry"; } ); }
CONF
    done
    echo ');'
  } >"$TMP/d.conf"
  start_daemon d "$TMP/b.sock" --config "$TMP/d.conf"
  until_true 20 grep -q "listener b: http+cache+retry" "$TMP/d.log" ||
    fail "the listeners did not start"
}

# restore NAME LISTENER [SIM_ARGS...]
restore() {
  local name=$1 l=$2
  shift 2
  restore_http "$name" "$TMP/$l.sock" "$@"
  grep -q ' mismatches=0 ' "$TMP/$name-sim.out" || fail "$name: mismatches"
}

# expect_fetched WHAT N: N chunks fetched from nginx since $before.
expect_fetched() {
  local n=$(($(fetched) - before))
  [ "$n" -eq "$2" ] || fail "$1: $n chunks fetched from the origin, not $2"
  echo "$1: $n chunks fetched from the origin"
}

# cache_counters LISTENER NAME...: the named counters of LISTENER's cache
# layer (ctl stats), on one line.
cache_counters() {
  ctl --json stats | "$PYTHON" -c '
import json, sys
for l in json.load(sys.stdin)["listeners"]:
    if l["name"] != sys.argv[1]:
        continue
    for s in l["sources"]:
        c = s["counters"]
        if "disk_hits" in c:
            print(*(int(c[k]) for k in sys.argv[2:]))
' "$@"
}

# tiers LISTENER: "memory disk remote bytes_fetched".
tiers() {
  cache_counters "$1" hits disk_hits remote_fetches bytes_fetched
}

# disk_writes LISTENER: chunks LISTENER's cache layer has stored in dir.
disk_writes() {
  cache_counters "$1" disk_writes
}

# cache_metric NAME LISTENER: a cache counter's value in the metrics
# exposition.
cache_metric() {
  curl -sf --max-time 20 "http://127.0.0.1:$(http_port "$TMP/d.log")/metrics" |
    awk -v m="uffdkit_plugin_$1_total" -v l="listener=\"$2\"" \
      'index($1, m "{" l ",instance=") == 1 && $1 ~ /\/cache"}$/ { print $2 }'
}

# A running daemon renames and removes files while find reads the
# directory: a file gone between the two is not an error here.
entries() {
  { find "$CDIR" -maxdepth 1 -type f -name '[0-9a-f]*' 2>/dev/null || true; } |
    wc -l
}
dir_bytes() {
  { find "$CDIR" -maxdepth 1 -type f ! -name .owner -printf '%s\n' \
    2>/dev/null || true; } | awk '{ n += $1 } END { print n + 0 }'
}

# --- kept across a restart, shared by the listeners ---
daemon 1G
before=$(fetched)
restore cold a
expect_fetched "cold restore on a" $MIB
read -r mem disk remote bytes < <(tiers a)
[ "$disk" = 0 ] && [ "$remote" = $MIB ] && [ "$bytes" = $((MIB * CHUNK)) ] ||
  fail "cold restore on a: tiers memory $mem disk $disk remote $remote, $bytes bytes"
skipped=$(cache_metric disk_skipped a)
[ "$skipped" = 0 ] || fail "cold restore on a: $skipped chunks not written"
# a's writer stores its chunks after the faults they served; until one is
# in dir, b (another cache layer) does not see it and fetches it too.
until_true 20 test "$(disk_writes a)" = $MIB ||
  fail "cold restore on a: $(disk_writes a) chunks stored in dir, not $MIB"
before=$(fetched)
restore shared b --order random --seed 2
expect_fetched "listener b, same daemon" 0
read -r mem disk remote bytes < <(tiers b)
[ "$disk" = $MIB ] && [ "$remote" = 0 ] && [ "$bytes" = 0 ] ||
  fail "listener b: tiers memory $mem disk $disk remote $remote, $bytes bytes"
stop_daemons
[ "$(entries)" -eq $MIB ] || fail "$(entries) entries in dir, not $MIB"
daemon 1G
before=$(fetched)
restore restarted a --order random --seed 3
expect_fetched "after a restart" 0
read -r mem disk remote bytes < <(tiers a)
[ "$disk" = $MIB ] && [ "$remote" = 0 ] && [ "$bytes" = 0 ] && [ "$mem" -gt 0 ] ||
  fail "after a restart: tiers memory $mem disk $disk remote $remote, $bytes bytes"
if [ "$HTTP" = 1 ]; then
  m_disk=$(cache_metric disk_hits a)
  m_remote=$(cache_metric remote_fetches a)
  [ "$m_disk" = $MIB ] && [ "$m_remote" = 0 ] ||
    fail "metrics after a restart: disk_hits '$m_disk', remote_fetches '$m_remote'"
fi
echo "after a restart: $mem memory hits, $disk disk hits, $remote remote fetches"
# Another daemon on the same directory would overshoot the bound with this
# one: it is refused, naming the owner.
sed "s|$TMP/a.sock|$TMP/c.sock|; s|$TMP/b.sock|$TMP/d.sock|
     s|$CTL|$TMP/ctl2.sock|" "$TMP/d.conf" >"$TMP/other.conf"
rc=0
timeout 60 "$UFFDKIT" --config "$TMP/other.conf" >"$TMP/other.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a second daemon on the dir: rc $rc"
grep -q "cache dir $CDIR is used by another daemon (pid ${DAEMON_PIDS[0]})" \
  "$TMP/other.log" || {
  cat "$TMP/other.log" >&2
  fail "a second daemon on the dir was not refused with the owner named"
}
echo "ok: a second daemon on the directory is refused"
stop_daemons

# --- a torn or damaged entry is discarded, never served ---
mapfile -t files < <(find "$CDIR" -maxdepth 1 -type f -name '[0-9a-f]*' |
  sort | head -3)
# one byte of data changed, same length
printf 'X' | dd of="${files[0]}" bs=1 seek=$((96 + 4096)) conv=notrunc \
  status=none
truncate -s $((ENTRY - 4096)) "${files[1]}" # torn
truncate -s 50 "${files[2]}"                # torn within its header
echo garbage >"$CDIR/.tmp-999999999-0"      # a write its process never ended
daemon 1G
before=$(fetched)
restore damaged a --order random --seed 4
expect_fetched "three damaged entries" 3
[ "$(grep -c 'cache dir entry .*; removed' "$TMP/d.log")" -eq 3 ] ||
  fail "the damaged entries were not reported"
[ ! -e "$CDIR/.tmp-999999999-0" ] || fail "a dead writer's temporary is left"
stop_daemons

# --- SIGKILL in the middle of writing entries ---
rm -rf "$CDIR"
daemon 1G
worker=$(sed -n 's/.*info: worker \([0-9]*\) ready.*/\1/p' "$TMP/d.log" |
  tail -1)
[ -n "$worker" ] || fail "no worker pid in the log"
"$SIM" run --socket "$TMP/a.sock" --image "$IMG" --vcpus 2 --timeout 120 \
  >"$TMP/killed.out" 2>&1 &
sim_pid=$!
some_written() { [ "$(entries)" -ge 8 ]; }
until_true 30 some_written || fail "no entries written"
kill -KILL "$worker" "${DAEMON_PIDS[0]}"
kill -KILL "$sim_pid" 2>/dev/null || true
wait "$sim_pid" 2>/dev/null || true
wait "${DAEMON_PIDS[0]}" 2>/dev/null || true
DAEMON_PIDS=()
# The worker is not this shell's child: wait until it is really gone (a
# large sanitized process takes a while to exit), or the next daemon sees
# its writer alive and rightly keeps its temporaries.
worker_gone() { [ ! -e "/proc/$worker" ]; }
until_true 60 worker_gone || fail "the killed worker $worker is still there"
kept=$(entries)
echo "SIGKILL with $kept entries written"
daemon 1G
before=$(fetched)
restore after-kill a --order random --seed 5
expect_fetched "after SIGKILL" $((MIB - kept))
if grep -q 'cache dir entry' "$TMP/d.log"; then
  fail "an entry written before SIGKILL was incomplete"
fi
[ -z "$(find "$CDIR" -name '.tmp-*')" ] || fail "temporaries left"
stop_daemons

# --- the bound holds, under two restores at once and at a restart ---
rm -rf "$CDIR"
BOUND=$((8 * CHUNK))
daemon $BOUND
restore bound1 a &
p1=$!
peak=0
while kill -0 $p1 2>/dev/null; do
  b=$(dir_bytes)
  [ "$b" -le "$peak" ] || peak=$b
  sleep 0.02
done
wait $p1 || fail "bound1"
restore bound2 b --order random --seed 6
# A directory walk racing a rename may see one file under both names.
[ "$peak" -le $((BOUND + ENTRY)) ] || fail "$peak bytes in dir, bound $BOUND"
[ "$(dir_bytes)" -le $BOUND ] || fail "$(dir_bytes) bytes in dir, bound $BOUND"
[ "$(entries)" -eq $((BOUND / ENTRY)) ] ||
  fail "$(entries) entries under a bound of $((BOUND / ENTRY))"
stop_daemons
daemon $((4 * CHUNK))
[ "$(dir_bytes)" -le $((4 * CHUNK)) ] ||
  fail "a lower bound at start left $(dir_bytes) bytes"
echo "bound: at most $peak bytes seen, $(entries) entries"
stop_daemons

# --- a replaced object never meets the old entries ---
rm -rf "$CDIR"
daemon 1G
restore old a
stop_daemons
"$SIM" mkimage "$TMP/www/new.tmp" --size ${MIB}M --seed 62 >/dev/null
touch -d '-1 hour' "$TMP/www/new.tmp"
mv "$TMP/www/new.tmp" "$IMG"
daemon 1G
before=$(fetched)
restore replaced a --order random --seed 7
expect_fetched "the replaced object" $MIB
stop_daemons
