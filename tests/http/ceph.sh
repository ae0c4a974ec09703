#!/bin/bash
# A whole restore from a real S3 server: the image uploaded to Ceph's
# radosgw (tests/lib/ceph.sh), served by the daemon's http source with
# SigV4 under cache and retry layers, restored by clones that check every
# byte; each chunk is fetched from Ceph once, whatever the number of
# clones.  A listener with a wrong secret is refused at start with Ceph's
# 403 named, and without the secret in the log.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"

need_built "$UFFDKIT" "$SIM"

MIB=64
CHUNKS=$((MIB / 1))
make_image ${MIB}M --seed 41
start_ceph
s3_put "$IMG" vm/mem.img

# ceph_gets: range GETs radosgw answered for the image so far, from the
# access line it logs for every request.
ceph_gets() {
  grep -c "\"GET /$S3_BUCKET/vm/mem.img HTTP/1.1\" 206 " \
    "$CEPH_DIR/log/client.rgw.s3.log" || true
}

# listener NAME SECRET LAYERS: a listener on the image in Ceph.
listener() {
  cat <<CONF
  { name = "$1"; socket = "$TMP/$1.sock";
    source = { plugin = "http"; url = "$S3_BUCKET_URL/vm/mem.img";
               aws_sigv4 = "$S3_SIGV4";
               aws_access_key_id = "$S3_ACCESS_KEY";
               aws_secret_access_key = "$2"; };
    layers = ( $3 ); }
CONF
}

CACHE='{ layer = "cache"; size = "64M"; chunk = "1M"; }'
RETRY='{ layer = "retry"; tries = 5; delay = "20ms"; }'
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = (
$(listener s3 "$S3_SECRET_KEY" "$CACHE, $RETRY")
);
CONF
start_daemon d "$TMP/s3.sock" --config "$TMP/d.conf"
until_true 20 grep -q "listener s3: http+cache+retry, $((MIB << 20)) bytes" "$TMP/d.log" ||
  fail "the listener on Ceph did not start"

before=$(ceph_gets)
restore_http clone1 "$TMP/s3.sock" &
pid1=$!
restore_http clone2 "$TMP/s3.sock" --order random --seed 3 || fail "clone2"
wait $pid1 || fail "clone1"
after=$(ceph_gets)
n=$((after - before))
[ "$n" -ge $((CHUNKS / 2)) ] ||
  fail "only $n range GETs in radosgw's log for $CHUNKS chunks: not counted"
[ "$n" -le "$CHUNKS" ] ||
  fail "$n range GETs for $CHUNKS chunks: chunks were fetched more than once"
echo "$n range GETs from Ceph for $CHUNKS chunks, two clones"
restore_http clone3 "$TMP/s3.sock" --order random --seed 9
[ "$(ceph_gets)" -eq "$after" ] || fail "clone3 was not served from the cache"
stop_daemons

# A wrong secret: Ceph refuses the signature; the daemon says so at start.
cat >"$TMP/bad.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = (
$(listener bad "wrong-secret-0123456789" "$CACHE, $RETRY")
);
CONF
rc=0
timeout 60 "$UFFDKIT" --config "$TMP/bad.conf" >"$TMP/bad.log" 2>&1 || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || {
  cat "$TMP/bad.log" >&2
  fail "the daemon with a wrong secret exited with $rc"
}
grep -E "bad.*403.*SignatureDoesNotMatch" "$TMP/bad.log" ||
  {
    cat "$TMP/bad.log" >&2
    fail "the daemon's log does not name the 403 and SignatureDoesNotMatch"
  }
if grep -q "wrong-secret" "$TMP/bad.log"; then
  fail "the secret is in the log"
fi
echo "ok: a wrong secret is refused at start, named as Ceph's 403"
