#!/bin/bash
# The object replaced on the server in the middle of a restore (by rename,
# as a store publishes a new version; same size, so only its version
# tells).  nginx sends an ETag and answers If-Match: every range request
# after the change gets 412, so the VM on the old object gets its
# on_source_error (kill) and never a page of the new object; a VM started
# after the change too; a VM of another object on the same server is
# served to the end.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"

VMM=$BUILD/bin/test-http-strict-vmm
need_built "$UFFDKIT" "$SIM" "$VMM"

PAGES=4096
# No holes: every page is read from the server.
make_image 16M --seed 31 --zero-percent 0
cp "$IMG" "$TMP/old.img"
"$SIM" mkimage "$TMP/www/new.tmp" --size 16M --seed 32 --zero-percent 0 \
  >/dev/null
"$SIM" mkimage "$TMP/www/other.img" --size 16M --seed 33 >/dev/null
# nginx's ETag is the mtime in seconds and the size: make them differ.
touch -d '-2 hours' "$IMG"
touch -d '-1 hour' "$TMP/www/new.tmp"
start_nginx "$TMP/www"

cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = ""; };
listeners = (
  { name = "a"; socket = "$TMP/a.sock"; on_source_error = "kill";
    source = { plugin = "http";
               url = "http://127.0.0.1:$NGINX_PORT/mem.img"; }; },
  { name = "b"; socket = "$TMP/b.sock";
    source = { plugin = "http";
               url = "http://127.0.0.1:$NGINX_PORT/other.img"; }; }
);
CONF
LOG=$TMP/d.log
start_daemon d "$TMP/a.sock" --config "$TMP/d.conf"
D=${DAEMON_PIDS[-1]}
for l in a b; do
  until_true 10 grep -q "listener $l: http, 16777216 bytes" "$LOG" ||
    fail "listener $l did not start"
done

# vmm NAME: strict-vmm on listener a expecting old.img, 2 ms per page.
vmm() {
  VMM_RC=0
  "$VMM" "$TMP/a.sock" "$TMP/old.img" 1 60 2000 >"$TMP/$1.out" \
    2>"$TMP/$1.err" &
  VMM_PID=$!
}
vmm_wait() {
  wait "$VMM_PID" || VMM_RC=$?
  if grep '^MISMATCH' "$TMP/$1.out" >&2; then
    fail "$1: a page of the new object was installed"
  fi
  [ "$VMM_RC" -eq 137 ] || {
    cat "$TMP/$1.out" "$TMP/$1.err" >&2
    fail "$1: the VMM exited with $VMM_RC, not killed by SIGKILL (137)"
  }
}

vmm during
until_true 60 grep -q '^verified 256$' "$TMP/during.out" ||
  fail "the restore did not get going: $(cat "$TMP/during.out")"
mv "$TMP/www/new.tmp" "$IMG"
vmm_wait during
last=$(grep '^verified' "$TMP/during.out" | tail -1)
[ "${last#verified }" -lt $PAGES ] || fail "the change came after the restore"
grep -E "session [0-9]+ \(pid $VMM_PID\): source a could not deliver .*(412|changed since this source started)" \
  "$LOG" | head -1 | grep . || fail "no log line names the changed object"
echo "ok: VM on the old object killed after $last pages, none of the new one"

vmm after
vmm_wait after
grep -q '^verified' "$TMP/after.out" && fail "after: pages were installed"
echo "ok: a VM started after the change is refused its pages"

rc=0
"$SIM" run --socket "$TMP/b.sock" --image "$TMP/www/other.img" --vcpus 2 \
  --timeout 120 >"$TMP/other.out" 2>"$TMP/other.err" || rc=$?
[ $rc -eq 0 ] && grep -q ' mismatches=0 ' "$TMP/other.out" || {
  cat "$TMP/other.out" "$TMP/other.err" >&2
  fail "the other object's VM: uffdkit-sim exited with $rc"
}
kill -0 "$D" 2>/dev/null || fail "the daemon died"
echo "ok: the other object is served to the end"
