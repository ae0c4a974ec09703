#!/bin/bash
# The http source over HTTPS: nginx with a certificate from a CA made for
# this run.  With ca_file naming that CA the simulator restores every byte;
# without it (verification is on by default), with another CA, or with a
# certificate for another name, the daemon refuses the source at start and
# says why; verify_tls = false accepts any certificate.  A redirect to
# http:// is refused even with redirects allowed.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"

command -v openssl >/dev/null || {
  echo "openssl needed" >&2
  exit 77
}
need_built "$UFFDKIT" "$SIM"

make_image 32M --seed 5
make_tls_certs "$TMP/tls"
NGINX_TLS_DIR=$TMP/tls start_nginx "$TMP/www"
GOOD=https://127.0.0.1:$NGINX_TLS_PORT/mem.img
OTHER=https://127.0.0.1:$NGINX_OTHER_PORT/mem.img

# The servers are what the cases below assume.
curl -sf -o /dev/null --cacert "$TMP/tls/ca.pem" "$GOOD" ||
  fail "nginx does not serve $GOOD with the test CA"
curl -s -o /dev/null --cacert "$TMP/tls/ca.pem" "$OTHER" &&
  fail "curl accepted the certificate for another name"

# serve NAME SETTINGS: a listener on $TMP/NAME.sock whose http source has
# SETTINGS (libconfig), from a config file.
serve() {
  cat >"$TMP/$1.conf" <<CONF
listeners = (
  { name = "$1"; socket = "$TMP/$1.sock";
    source = { plugin = "http"; $2 };
  } );
CONF
  start_daemon "$1" "$TMP/$1.sock" --config "$TMP/$1.conf"
}

# tls_requests: range requests nginx answered 206 so far, on any port.
tls_requests() {
  grep -c ' 206 "GET /mem.img ' "$NGINX_DIR/access.log" || true
}

# ca_file: every byte over TLS, in two orders.
before=$(tls_requests)
serve ca "url = \"$GOOD\"; ca_file = \"$TMP/tls/ca.pem\";"
restore_http ca-seq "$TMP/ca.sock"
restore_http ca-random "$TMP/ca.sock" --order random --seed 11
stop_daemons
[ $(($(tls_requests) - before)) -gt 1000 ] ||
  fail "the restores did not go through nginx's TLS server"
grep -q 'listener ca: http, 33554432 bytes' "$TMP/ca.log" ||
  fail "the TLS listener did not report the object size"

# refused NAME WANT ARGS...: the daemon, run with ARGS, must refuse to start
# (within 20 s) with a message naming the URL and matching WANT.
refused() {
  local name=$1 want=$2 rc=0
  shift 2
  timeout 20 "$UFFDKIT" "$@" >"$TMP/$name.log" 2>&1 || rc=$?
  [ $rc -ne 0 ] && [ $rc -ne 124 ] || {
    cat "$TMP/$name.log" >&2
    fail "$name: the daemon did not refuse the source (exit $rc)"
  }
  grep -E "https://127\.0\.0\.1:[0-9]+/mem\.img bytes 0-1: .*($want)" \
    "$TMP/$name.log" >/dev/null || {
    cat "$TMP/$name.log" >&2
    fail "$name: no clear TLS error matching '$want'"
  }
  # A certificate is not a transient failure: no second try.
  if grep -q "trying again" "$TMP/$name.log"; then
    cat "$TMP/$name.log" >&2
    fail "$name: the start probe was retried on a certificate error"
  fi
  echo "$name: refused: $(grep -oE "bytes 0-1: .*" "$TMP/$name.log" | head -1)"
}

# No ca_file: the system's CAs do not know the test CA.
refused no-ca-file "certificate|issuer" \
  --socket "$TMP/r1.sock" http "url=$GOOD"
# A CA that did not sign the server's certificate.
refused stranger-ca "certificate|issuer" \
  --socket "$TMP/r2.sock" http "url=$GOOD" \
  "ca_file=$TMP/tls/stranger-ca.pem"
# The right CA, but a certificate for another name.
refused wrong-name "name|subject" \
  --socket "$TMP/r3.sock" http "url=$OTHER" "ca_file=$TMP/tls/ca.pem"
# A CA file that does not exist.
refused missing-ca-file "CA|certificate|ca_file|file" \
  --socket "$TMP/r4.sock" http "url=$GOOD" "ca_file=$TMP/tls/nonexistent.pem"

# A redirect from https to http is never followed, even when redirects are.
rc=0
timeout 20 "$UFFDKIT" --socket "$TMP/r5.sock" http \
  "url=https://127.0.0.1:$NGINX_TLS_PORT/down.img" \
  "ca_file=$TMP/tls/ca.pem" redirects=3 >"$TMP/downgrade.log" 2>&1 || rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] &&
  grep -q "/down.img bytes 0-1: HTTP status 302, refusing a redirect to http://127.0.0.1:$NGINX_PORT/mem.img: never from https to http" \
    "$TMP/downgrade.log" || {
  cat "$TMP/downgrade.log" >&2
  fail "downgrade: the redirect to http was not refused (exit $rc)"
}
echo "downgrade: refused"

# verify_tls = false: any certificate, here one for another name signed by
# an unknown CA, and the bytes are still exact.
serve noverify "url = \"$OTHER\"; verify_tls = false;"
restore_http noverify "$TMP/noverify.sock" --order random --seed 3
stop_daemons
