#!/bin/bash
# serve refuses what it must, with a clear error and its code, leaving
# nothing behind (no socket file, no listener): variables that traverse,
# are undeclared, too long, empty, missing or hold a '/'; an unknown
# template; a source that cannot start (its file does not exist); an id
# in use; max_restores reached; a socket directory reached through a
# symbolic link; a protocol version other than 1.  A refused handshake
# is told to watchers (failed, policy closed).  A template that lets a
# variable choose the plugin is refused when the file loads.
. "$(dirname "$0")/common.sh"

build b1 51 256
template_conf "$TMP/d.conf" 'max_restores = 2;'
start_daemon d "$CTL" --config "$TMP/d.conf" --plugin-dir "$PLUGINS"

# refused NAME CODE MESSAGE ARGS...: ctl serve ARGS fails with CODE and
# MESSAGE (a fixed string) in the error, and leaves no socket file.
refused() {
  local name=$1 code=$2 msg=$3 rc=0
  shift 3
  sctl --json serve "$@" >"$TMP/$name.json" 2>&1 || rc=$?
  [ $rc -eq 1 ] || fail "$name: exit $rc: $(cat "$TMP/$name.json")"
  [ "$(json 'j["code"]' <"$TMP/$name.json")" = "$code" ] ||
    fail "$name: code: $(cat "$TMP/$name.json")"
  json 'j["error"]' <"$TMP/$name.json" | grep -qF -- "$msg" ||
    fail "$name: error: $(cat "$TMP/$name.json")"
  [ "$(ls -A "$TMP/sb" 2>/dev/null | tr '\n' ' ')" = "${SOCKETS:-}" ] ||
    fail "$name: left $(ls -A "$TMP/sb")"
}

long=$(printf 'a%.0s' {1..65})
refused dotdot bad_variable "variable 'build_id' starts with '.'" \
  sandbox build_id=.. sandbox_id=x
refused slash bad_variable "variable 'sandbox_id' has the byte 0x2f" \
  sandbox build_id=b1 sandbox_id=a/../../etc
refused undeclared bad_variable "declares no variable 'path'" \
  sandbox build_id=b1 sandbox_id=x path=/etc
refused long bad_variable "variable 'sandbox_id' is 65 bytes long; at most 64" \
  sandbox build_id=b1 "sandbox_id=$long"
refused empty bad_variable "variable 'build_id' is empty" \
  sandbox build_id= sandbox_id=x
refused missing bad_variable "needs variable 'sandbox_id'" \
  sandbox build_id=b1
refused template unknown_template 'no template named "other"' \
  other build_id=b1 sandbox_id=x
refused source source_failed "$STORE/nope/mem" \
  sandbox build_id=nope sandbox_id=x
refused badid bad_request "id starts with '.'" \
  sandbox build_id=b1 sandbox_id=x --id ..
sctl --json list >"$TMP/none.json"
[ "$(json 'len(j["listeners"]), len(j["restores"])' <"$TMP/none.json")" = "(0, 0)" ] ||
  fail "refused serves left: $(cat "$TMP/none.json")"

# In use, and the limit.
sctl serve sandbox build_id=b1 sandbox_id=x --id one >/dev/null
SOCKETS="x.sock " refused exists exists '"one" is already the name of a listener' \
  sandbox build_id=b1 sandbox_id=y --id one
sctl serve sandbox build_id=b1 sandbox_id=y --id two >/dev/null
mv "$TMP/sb" "$TMP/sb.keep"
refused limit limit "max_restores (2)" sandbox build_id=b1 sandbox_id=z
mv "$TMP/sb.keep" "$TMP/sb"
sctl stop one >/dev/null
sctl stop two >/dev/null

# A peer whose handshake is refused: a failed event saying why, the
# policy "closed"; with one_shot the restore is then gone.
watch_start hs
sctl serve sandbox build_id=b1 sandbox_id=hs --id hs >/dev/null
"$PEER" blocking "$TMP/sb/hs.sock" "$STORE/b1/mem" >"$TMP/blocking.out" \
  2>"$TMP/blocking.err" || fail "blocking uffd: $(cat "$TMP/blocking.err")"
wait_event hs '"event":"removed","id":"hs"'
[ "$(kinds hs hs)" = "listening connected closed failed removed" ] ||
  fail "events of hs: $(kinds hs hs)"
[ "$(event hs hs failed 'e["policy"], "blocking" in e["error"], e["session"]')" = "('closed', True, None)" ] ||
  fail "failed event: $(grep failed "$TMP/hs.events")"

# A socket directory that is a symbolic link is not followed.
rmdir "$TMP/sb" 2>/dev/null || true
mkdir "$TMP/elsewhere"
ln -s "$TMP/elsewhere" "$TMP/sb"
rc=0
sctl --json serve sandbox build_id=b1 sandbox_id=x >"$TMP/link.json" || rc=$?
[ $rc -eq 1 ] && [ "$(json 'j["code"]' <"$TMP/link.json")" = socket_failed ] ||
  fail "symlinked directory: $(cat "$TMP/link.json")"
grep -q 'symbolic link' "$TMP/link.json" || fail "$(cat "$TMP/link.json")"
[ -z "$(ls -A "$TMP/elsewhere")" ] || fail "a socket was made through the link"
rm "$TMP/sb"

# A reload bringing a listener named as a live restore is refused.
sctl serve sandbox build_id=b1 sandbox_id=c --id clash >/dev/null
cp "$TMP/d.conf" "$TMP/d.conf.keep"
cat >>"$TMP/d.conf" <<CONF
listeners = ( { name = "clash"; socket = "$TMP/clash.sock";
                source = { plugin = "mmap"; path = "$STORE/b1/mem"; }; } );
CONF
rc=0
sctl reload 2>"$TMP/clash.err" || rc=$?
[ $rc -eq 1 ] && grep -q 'listener clash has the name of a live per-restore listener' "$TMP/clash.err" ||
  fail "reload with a clashing name: $rc $(cat "$TMP/clash.err")"
cp "$TMP/d.conf.keep" "$TMP/d.conf"
sctl stop clash >/dev/null

# Versions: 1 is spoken, another is refused.
python3 - "$CTL" >"$TMP/version.out" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
for req in ({"cmd": "version"}, {"cmd": "list", "v": 1}, {"cmd": "list", "v": 2}):
    f.write(json.dumps(req) + "\n")
    f.flush()
    print(f.readline().strip())
PY
[ "$(sed -n 1p "$TMP/version.out" | json 'j["protocol"]')" = 1 ] ||
  fail "version: $(cat "$TMP/version.out")"
[ "$(sed -n 2p "$TMP/version.out" | json '"listeners" in j')" = True ] ||
  fail "v 1: $(cat "$TMP/version.out")"
[ "$(sed -n 3p "$TMP/version.out" | json 'j["code"]')" = unsupported_version ] ||
  fail "v 2: $(cat "$TMP/version.out")"

# A plugin chosen by a variable is refused at load.
cat >"$TMP/bad.conf" <<CONF
templates = ( { name = "t"; vars = [ "p" ]; socket = "$TMP/{p}.sock";
                source = { plugin = "{p}"; path = "/x"; }; } );
CONF
rc=0
"$UFFDKIT" --check-config "$TMP/bad.conf" >"$TMP/bad.out" 2>&1 || rc=$?
[ $rc -ne 0 ] && grep -q "'plugin' cannot hold a {variable}" "$TMP/bad.out" ||
  fail "plugin from a variable: $(cat "$TMP/bad.out")"
echo "serve-errors: ok"
