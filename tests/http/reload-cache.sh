#!/bin/bash
# A reload keeps the sources of the listeners it does not change, with
# their caches.  Listeners a and b serve the same image from nginx through
# http+cache (memory, big enough for all of it); nginx's access log counts
# every request that reaches the origin.  Every restore checks every byte.
#   1  a cold restore on each; SIGHUP with the file unchanged; a second
#      restore on each: not one request reaches the origin, and ctl stats
#      show the cache hits growing by the restored chunks (the misses not);
#   2  the file edited so that only b's cache changes (its size): SIGHUP
#      rebuilds b alone (the log says one built, one kept); a restore on a
#      still reaches the origin not once, one on b fetches the image again.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"
source "$(dirname "$0")/../core/common.sh" # wait_log

need_built "$UFFDKIT" "$SIM"
command -v python3 >/dev/null || skip "python3 is needed to read JSON"

MIB=16
make_image ${MIB}M --seed 91
start_nginx "$TMP/www"
CTL=$TMP/ctl.sock
CONF=$TMP/d.conf

# conf B_CACHE_SIZE: the configuration, b's cache of that size.
conf() {
  local l size
  {
    echo "uffdkit = { control_socket = \"$CTL\"; };"
    echo 'listeners = ('
    for l in a b; do
      size=${MIB}M
      [ $l = b ] && echo ',' && size=$1
      cat <<CONF
  { name = "$l"; socket = "$TMP/$l.sock";
    source = { plugin = "http";
               url = "http://127.0.0.1:$NGINX_PORT/mem.img"; };
    layers = ( { layer = "cache"; size = "$size"; chunk = "1M"; } ); }
CONF
    done
    echo ');'
  } >"$CONF"
}

# requests: every request nginx has logged.
requests() { wc -l <"$NGINX_DIR/access.log"; }

# cache LISTENER COUNTER: a counter of the listener's cache layer.
cache() {
  "$UFFDKIT" ctl --socket "$CTL" --json stats | python3 -c 'import json, sys
for l in json.load(sys.stdin)["listeners"]:
    if l["name"] == sys.argv[1]:
        for s in l["sources"]:
            if s["instance"].endswith("/cache"):
                print(int(s["counters"][sys.argv[2]]))' "$1" "$2"
}

# restore NAME LISTENER: a restore in random order, every byte checked.
restore() {
  restore_http "$1" "$TMP/$2.sock" --order random --seed "${#1}"
  grep -q ' mismatches=0 ' "$TMP/$1-sim.out" || fail "$1: mismatches"
}

# reload GEN: SIGHUP, until generation GEN is live.
reload() {
  kill -HUP "$D"
  wait_log d "configuration generation $1 \(.*\) is live" 30
}

# origin WHAT BEFORE N: N requests reached nginx since BEFORE.
origin() {
  local n=$(($(requests) - $2))
  [ "$n" -eq "$3" ] || fail "$1: $n requests reached the origin, not $3"
  echo "$1: $n requests reached the origin"
}

conf ${MIB}M
start_daemon d "$TMP/a.sock" --config "$CONF"
D=${DAEMON_PIDS[0]}
wait_for_socket "$CTL"
wait_log d "worker [0-9]+ ready"

# ---- 1: an unchanged file ----
restore cold-a a
restore cold-b b
cold=$(requests)
[ "$cold" -gt 0 ] || fail "the cold restores reached no origin"
hits_a=$(cache a hits) misses_a=$(cache a misses)
hits_b=$(cache b hits)
reload 2
before=$(requests)
restore warm-a a
restore warm-b b
origin "after a reload with the file unchanged" "$before" 0
[ "$(cache a misses)" -eq "$misses_a" ] ||
  fail "a: cache misses went from $misses_a to $(cache a misses)"
[ "$(cache a hits)" -ge $((hits_a + MIB)) ] ||
  fail "a: cache hits went from $hits_a to $(cache a hits), not up by $MIB"
[ "$(cache b hits)" -ge $((hits_b + MIB)) ] ||
  fail "b: cache hits went from $hits_b to $(cache b hits), not up by $MIB"
echo "a: cache hits $hits_a -> $(cache a hits), misses $misses_a -> $(cache a misses)"
wait_log d "configuration generation 2: 2 listeners, 0 stacks built, 2 kept"

# ---- 2: only b changes ----
conf $((MIB + 1))M
reload 3
before=$(requests)
restore kept-a a
origin "listener a, unchanged by the reload" "$before" 0
wait_log d "configuration generation 3: 2 listeners, 1 stacks built, 1 kept"
before=$(requests)
restore rebuilt-b b
[ $(($(requests) - before)) -ge $MIB ] ||
  fail "listener b, changed: only $(($(requests) - before)) requests reached the origin"
echo "listener b, changed: $(($(requests) - before)) requests reached the origin"
stop_daemons
