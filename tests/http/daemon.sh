#!/bin/bash
# The http source on the daemon's command line: nginx serves an image made
# by uffdkit-sim, which restores it (2 vCPUs, sequential then random order)
# and checks every byte.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"

need_built "$UFFDKIT" "$SIM"

make_image 64M
start_nginx "$TMP/www"

start_daemon http "$TMP/s.sock" --socket "$TMP/s.sock" http \
  "url=http://127.0.0.1:$NGINX_PORT/mem.img"
restore_http sequential "$TMP/s.sock"
restore_http random "$TMP/s.sock" --order random --seed 7
stop_daemons

# Every fault was one range request: more than the probe went out, and each
# one was answered 206.
ranged=$(grep -c ' 206 "GET /mem.img ' "$NGINX_DIR/access.log" || true)
other=$(grep ' "GET /mem.img ' "$NGINX_DIR/access.log" | grep -vc ' 206 ' ||
  true)
[ "$ranged" -gt 1 ] || fail "no range requests reached nginx"
[ "$other" -eq 0 ] || fail "$other requests were not answered 206"
echo "nginx: $ranged range requests"

# A server that ignores ranges is refused at start, with a clear message.
rc=0
"$UFFDKIT" --socket "$TMP/r.sock" http \
  "url=http://127.0.0.1:$NGINX_PORT/norange/mem.img" >"$TMP/refused.log" \
  2>&1 || rc=$?
[ $rc -ne 0 ] || fail "the daemon accepted a server that ignores ranges"
grep -q "range requests are required" "$TMP/refused.log" || {
  cat "$TMP/refused.log" >&2
  fail "no clear message for a server that ignores ranges"
}
