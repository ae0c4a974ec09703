#!/bin/bash
# Layered snapshots from object storage: a three-generation store made with
# uffdkit-snap (as tests/diff/restore.sh makes it) is served over HTTP, and
# the daemon's diff source reads each build's diff through a nested http
# source (`store` group), with and without a cache layer inside that group.
# The simulator checks every byte at 4 KiB pages and at 2 MiB pages over
# 4 KiB blocks.  Servers: nginx, Ceph's radosgw (a real S3) with SigV4, and
# faulty_server.py, which checks SigV4 signatures made with a session token.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"
DIFF_TESTS_DIR=$(cd "$HTTP_TESTS_DIR/../diff" && pwd)

command -v python3 >/dev/null || {
  echo "python3 needed" >&2
  exit 77
}
need_built "$UFFDKIT" "$SIM" "$SNAP"

SIZE=$((16 << 20))
python3 "$DIFF_TESTS_DIR/images.py" "$TMP" $SIZE
truncate -s $SIZE "$TMP/m2.sparse"
while read -r first count; do
  dd if="$TMP/m2" of="$TMP/m2.sparse" bs=4096 skip="$first" seek="$first" \
    count="$count" conv=notrunc status=none
done <"$TMP/m2.runs"

STORE=$TMP/www/store
mkdir -p "$TMP/www"
G0=$("$SNAP" create "$TMP/m0" "$STORE" --block-size 4096)
G1=$("$SNAP" diff "$STORE" "$G0" "$TMP/m1")
G2=$("$SNAP" diff "$STORE" "$G1" "$TMP/m2.sparse" --sparse)
"$SNAP" verify "$STORE" "$G2" >/dev/null || fail "verify $G2"
"$SNAP" flatten "$STORE" "$G2" "$TMP/flat.img"
cmp "$TMP/flat.img" "$TMP/m2" || fail "the flattened store is not m2"
rm "$TMP/flat.img"
# The last header must reference all three builds, or the test would not
# read through more than one nested source.
for g in "$G0" "$G1" "$G2"; do
  "$SNAP" inspect "$STORE" "$G2" --json |
    grep -q "\"build_id\":[[:space:]]*\"$g\"" ||
    fail "generation 2 does not reference build $g"
done
HEADER=$STORE/$G2/memfile.header

start_nginx "$TMP/www"
NGINX_URL=http://127.0.0.1:$NGINX_PORT/store/{build_id}/memfile

# restore NAME STORE_GROUP SIM_ARGS...: the diff source of generation 2
# with the store group's settings STORE_GROUP (libconfig), restored by the
# simulator, which must verify every byte.
restore() {
  local name=$1 store=$2 rc=0
  shift 2
  local sock=$TMP/$name.sock
  cat >"$TMP/$name.conf" <<CONF
listeners = (
  { name = "$name"; socket = "$sock";
    source = { plugin = "diff"; header = "$HEADER";
               store = { $store }; };
  } );
CONF
  start_daemon "$name" "$sock" --config "$TMP/$name.conf"
  "$SIM" run --socket "$sock" --image "$TMP/m2" --vcpus 2 --timeout 120 \
    "$@" >"$TMP/$name-sim.out" 2>"$TMP/$name-sim.log" || rc=$?
  [ $rc -eq 0 ] || {
    cat "$TMP/$name-sim.out" "$TMP/$name-sim.log" >&2
    fail "$name: uffdkit-sim exited with $rc"
  }
  echo "$name: $(cat "$TMP/$name-sim.out")"
  stop_daemons
  grep -q "listener $name: diff, $SIZE bytes" "$TMP/$name.log" || {
    cat "$TMP/$name.log" >&2
    fail "$name: the listener did not start the diff source"
  }
  if grep -q "could not deliver" "$TMP/$name.log"; then
    fail "$name: the daemon failed a read"
  fi
}

# nginx_requests: range requests for the builds' diffs nginx answered 206,
# every one of them (any other answer fails the test).
nginx_requests() {
  local bad
  bad=$(grep ' "GET /store/' "$NGINX_DIR/access.log" | grep -vc ' 206 ' ||
    true)
  [ "$bad" -eq 0 ] || fail "$bad store requests were not answered 206"
  grep -c ' 206 "GET /store/' "$NGINX_DIR/access.log" || true
}

# Each build's diff is read through its own nested source.
check_every_build_read() {
  local g
  for g in "$G0" "$G1" "$G2"; do
    grep -q " 206 \"GET /store/$g/memfile " "$NGINX_DIR/access.log" ||
      fail "build $g was never read"
  done
}

HTTP_STORE="plugin = \"http\"; url = \"$NGINX_URL\";"
CACHE='layers = ( { layer = "cache"; size = "16M"; chunk = "256K"; } );'

n0=$(nginx_requests)
restore nginx-4k "$HTTP_STORE"
n1=$(nginx_requests)
check_every_build_read
restore nginx-4k-cache "$HTTP_STORE $CACHE" --order random --seed 4
n2=$(nginx_requests)
plain=$((n1 - n0)) cached=$((n2 - n1))
echo "store requests: $plain without a cache, $cached with one"
# The builds' diffs hold at most SIZE bytes together: SIZE / 256 KiB chunks
# plus the three start probes, whatever the order of faults.
[ "$cached" -le $((SIZE / (256 << 10) + 3)) ] ||
  fail "the cache inside the store group did not cache ($cached requests)"
[ "$plain" -gt $((cached * 4)) ] ||
  fail "without a cache only $plain requests: pages were not read by range"

reserve_hugepages $((SIZE / (2 << 20) + 4))
restore nginx-2m "$HTTP_STORE" --page-size 2M
restore nginx-2m-cache "$HTTP_STORE $CACHE" --page-size 2M --order random
stop_nginx

# S3 (Ceph's radosgw): each build's diff uploaded as BUILD/memfile,
# requests signed and checked.
start_ceph
for g in "$G0" "$G1" "$G2"; do
  s3_put "$STORE/$g/memfile" "$g/memfile"
done
S3_STORE="plugin = \"http\";
          url = \"$S3_BUCKET_URL/{build_id}/memfile\";
          aws_sigv4 = \"$S3_SIGV4\";
          aws_access_key_id = \"$S3_ACCESS_KEY\";
          aws_secret_access_key = \"$S3_SECRET_KEY\";"
restore s3-2m-cache "$S3_STORE $CACHE" --page-size 2M
restore s3-4k-cache "$S3_STORE $CACHE" --order random --seed 6
stop_ceph

# Session tokens (which Ceph has only with its STS service): faulty_server.py
# checks signatures made with one.
start_faulty "$STORE" --sigv4 AKIDSTORE:st0re-secret:eu-west-1:s3:st0re-token
SIGNED_STORE="plugin = \"http\";
          url = \"$FAULTY/{build_id}/memfile\";
          aws_sigv4 = \"aws:amz:eu-west-1:s3\";
          aws_access_key_id = \"AKIDSTORE\";
          aws_secret_access_key = \"st0re-secret\";
          aws_session_token = \"st0re-token\";"
restore signed-4k-cache "$SIGNED_STORE $CACHE" --order random --seed 8
stats=$(curl -s "$FAULTY/_stats")
echo "signed store: $stats"
python3 -c 'import json, sys
sys.exit(0 if json.loads(sys.argv[1])["requests"] > 3 else 1)' "$stats" ||
  fail "signed store: the builds were not read from the server ($stats)"
