#!/bin/bash
# The Grafana dashboard and the Prometheus alert rules shipped in
# packaging/: the dashboard is valid JSON whose every panel queries
# something; every uffdkit metric that either names is in the exposition
# of a daemon serving an http+readahead+cache+retry listener, an mmap one
# and a per-restore listener of a template; promtool accepts the rules, and its unit tests (each alert fires on
# the series that should raise it, and only then) pass.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/../control/common.sh"
source "$(dirname "$0")/../http/servers.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
DASH=$SRC/packaging/grafana/uffdkit-dashboard.json
RULES=$SRC/packaging/prometheus/uffdkit-alerts.yml
RULES_TEST=$SRC/packaging/prometheus/uffdkit-alerts.test.yml

[ "$HTTP" = 1 ] || skip "built without libmicrohttpd: no metrics endpoint"
command -v promtool >/dev/null ||
  skip "promtool is missing (Debian's prometheus package; tools/dev deps)"

# Metric names, one per line, that the dashboard and the rules query.
"$PYTHON" - "$DASH" "$RULES" >"$TMP/names" <<'PYEOF' || fail "$(cat "$TMP/names")"
import json, re, sys
dash = json.load(open(sys.argv[1]))
exprs = []
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
for p in panels(dash["panels"]):
    if p["type"] == "row":
        continue
    t = p.get("targets") or []
    if not t or not all(x.get("expr") for x in t):
        sys.exit(f"panel {p.get('id')} ({p.get('title')}) has no query")
    exprs += [x["expr"] for x in t]
for v in dash["templating"]["list"]:
    q = v.get("query")
    if isinstance(q, dict):
        exprs.append(q["query"])
rules = open(sys.argv[2]).read()
names = set(re.findall(r"\buffdkit_[a-z0-9_]+", "\n".join(exprs)))
names |= set(re.findall(r"\buffdkit_[a-z0-9_]+", rules))
if len(names) < 10:
    sys.exit(f"only {len(names)} metric names found: {sorted(names)}")
print("\n".join(sorted(names)))
PYEOF
echo "the dashboard and rules name $(wc -l <"$TMP/names") metrics"

promtool check rules "$RULES" >"$TMP/check.out" 2>&1 ||
  fail "promtool check rules: $(cat "$TMP/check.out")"
(cd "$(dirname "$RULES_TEST")" && promtool test rules "$RULES_TEST") \
  >"$TMP/rules-test.out" 2>&1 ||
  fail "promtool test rules: $(cat "$TMP/rules-test.out")"

make_image 8M --seed 43
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
templates = (
  { name = "vm"; vars = [ "image" ]; socket = "$TMP/sb-{id}.sock";
    source = { plugin = "mmap"; path = "$TMP/www/{image}.img"; }; }
);
CONF
start_daemon d "$TMP/web.sock" --config "$TMP/d.conf"
PORT=$(http_port "$TMP/d.log")
restore_http web "$TMP/web.sock"
restore_http raw "$TMP/raw.sock"
ctl serve vm image=mem --id one >"$TMP/serve.out" 2>&1 ||
  fail "ctl serve: $(cat "$TMP/serve.out")"
restore_http one "$TMP/sb-one.sock"
curl -sf --max-time 20 "http://127.0.0.1:$PORT/metrics" >"$TMP/metrics.txt" ||
  fail "GET /metrics failed"
missing=()
while read -r m; do
  grep -qE "^$m(\{| )" "$TMP/metrics.txt" || missing+=("$m")
done <"$TMP/names"
[ ${#missing[@]} -eq 0 ] ||
  fail "named by the dashboard or the rules, absent from /metrics: ${missing[*]}"
stop_daemons
echo "pkg-monitoring: every metric named is exported; promtool: $(tail -1 "$TMP/rules-test.out")"
