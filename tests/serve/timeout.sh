#!/bin/bash
# A serve waits for its source only as long as its template's
# start_timeout: a source whose start hangs (the test plugin thang, which
# waits for a file to appear) is answered start_timeout, naming the
# template and the bound, and leaves no socket and no restore.  The id is
# free at once: served again from another template, it restores every
# byte right while the first start still hangs.  When that start ends at
# last its source is destroyed, the file it opened is kept neither by the
# worker nor by the new restore of the same id, and nothing crashed.
. "$(dirname "$0")/common.sh"

TESTPLUGINS=$BUILD/tests/core/plugins
need_built "$TESTPLUGINS/libthang.so"
build b1 91 256
template_conf "$TMP/d.conf" "" "$(
  cat <<T
  { name = "hang"; socket = "$TMP/sb/{id}.sock"; start_timeout = "2s";
    source = { plugin = "thang"; path = "$TMP/release-{id}"; }; }
T
)"
start_daemon d "$CTL" --config "$TMP/d.conf" --plugin-dir "$PLUGINS" \
  --plugin-dir "$TESTPLUGINS"
D=$(daemon_pid)
W=$(wait_worker "$D")
nfds() {
  ls "/proc/$1/fd" | wc -l
}
restores() {
  sctl --json list | json '[r["id"] for r in j["restores"]]'
}

# A start that ends in time is served as ever.  (A VM restored first
# leaves open what a worker keeps once it has served a session.)
touch "$TMP/release-ok"
sctl serve hang --id ok >"$TMP/ok.out" || fail "serve: $(cat "$TMP/ok.out")"
sctl stop ok >/dev/null
sctl serve sandbox build_id=b1 sandbox_id=warm --id warm >/dev/null
sim 0 warm run --socket "$TMP/sb/warm.sock" --image "$STORE/b1/mem" --timeout 60
verified warm 256
until_true 20 [ "$(restores)" = "[]" ] || fail "not removed: $(restores)"
until_true 20 [ -e "$TMP/release-ok.closed" ] || fail "ok's source not closed"
SV_FDS=$(nfds "$D")
W_FDS=$(nfds "$W")
ls -l "/proc/$W/fd" >"$TMP/wfds.before"

t0=$(date +%s%N)
rc=0
timeout 60 "$CTL_BIN" ctl --socket "$CTL" --json serve hang --id h1 \
  >"$TMP/h1.json" 2>&1 || rc=$?
took=$((($(date +%s%N) - t0) / 1000000))
[ $rc -eq 1 ] || fail "serve of a hanging source: exit $rc: $(cat "$TMP/h1.json")"
[ "$(json 'j["code"]' <"$TMP/h1.json")" = start_timeout ] ||
  fail "code: $(cat "$TMP/h1.json")"
json 'j["error"]' <"$TMP/h1.json" |
  grep -q "source of template hang did not start within its start_timeout (2s)" ||
  fail "error: $(cat "$TMP/h1.json")"
[ "$took" -ge 1900 ] || fail "answered after $took ms, before the 2 s bound"
[ ! -e "$TMP/sb/h1.sock" ] || fail "the timed-out serve left its socket"
[ "$(restores)" = "[]" ] || fail "restores left: $(restores)"
[ ! -e "$TMP/release-h1.closed" ] || fail "the start did not hang"

# The id is free while its first start still hangs in the worker.
sctl serve sandbox build_id=b1 sandbox_id=h1 --id h1 >"$TMP/h1b.out" ||
  fail "id h1 after the timeout: $(cat "$TMP/h1b.out")"
sleep 0.5
LIVE_FDS=$(nfds "$D")
touch "$TMP/release-h1"
until_true 30 [ -e "$TMP/release-h1.closed" ] ||
  fail "the late start's source was never destroyed"
sleep 1 # the worker's messages about the late start have been read
[ "$(nfds "$D")" -eq "$LIVE_FDS" ] ||
  fail "the supervisor holds $(nfds "$D") descriptors, not $LIVE_FDS: the" \
    "late start's pinned file was taken for the new restore h1"
sim 0 vm run --socket "$TMP/sb/h1.sock" --image "$STORE/b1/mem" --timeout 60
verified vm 256
[ "$(worker_of "$D")" = "$W" ] || fail "the worker changed: it crashed?"
until_true 20 [ "$(restores)" = "[]" ] || fail "h1 not removed: $(restores)"
until_true 20 [ "$(nfds "$D")" -eq "$SV_FDS" ] ||
  fail "supervisor: $(nfds "$D") descriptors, $SV_FDS before the timeout"
until_true 20 [ "$(nfds "$W")" -eq "$W_FDS" ] ||
  fail "worker: $(nfds "$W") descriptors, $W_FDS before the timeout:" \
    "$(ls -l "/proc/$W/fd" | diff "$TMP/wfds.before" - || true)"
[ "$(count_log d 'restore h1: the source of template hang did not start')" -eq 1 ] ||
  fail "the timeout was not logged once"
stop_daemons
