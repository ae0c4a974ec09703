#!/bin/bash
# The shared cache tier (conf/nginx/uffdkit-tier.conf, docs/fleet.md):
# three hosts, each a network namespace with its own uffdkit, restore
# clones of one template through one caching nginx in front of the origin
# (another nginx), both in a fourth namespace; veth pairs with 10.77.H.0/24
# addresses link each host to the tier, inside the namespaces only.  Every
# restored byte is checked; the origin's access log must show each byte
# served once (at most 1.05 times one restore's bytes) for the raw object,
# for the same object replaced at the origin (the new version restored
# right, never the old bytes), and for a content-addressed object.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"
source "$(dirname "$0")/../lib/netns.sh"
SRC=$(cd "$HTTP_TESTS_DIR/../.." && pwd)
TIER_CONF=$SRC/conf/nginx/uffdkit-tier.conf

need_built "$UFFDKIT" "$SIM"
[ -x /usr/sbin/nginx ] || skip "nginx is not installed"
trap 'rc=$?; stop_servers; set +e; netns_cleanup; (exit $rc); cleanup' EXIT

MIB=32
BYTES=$((MIB << 20))
make_image ${MIB}M --seed 51
ORIGIN=$TMP/origin
mkdir -p "$ORIGIN/raw"
cp "$IMG" "$ORIGIN/raw/mem.img"
touch -d '-2 hours' "$ORIGIN/raw/mem.img" # nginx's ETag: mtime and size
SUM=$(sha256sum "$IMG" | cut -c1-64)
mkdir -p "$ORIGIN/store/$SUM"
cp "$IMG" "$ORIGIN/store/$SUM/mem.img"

netns_add tier
TIER=$NS_NAME
HOSTS=()
for h in 1 2 3; do
  netns_add "h$h"
  HOSTS+=("$NS_NAME")
  netns_link "$NS_NAME" up0 "10.77.$h.2/24" "$TIER" "h$h" "10.77.$h.1/24"
done

# nsx NS COMMAND...: COMMAND in namespace NS.
nsx() {
  local ns=$1
  shift
  ip netns exec "$ns" "$@"
}

ns_free_port() {
  nsx "$1" python3 -c 'import socket
s = socket.socket()
s.bind(("0.0.0.0", 0))
print(s.getsockname()[1])'
}

# nginx_in NAME HTTP_BODY: nginx in the tier namespace with its files in
# $TMP/NAME, HTTP_BODY inside http {}.
nginx_in() {
  local dir=$TMP/$1 user=""
  mkdir -p "$dir"
  [ "$(id -u)" -eq 0 ] && user="user root;"
  cat >"$dir/nginx.conf" <<EOF
$user
daemon off;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 512; }
http {
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  default_type application/octet-stream;
  keepalive_requests 100000;
$2
}
EOF
  ip netns exec "$TIER" /usr/sbin/nginx -e "$dir/error.log" -p "$dir" \
    -c "$dir/nginx.conf" >"$dir/stdout.log" 2>&1 &
  SERVER_PIDS+=($!)
}

OPORT=$(ns_free_port "$TIER")
nginx_in origin "
  log_format bytes '\$status \$body_bytes_sent \$uri \"\$http_range\" \"\$http_if_match\"';
  access_log $TMP/origin/access.log bytes;
  server { listen 127.0.0.1:$OPORT; root $ORIGIN; }"
TPORT=$(ns_free_port "$TIER")
# The deployment of docs/fleet.md, with the shipped file included as is.
nginx_in tier "
  log_format tier '\$status \$body_bytes_sent \$uri \"\$http_range\" \$upstream_cache_status';
  access_log $TMP/tier/access.log tier;
  proxy_cache_path $TMP/tier/cache levels=1:2 keys_zone=uffdkit:16m
                   max_size=1g inactive=3650d use_temp_path=off;
  upstream uffdkit_origin { server 127.0.0.1:$OPORT; keepalive 16; }
  map \$uri \$uffdkit_version {
    ~^/store/ immutable;
    default \"\$http_if_match|\$http_if_unmodified_since\";
  }
  server {
    listen $TPORT;
    include $TIER_CONF;
  }"
for h in 1 2 3; do
  until_true 15 nsx "${HOSTS[h - 1]}" curl -s -o /dev/null \
    "http://10.77.$h.1:$TPORT/" || {
    cat "$TMP/tier/error.log" >&2
    fail "host $h cannot reach the tier"
  }
done
# The origin is not reachable from a host: everything goes through the tier.
if nsx "${HOSTS[0]}" curl -s -o /dev/null --max-time 2 \
  "http://127.0.0.1:$OPORT/"; then
  fail "a host reaches the origin directly"
fi

# listener H NAME PATH: a listener on the tier's PATH in host H, with cache
# (chunks of the tier's slice size) and retry layers.
listener() {
  cat <<CONF
  { name = "$2"; socket = "$TMP/h$1/$2.sock";
    source = { plugin = "http"; url = "http://10.77.$1.1:$TPORT/$3"; };
    layers = ( { layer = "cache"; size = "${MIB}M"; chunk = "4M"; },
               { layer = "retry"; tries = 5; delay = "50ms"; } ); }
CONF
}

