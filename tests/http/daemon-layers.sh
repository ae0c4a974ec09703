#!/bin/bash
# The http source under cache and retry layers, from a config file: the
# fault-injecting server fails some requests, retry hides them, and clones
# of one image share the cache, so each chunk is fetched once however many
# VMs restore it.  Then the same with readahead on top.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"

need_built "$UFFDKIT" "$SIM"

make_image 64M
start_faulty "$TMP/www"

requests() {
  curl -s "$FAULTY/_stats" | python3 -c 'import json, sys
print(json.load(sys.stdin)["requests"])'
}

# serve NAME LAYERS: a listener on $TMP/NAME.sock with the given layers.
serve() {
  cat >"$TMP/$1.conf" <<CONF
listeners = (
  { name = "$1"; socket = "$TMP/$1.sock";
    source = { plugin = "http"; url = "$FAULTY/mem.img"; };
    layers = ( $2 );
  } );
CONF
  start_daemon "$1" "$TMP/$1.sock" --config "$TMP/$1.conf"
}

CACHE='{ layer = "cache"; size = "64M"; chunk = "1M"; }'
RETRY='{ layer = "retry"; tries = 5; delay = "20ms"; }'
CHUNKS=64

check_fetched_once() {
  local n=$(($(requests) - $1))
  [ "$n" -le $((CHUNKS + 3 + 1)) ] ||
    fail "$n requests for $CHUNKS chunks: chunks were fetched more than once"
  echo "$n requests for $CHUNKS chunks"
}

curl -s "$FAULTY/_reset" >/dev/null
serve layers "$CACHE, $RETRY"
before=$(requests)
curl -s "$FAULTY/_control?mode=500&count=3" >/dev/null
# Two clones at once, then a third: the third is served from the cache.
restore_http clone1 "$TMP/layers.sock" &
pid1=$!
restore_http clone2 "$TMP/layers.sock" --order random --seed 3 || fail "clone2"
wait $pid1 || fail "clone1"
check_fetched_once "$before"
after=$(requests)
restore_http clone3 "$TMP/layers.sock" --order random --seed 9
[ "$(requests)" -eq "$after" ] || fail "clone3 was not served from the cache"
stop_daemons

before=$(requests)
serve readahead "{ layer = \"readahead\"; window = \"1M\"; }, $CACHE, $RETRY"
curl -s "$FAULTY/_control?mode=503&count=2" >/dev/null
restore_http sequential "$TMP/readahead.sock"
check_fetched_once "$before"
stop_daemons
