#!/bin/bash
# The metrics endpoint, parsed whole by a strict parser while sources with
# plugin counters (http, cache, retry, readahead) and the core's counters
# are all exported: no family twice (a plugin's "errors" once clashed with
# the core's uffdkit_source_errors_total), nothing malformed.  Then 16
# slowloris clients from another address, each dripping a header byte, do
# not keep a scrape out: the endpoint limits connections per address.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/common.sh"
source "$(dirname "$0")/../http/servers.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

[ "$HTTP" = 1 ] || {
  echo "SKIPPED: built without libmicrohttpd"
  exit 77
}
# Debian's parser (TEST_DEPS of tools/dev), not whatever python3 is first.
PY=/usr/bin/python3
"$PY" -c 'import prometheus_client' 2>/dev/null ||
  fail "python3-prometheus-client is missing (tools/dev deps installs it)"

make_image 8M --seed 41
start_nginx "$TMP/www"
CTL=$TMP/ctl.sock
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = "$CTL"; metrics = "127.0.0.1:0"; };
listeners = (
  { name = "web"; socket = "$TMP/web.sock";
    source = { plugin = "http";
               url = "http://127.0.0.1:$NGINX_PORT/mem.img"; };
    layers = ( { layer = "readahead"; },
               { layer = "cache"; size = "8M"; chunk = "256K"; },
               { layer = "retry"; } ); },
  { name = "raw"; socket = "$TMP/raw.sock";
    source = { plugin = "mmap"; path = "$TMP/www/mem.img"; }; }
);
CONF
start_daemon d "$TMP/web.sock" --config "$TMP/d.conf"
PORT=$(http_port "$TMP/d.log")
restore_http web "$TMP/web.sock"
restore_http raw "$TMP/raw.sock"

# scrape NAME: GET /metrics from 127.0.0.1 into $TMP/NAME.txt, checked.
scrape() {
  curl -sf --max-time 20 "http://127.0.0.1:$PORT/metrics" >"$TMP/$1.txt" ||
    fail "$1: GET /metrics failed"
  "$PY" "$HERE/exposition.py" <"$TMP/$1.txt" >"$TMP/$1.check" || {
    cat "$TMP/$1.check" >&2
    fail "$1: the exposition is not well formed"
  }
  echo "$1: $(cat "$TMP/$1.check")"
}
scrape first
for m in uffdkit_source_errors_total uffdkit_plugin_errors_total \
  uffdkit_plugin_hits_total uffdkit_plugin_requests_total; do
  grep -q "^# TYPE $m counter$" "$TMP/first.txt" || fail "no family $m"
done

# 16 clients from 127.0.0.2, each sending a request a byte a second.
"$PY" - "$PORT" "$TMP/slow.ready" >"$TMP/slow.log" 2>&1 <<'PYEOF' &
import socket, sys, time
port, ready = int(sys.argv[1]), sys.argv[2]
socks = []
for _ in range(16):
    s = socket.socket()
    s.bind(("127.0.0.2", 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"G")
    socks.append(s)
open(ready, "w").write("16\n")
for _ in range(60):
    time.sleep(1)
    for s in socks:
        try:
            s.sendall(b"E")
        except OSError:
            pass
PYEOF
SLOW=$!
until_true 20 test -s "$TMP/slow.ready" || fail "the slow clients did not connect"
sleep 1
kill -0 $SLOW 2>/dev/null || fail "the slow clients gave up: $(cat "$TMP/slow.log")"
scrape during-slowloris
kill $SLOW 2>/dev/null || true
wait $SLOW 2>/dev/null || true
scrape after
