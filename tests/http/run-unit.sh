#!/bin/bash
# run-unit.sh BUILD TEST_BINARY [s3]: starts nginx and faulty_server.py (and
# Ceph's radosgw with an uploaded object if "s3" is given) on free loopback ports,
# runs one Check binary against them, and stops them all.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/servers.sh"

TEST_BIN=${2:?usage: run-unit.sh BUILD TEST_BINARY [s3]}
export HTTP_TEST_ROOT=$TMP/www
mkdir -p "$HTTP_TEST_ROOT"

start_nginx "$HTTP_TEST_ROOT"
# A second server on another port (another origin), for redirects to it.
start_faulty "$HTTP_TEST_ROOT"
export OTHER_URL=$FAULTY
start_faulty "$HTTP_TEST_ROOT"
export NGINX_URL=http://127.0.0.1:$NGINX_PORT
export NGINX_LOG=$NGINX_DIR/access.log
export FAULTY_URL=http://127.0.0.1:$FAULTY_PORT
export TEST_TMP=$TMP

if [ "${3:-}" = s3 ]; then
  start_ceph
  export S3_URL=$S3_BUCKET_URL S3_REGION S3_ACCESS_KEY S3_SECRET_KEY
  # The object is made by the test binary's own generator, then uploaded.
  "$TEST_BIN" --make "$TMP/s3-object.bin"
  s3_put "$TMP/s3-object.bin" mem.img
  # Ceph has no session tokens without its STS service; this server checks
  # the signature with a token required.
  cp "$TMP/s3-object.bin" "$HTTP_TEST_ROOT/signed.img"
  start_faulty "$HTTP_TEST_ROOT" --sigv4 AKIDTEST:s3cr3t-key:eu-west-1:s3:tok3n
  export SIGV4_URL=http://127.0.0.1:$FAULTY_PORT
fi

"$TEST_BIN"
