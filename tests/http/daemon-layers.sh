#!/bin/bash
# The http source under cache and retry layers, from a config file: the
# fault-injecting server fails some requests (each one served, checked),
# retry hides them, and clones
# of one image share the cache, so each chunk is fetched once however many
# VMs restore it.  Then the same with readahead on top.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"

need_built "$UFFDKIT" "$SIM"

make_image 64M
start_faulty "$TMP/www"

stat() {
  curl -s "$FAULTY/_stats" | python3 -c 'import json, sys
print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}
requests() { stat requests; }

# arm MODE COUNT: once the listener's source has started (its probe must
# not meet the faults), the next COUNT requests fail with MODE.
arm() {
  until_true 20 grep -q "listener $NAME: http" "$TMP/$NAME.log" ||
    fail "listener $NAME did not start"
  FAULTS_BEFORE=$(stat faults)
  ARMED=$2
  curl -s "$FAULTY/_control?mode=$1&count=$2" >/dev/null
}

# check_faults_served: every armed fault was served during the restores
# (and so hidden by retry, since they verified).
check_faults_served() {
  local n=$(($(stat faults) - FAULTS_BEFORE))
  [ "$n" -eq "$ARMED" ] ||
    fail "$n of the $ARMED armed failures were served: retry was not tested"
  echo "$n failures served, hidden by retry"
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
  NAME=$1
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
arm 500 3
before=$(requests)
# Two clones at once, then a third: the third is served from the cache.
restore_http clone1 "$TMP/layers.sock" &
pid1=$!
restore_http clone2 "$TMP/layers.sock" --order random --seed 3 || fail "clone2"
wait $pid1 || fail "clone1"
check_faults_served
check_fetched_once "$before"
after=$(requests)
restore_http clone3 "$TMP/layers.sock" --order random --seed 9
[ "$(requests)" -eq "$after" ] || fail "clone3 was not served from the cache"
stop_daemons

serve readahead "{ layer = \"readahead\"; window = \"1M\"; }, $CACHE, $RETRY"
arm 503 2
before=$(requests)
restore_http sequential "$TMP/readahead.sock"
check_faults_served
check_fetched_once "$before"
stop_daemons