# host_daemon H: uffdkit in host H with listeners raw and store.
host_daemon() {
  local h=$1
  mkdir -p "$TMP/h$h"
  cat >"$TMP/h$h/d.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = (
$(listener "$h" raw raw/mem.img),
$(listener "$h" store "store/$SUM/mem.img")
);
CONF
  ip netns exec "${HOSTS[h - 1]}" "$UFFDKIT" --config "$TMP/h$h/d.conf" \
    >"$TMP/h$h.log" 2>&1 &
  DAEMON_PIDS+=($!)
  HOST_PID[h]=$!
  wait_for_socket "$TMP/h$h/store.sock" 20
}

# host_stop H: SIGTERM to host H's daemon, which must exit 0.
host_stop() {
  local pid=${HOST_PID[$1]} rc=0 p rest=()
  kill -TERM "$pid"
  wait "$pid" || rc=$?
  [ $rc -eq 0 ] || fail "host $1's daemon exited with $rc"
  for p in "${DAEMON_PIDS[@]}"; do
    [ "$p" = "$pid" ] || rest+=("$p")
  done
  DAEMON_PIDS=("${rest[@]}")
}

# restore_on H LISTENER NAME IMAGE [SIM_ARGS...]: a clone restored in host H
# in the background; restores_ok checks them all.
SIM_PIDS=()
SIM_NAMES=()
restore_on() {
  local h=$1 l=$2 name=$3 image=$4
  shift 4
  ip netns exec "${HOSTS[h - 1]}" "$SIM" run --socket "$TMP/h$h/$l.sock" \
    --image "$image" --vcpus 2 --timeout 180 "$@" \
    >"$TMP/$name.out" 2>"$TMP/$name.err" &
  SIM_PIDS+=($!)
  SIM_NAMES+=("$name")
}
restores_ok() {
  local i rc
  for i in "${!SIM_PIDS[@]}"; do
    rc=0
    wait "${SIM_PIDS[i]}" || rc=$?
    check_sim 0 "${SIM_NAMES[i]}" "$rc"
    expect_field "${SIM_NAMES[i]}" mismatches 0
    expect_field "${SIM_NAMES[i]}" bytes "$BYTES"
  done
  SIM_PIDS=()
  SIM_NAMES=()
}

# origin_bytes PATH: body bytes the origin sent for PATH so far.
origin_bytes() {
  awk -v p="$1" '$3 == p { n += $2 } END { print n + 0 }' \
    "$TMP/origin/access.log"
}

# served_once WHAT BEFORE PATH: the origin sent PATH's bytes once since
# BEFORE: at least one restore's bytes (the hosts read through the tier),
# at most 1.05 times.
served_once() {
  local n=$(($(origin_bytes "$3") - $2))
  echo "$1: the origin sent $n bytes for $BYTES-byte restores"
  [ "$n" -ge "$BYTES" ] || fail "$1: the origin sent only $n bytes"
  [ $((n * 100)) -le $((BYTES * 105)) ] ||
    fail "$1: the origin sent $n bytes, more than 1.05 x $BYTES"
}

for h in 1 2 3; do host_daemon $h; done

# Two clones on each host at once, in different orders.
for h in 1 2 3; do
  restore_on $h raw "raw-h$h-a" "$IMG"
  restore_on $h raw "raw-h$h-b" "$IMG" --order random --seed $h
done
restores_ok
served_once "raw, 6 clones on 3 hosts" 0 /raw/mem.img
hits=$(grep -c ' HIT$' "$TMP/tier/access.log" || true)
[ "$hits" -gt 0 ] || fail "the tier served no hit"

# The object replaced at the origin (by rename, as a store publishes):
# host 1, restarted, pins the new version and restores it right; the tier
# has none of its slices, so the origin sends them once more, once.
old_etag=$(nsx "$TIER" curl -sI "http://127.0.0.1:$OPORT/raw/mem.img" |
  sed -n 's/^[Ee][Tt][Aa][Gg]: *\([^\r]*\).*/\1/p')
[ -n "$old_etag" ] || fail "the origin sends no ETag"
"$SIM" mkimage "$TMP/new.img" --size ${MIB}M --seed 52 >/dev/null
cp "$TMP/new.img" "$ORIGIN/raw/mem.img.tmp"
touch -d '-1 hour' "$ORIGIN/raw/mem.img.tmp"
mv "$ORIGIN/raw/mem.img.tmp" "$ORIGIN/raw/mem.img"
before=$(origin_bytes /raw/mem.img)
host_stop 1
host_daemon 1
restore_on 1 raw raw-new-h1 "$TMP/new.img" --order random --seed 7
restores_ok
served_once "raw, replaced" "$before" /raw/mem.img
# A host still on the old version is answered for it: a slice in the
# tier's cache with the old bytes, one it never cached with the origin's 412.
nsx "${HOSTS[1]}" curl -s -o "$TMP/old-slice" -r 4194304-8388607 \
  -H "If-Match: $old_etag" "http://10.77.2.1:$TPORT/raw/mem.img" >/dev/null
cmp "$TMP/old-slice" <(dd if="$IMG" bs=4M skip=1 count=1 status=none) ||
  fail "the old version's cached slice is not the old bytes"
code=$(nsx "${HOSTS[2]}" curl -s -o /dev/null -w '%{http_code}' \
  -r 4194304-8388607 -H 'If-Match: "0-0"' "http://10.77.3.1:$TPORT/raw/mem.img")
[ "$code" = 412 ] || fail "another version's uncached slice: $code, not 412"

# A content-addressed object: one clone on each host at once.
for h in 1 2 3; do
  restore_on $h store "store-h$h" "$IMG" --order random --seed $((h + 10))
done
restores_ok
served_once "content-addressed, 3 clones on 3 hosts" 0 "/store/$SUM/mem.img"
stop_daemons
