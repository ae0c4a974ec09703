# Test servers for the http plugin: nginx, the fault-injecting server and
# a real S3 server (Ceph, tests/lib/ceph.sh), each on a free loopback
# port, with all state under $TMP.
# Sourced after tests/lib/functions.sh (which sets BUILD, TMP and `fail`).
# Every server started here is stopped by stop_servers, which the caller's
# EXIT handling runs (see run_with_servers).

HTTP_TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$HTTP_TESTS_DIR/../lib/ceph.sh"
SERVER_PIDS=()

# wait_http URL [SECONDS]: until URL answers at all (any status).
wait_http() {
  local url=$1 secs=${2:-15} i
  for ((i = 0; i < secs * 20; i++)); do
    curl -s -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.05
  done
  return 1
}

# make_image SIZE [MKIMAGE_ARGS...]: the image the servers serve and
# restore_http checks against, $TMP/www/mem.img ($IMG).
make_image() {
  IMG=$TMP/www/mem.img
  mkdir -p "$TMP/www"
  "$SIM" mkimage "$IMG" --size "$@" >/dev/null ||
    fail "uffdkit-sim mkimage failed"
}

# restore_http NAME SOCK ARGS...: one restore of $TMP/www/mem.img (the image
# the servers serve) through the daemon on SOCK, which must verify every
# byte; output in $TMP/NAME-sim.out and $TMP/NAME-sim.log.
restore_http() {
  local name=$1 sock=$2 rc=0
  shift 2
  "$SIM" run --socket "$sock" --image "$TMP/www/mem.img" --vcpus 2 \
    --timeout 120 "$@" >"$TMP/$name-sim.out" 2>"$TMP/$name-sim.log" || rc=$?
  [ $rc -eq 0 ] || {
    cat "$TMP/$name-sim.out" "$TMP/$name-sim.log" >&2
    fail "$name: uffdkit-sim exited with $rc"
  }
  echo "$name: $(cat "$TMP/$name-sim.out")"
}

# start_nginx ROOT: serves ROOT at http://127.0.0.1:$NGINX_PORT/, and the
# same files without range support under /norange/ and at 256 KiB/s per
# request under /slow/; /moved.bin redirects to
# /data.bin.  Access log:
# $NGINX_DIR/access.log.
# With NGINX_TLS_DIR set (certificates from make_tls_certs), ROOT is also
# served over HTTPS at https://127.0.0.1:$NGINX_TLS_PORT/ with a certificate
# for 127.0.0.1, and at https://127.0.0.1:$NGINX_OTHER_PORT/ with one for
# another name; there /down.img redirects to http:// (a downgrade).
start_nginx() {
  local root=$1 try
  NGINX_DIR=$TMP/nginx
  mkdir -p "$NGINX_DIR"
  for try in 1 2 3 4 5; do
    NGINX_PORT=$(free_port)
    if [ -n "${NGINX_TLS_DIR:-}" ]; then
      NGINX_TLS_PORT=$(free_port)
      NGINX_OTHER_PORT=$(free_port)
    fi
    write_nginx_conf "$root"
    /usr/sbin/nginx -e "$NGINX_DIR/error.log" -p "$NGINX_DIR" \
      -c "$NGINX_DIR/nginx.conf" >"$NGINX_DIR/stdout.log" 2>&1 &
    NGINX_PID=$!
    SERVER_PIDS+=("$NGINX_PID")
    if wait_http "http://127.0.0.1:$NGINX_PORT/" 10; then
      return 0
    fi
    stop_pid "$NGINX_PID"
  done
  cat "$NGINX_DIR/error.log" >&2 || true
  fail "nginx did not start"
}

