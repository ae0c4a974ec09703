#!/bin/bash
# Working-set replay from an HTTP origin (nginx), for a raw object (http
# source) and for a chunk store read through a nested http source:
#  - every byte of the restore is checked by the simulator;
#  - nginx's access log shows replay's requests ranged (206), merged (far
#    fewer requests than the working set has runs in first-touch order, its
#    pages being neighbours touched out of order), and no byte of the
#    object or of a pack fetched twice but by a demand read beside a
#    request of replay's (a guest that overtakes replay, as under a
#    sanitizer, fetches what it meets first itself: how often replay keeps
#    ahead is bench/cold's to measure, not a test's);
#  - through a slowed location (256 KiB/s per request after the first
#    256 KiB, 4 connections), with a working set of 4 MiB the guest touches
#    last, the guest's first fault, on a page outside the working set, is
#    answered before any replay request that nginx slowed (more than the
#    256 KiB it sends at once) has finished: demand reads never wait behind
#    prefetches.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"

command -v python3 >/dev/null || skip "python3 is needed"
[ -x /usr/sbin/nginx ] || skip "nginx is needed"
need_built "$UFFDKIT" "$SIM" "$SNAP"
WSET=(python3 "$HTTP_TESTS_DIR/../prefetch/wset.py")

make_image 32M --seed 77
# The slowed location sends a request's first 256 KiB at once (nginx's
# limit_rate allows a second's worth): the store-slow listener reads a
# store of raw chunks, so that replay's pack ranges are as long as its
# ranges of the image (1 MiB) and are slowed, not a compressed fifth.
for codec in lz4 raw; do
  "$SNAP" store import "$TMP/www/$codec" snap "$IMG" --chunk-size 16K \
    --codec $codec >/dev/null ||
    fail "uffdkit-snap store import ($codec) failed"
done
start_nginx "$TMP/www"
LOG=$NGINX_DIR/access.log
BASE=http://127.0.0.1:$NGINX_PORT

# The working set: the second half of the image listed in stride order
# (pages 4096, 4112, 4128, ... then 4097, 4113, ...: 4096 runs of one page
# in first-touch order, all neighbours in the image), and three lone
# pages in the first half.
STRIDE=$(python3 -c '
half = 4096
print(",".join(str(half + 16 * k + j) for j in range(16)
               for k in range(half // 16)))')
RUNS=4099

http_src() {
  echo "plugin = \"http\"; url = \"$BASE$1\"; connections = 4;"
}
store_src() {
  echo "plugin = \"store\"; snapshot = \"snap\";
        objects = { $(http_src "$1/{object}") };"
}
listener() {
  printf '{ name = "%s"; socket = "%s/%s.sock"; fault_around = 0;
    source = { %s };
    prefetch = { working_set = "%s/ws-%s"; mode = "auto"; }; }' \
    "$1" "$TMP" "$1" "$2" "$TMP" "$1"
}
cat >"$TMP/uffdkit.conf" <<CONF
uffdkit = { control_socket = "$TMP/ctl.sock"; };
listeners = (
  $(listener http "$(http_src /mem.img)"),
  $(listener http-slow "$(http_src /slow/mem.img)"),
  $(listener store "$(store_src /lz4)"),
  $(listener store-slow "$(store_src /slow/raw)")
);
CONF
start_daemon cold "$TMP/http.sock" --config "$TMP/uffdkit.conf"
for l in http-slow store store-slow; do
  wait_for_socket "$TMP/$l.sock"
done

# A first restore of each listener records a working set (naming the
# source), which is then replaced by WS_PAGES.
for l in http http-slow store store-slow; do
  restore_http "rec-$l" "$TMP/$l.sock" --touch-percent 1 --vcpus 1
  until_true 10 test -s "$TMP/ws-$l" || fail "$l: no working set recorded"
  pages=3000,3500,3900,$STRIDE
  [[ $l != *-slow ]] || pages=$(seq -s, 4096 5119) # 4 MiB: 12 s at most
  "${WSET[@]}" forge "$TMP/ws-$l" "$TMP/ws-$l.new" --pages "$pages"
  mv "$TMP/ws-$l.new" "$TMP/ws-$l"
done

# analyze FROM KIND / first_demand FROM KIND: accesslog.py on the
# access-log lines after line FROM, for the object or the packs KIND reads
# at the fast location / the slowed one.
declare -A FAST=([http]=/mem.img [store]=/lz4/packs/)
declare -A SLOW=([http]=/slow/mem.img [store]=/slow/raw/packs/)
analyze() {
  tail -n +"$(($1 + 1))" "$LOG" | python3 "$HTTP_TESTS_DIR/accesslog.py" \
    replay "$2" $RUNS "${FAST[$2]}"
}
first_demand() {
  tail -n +"$(($1 + 1))" "$LOG" | python3 "$HTTP_TESTS_DIR/accesslog.py" \
    first "$2" "${SLOW[$2]}"
}

for kind in http store; do
  # Replay on a fast origin, the guest touching every page in order, slowly
  # enough that it meets the second half once replay has brought it in
  # (on a quiet machine, without a sanitizer).
  mark=$(wc -l <"$LOG")
  restore_http "rep-$kind" "$TMP/$kind.sock" --vcpus 1 --delay-us 300
  until_true 10 grep -Eq "working set replayed \($((4096 + 3)) pages listed, [1-9]" \
    "$TMP/cold.log" || fail "$kind: no replay in the daemon's log"
  analyze "$mark" $kind || fail "$kind: see the access log check above"

  # On the slowed location, the first fault comes first.
  mark=$(wc -l <"$LOG")
  restore_http "rep-$kind-slow" "$TMP/$kind-slow.sock" --vcpus 1
  first_demand "$mark" $kind || fail "$kind-slow: a fault waited for replay"
done
! grep -q "could not deliver" "$TMP/cold.log" || fail "the daemon failed a read"
stop_daemons
