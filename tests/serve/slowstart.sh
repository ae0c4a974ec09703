#!/bin/bash
# A source that is slow to start delays only its own serve: a template
# reading an http origin that holds its answer (the fault server's delay)
# is served, and while that serve waits, a serve of a local template
# answers and its VM restores, every byte right.  Once the origin
# answers, the first serve answers too and its VM restores as well.
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/../http/servers.sh"

build b1 71 256
make_image 1M --seed 72
start_faulty "$TMP/www"
template_conf "$TMP/d.conf" "" "$(
  cat <<T
  { name = "remote"; vars = [ "file" ];
    socket = "$TMP/sb/{id}.sock"; start_timeout = "600s";
    source = { plugin = "http"; url = "$FAULTY/{file}";
               timeout = "600s"; }; }
T
)"
start_daemon d "$CTL" --config "$TMP/d.conf" --plugin-dir "$PLUGINS"

# The origin holds its next answer until released.
curl -sf "$FAULTY/_control?mode=delay&count=1&seconds=600" >/dev/null ||
  fail "cannot arm the origin"
"$CTL_BIN" ctl --socket "$CTL" --timeout 600 serve remote file=mem.img --id slow \
  >"$TMP/slow.out" 2>&1 &
SLOW=$!
held() {
  [ "$(curl -sf "$FAULTY/_stats" | json 'j["faults"]')" -ge 1 ]
}
until_true 30 held ||
  fail "the slow source never asked the origin: $(cat "$TMP/slow.out")"

# Answered while the first waits: a bound of minutes only catches a serve
# held behind the first one's source.
timeout 60 "$CTL_BIN" ctl --socket "$CTL" serve sandbox build_id=b1 \
  sandbox_id=fast --id fast >"$TMP/fast.out" 2>&1 ||
  fail "serve behind a slow source: $(cat "$TMP/fast.out")"
still_running $SLOW "the slow serve"
sim 0 fastvm run --socket "$TMP/sb/fast.sock" --image "$STORE/b1/mem" \
  --timeout 60
verified fastvm 256
still_running $SLOW "the slow serve"
[ ! -e "$TMP/sb/slow.sock" ] || [ -z "$(cat "$TMP/slow.out")" ] ||
  fail "the slow serve answered before its source started: $(cat "$TMP/slow.out")"

curl -sf "$FAULTY/_release" >/dev/null || fail "cannot release the origin"
wait $SLOW || fail "the slow serve: $(cat "$TMP/slow.out")"
[ "$(cat "$TMP/slow.out")" = "slow $TMP/sb/slow.sock" ] ||
  fail "slow serve answer: $(cat "$TMP/slow.out")"
sim 0 slowvm run --socket "$TMP/sb/slow.sock" --image "$IMG" --timeout 60
verified slowvm 256
