# A real S3 server for the tests: Ceph's radosgw on a one-node cluster,
# started by shared/tools/s3-ceph.sh (beside the repository) in a private
# directory under $TMP, on a free loopback port.  Sourced after
# tests/lib/functions.sh (BUILD, TMP, fail); the caller stops it at exit
# with stop_ceph (tests/http/servers.sh does so for its scripts).
#
# The script is "$REPO/../shared/tools/s3-ceph.sh"; UFFDKIT_S3_CEPH names
# another copy.  Missing, it fails the test (never a skip): the S3 tests
# are the only ones that speak to a real S3 implementation.

CEPH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
S3_CEPH_SH=${UFFDKIT_S3_CEPH:-$(realpath -m "$CEPH_REPO/../shared/tools/s3-ceph.sh")}
CEPH_DIR=

# The OSD keeps every object in RAM (memstore) and blocks writes, without
# failing them, once it is full: size it for the test's data (MiB).
CEPH_MEM_MIB=${CEPH_MEM_MIB:-256}

# start_ceph: radosgw on http://127.0.0.1:PORT, with bucket $S3_BUCKET
# empty; sets S3_ENDPOINT, S3_BUCKET_URL, S3_ACCESS_KEY, S3_SECRET_KEY,
# S3_REGION and S3_SIGV4 (the aws_sigv4 setting for it).
start_ceph() {
  local try port out
  [ -f "$S3_CEPH_SH" ] ||
    fail "the real S3 server's script is missing: $S3_CEPH_SH" \
      "(shared/tools/s3-ceph.sh beside the repository, or set UFFDKIT_S3_CEPH)"
  CEPH_DIR=$TMP/ceph
  out=$TMP/ceph.env
  for try in 1 2 3; do
    port=$(free_port)
    if S3_CEPH_MEM_BYTES=$((CEPH_MEM_MIB << 20)) \
      bash "$S3_CEPH_SH" start "$CEPH_DIR" "$port" >"$out" \
      2>>"$TMP/ceph-start.log"; then
      break
    fi
    # Another process may have taken the port between the probe and
    # radosgw's bind: the script says "in use"; anything else is fatal.
    grep -q "already in use\|not answering" "$TMP/ceph-start.log" && [ $try -lt 3 ] ||
      {
        cat "$TMP/ceph-start.log" >&2
        fail "s3-ceph.sh could not start Ceph (logs in $CEPH_DIR/log)"
      }
  done
  S3_ENDPOINT=$(sed -n 's/^endpoint=//p' "$out")
  S3_ACCESS_KEY=$(sed -n 's/^access_key=//p' "$out")
  S3_SECRET_KEY=$(sed -n 's/^secret_key=//p' "$out")
  S3_REGION=$(sed -n 's/^region=//p' "$out")
  S3_BUCKET=$(sed -n 's/^bucket=//p' "$out")
  [ -n "$S3_ENDPOINT" ] && [ -n "$S3_SECRET_KEY" ] && [ -n "$S3_BUCKET" ] ||
    fail "s3-ceph.sh printed no endpoint, keys or bucket: $(cat "$out")"
  S3_BUCKET_URL=$S3_ENDPOINT/$S3_BUCKET
  S3_SIGV4=aws:amz:$S3_REGION:s3
}

# stop_ceph: stops every daemon of the cluster (safe to call twice).
stop_ceph() {
  [ -n "$CEPH_DIR" ] || return 0
  bash "$S3_CEPH_SH" stop "$CEPH_DIR" >/dev/null 2>&1 || true
  CEPH_DIR=
}

# s3_put FILE KEY: uploads FILE as KEY in the bucket, signed (RGW wants the
# payload hash header, which curl's --aws-sigv4 does not add).
s3_put() {
  curl -sS --fail --aws-sigv4 "$S3_SIGV4" \
    --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" \
    -T "$1" "$S3_BUCKET_URL/$2" >/dev/null ||
    fail "upload of $1 to Ceph as $2 failed"
}