write_nginx_conf() {
  local root=$1 user=""
  # Workers would otherwise drop to nobody and be unable to read $TMP.
  [ "$(id -u)" -eq 0 ] && user="user root;"
  cat >"$NGINX_DIR/nginx.conf" <<EOF
$user
daemon off;
worker_processes 1;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log warn;
events { worker_connections 512; }
http {
  log_format t '\$connection \$connection_requests \$status "\$request" '
               '"\$http_range" "\$http_x_test" "\$http_if_match"';
  access_log $NGINX_DIR/access.log t;
  client_body_temp_path $NGINX_DIR/body;
  proxy_temp_path $NGINX_DIR/proxy;
  fastcgi_temp_path $NGINX_DIR/fastcgi;
  uwsgi_temp_path $NGINX_DIR/uwsgi;
  scgi_temp_path $NGINX_DIR/scgi;
  default_type application/octet-stream;
  sendfile on;
  keepalive_requests 100000;
  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $root;
    location /norange/ { alias $root/; max_ranges 0; }
    location /slow/ { alias $root/; limit_rate 256k; }
    location = /moved.bin { return 302 /data.bin; }
  }
$(tls_servers "$root")
}
EOF
}

tls_servers() {
  [ -n "${NGINX_TLS_DIR:-}" ] || return 0
  local name port
  for name in server other; do
    port=$NGINX_TLS_PORT
    [ $name = other ] && port=$NGINX_OTHER_PORT
    cat <<EOF
  server {
    listen 127.0.0.1:$port ssl;
    ssl_certificate $NGINX_TLS_DIR/$name.pem;
    ssl_certificate_key $NGINX_TLS_DIR/$name.key;
    root $1;
    location = /down.img { return 302 http://127.0.0.1:$NGINX_PORT/mem.img; }
  }
EOF
  done
}

# make_tls_certs DIR: a throw-away CA (DIR/ca.pem) and, signed by it, a
# server certificate for 127.0.0.1 and localhost (DIR/server.pem and .key)
# and one for other.invalid only (DIR/other.pem and .key); also a second CA
# that signed neither (DIR/stranger-ca.pem).
make_tls_certs() {
  local dir=$1 name
  mkdir -p "$dir"
  (
    cd "$dir"
    for name in ca stranger-ca; do
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -nodes -keyout $name.key -out $name.pem -days 2 \
        -subj "/CN=uffdkit test $name" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign"
    done
    for name in server other; do
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout $name.key -out $name.csr -subj "/CN=uffdkit test $name"
      if [ $name = server ]; then
        echo "subjectAltName=IP:127.0.0.1,DNS:localhost" >$name.ext
      else
        echo "subjectAltName=DNS:other.invalid" >$name.ext
      fi
      echo "extendedKeyUsage=serverAuth" >>$name.ext
      openssl x509 -req -in $name.csr -CA ca.pem -CAkey ca.key \
        -set_serial "0x$(openssl rand -hex 8)" -days 2 -extfile $name.ext \
        -out $name.pem
    done
  ) >"$TMP/openssl.log" 2>&1 || {
    cat "$TMP/openssl.log" >&2
    fail "openssl could not make the test certificates"
  }
}

# start_faulty ROOT [ARGS...]: the fault-injecting server (faulty_server.py)
# on $FAULTY (http://127.0.0.1:$FAULTY_PORT); ARGS go to it (e.g. --sigv4).
start_faulty() {
  local root=$1 portfile
  shift
  FAULTY_COUNT=$((${FAULTY_COUNT:-0} + 1))
  portfile=$TMP/faulty.$FAULTY_COUNT.port
  python3 "$HTTP_TESTS_DIR/faulty_server.py" --root "$root" \
    --port-file "$portfile" "$@" >>"$TMP/faulty.log" 2>&1 &
  SERVER_PIDS+=($!)
  local i
  for ((i = 0; i < 200; i++)); do
    [ -s "$portfile" ] && break
    sleep 0.05
  done
  FAULTY_PID=${SERVER_PIDS[-1]}
  FAULTY_PORT=$(cat "$portfile" 2>/dev/null) ||
    fail "faulty_server.py did not start"
  FAULTY=http://127.0.0.1:$FAULTY_PORT
  wait_http "http://127.0.0.1:$FAULTY_PORT/_stats" 10 ||
    fail "faulty_server.py does not answer"
}

stop_pid() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

stop_faulty() {
  stop_pid "$FAULTY_PID"
}

stop_nginx() {
  stop_pid "$NGINX_PID"
}

stop_servers() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    stop_pid "$pid"
  done
  SERVER_PIDS=()
  stop_ceph
}

# functions.sh owns the EXIT trap; servers are stopped before its cleanup,
# which must still see the script's exit status.
trap 'rc=$?; stop_servers; set +e; (exit $rc); cleanup' EXIT
