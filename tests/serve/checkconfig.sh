#!/bin/bash
# --check-config checks templates as a serve would build them: each is
# expanded with every variable set to a valid placeholder and its plugins
# check their settings; an error names the file and line of the setting
# in the template (a source's setting, a layer's unknown key), and the
# template.  A file whose templates are right is OK.
. "$(dirname "$0")/common.sh"

cat >"$TMP/bad.conf" <<CONF
uffdkit = { control_socket = ""; };
templates = (
  { name = "good"; vars = [ "b" ];
    socket = "$TMP/sb/{id}.sock";
    source = { plugin = "mmap"; path = "$STORE/{b}/mem"; }; },
  { name = "slow"; vars = [ "b" ];
    socket = "$TMP/sb/{id}.sock";
    source = { plugin = "http"; url = "http://127.0.0.1:1/{b}";
               timeout = "soon"; }; },
  { name = "layered"; socket = "$TMP/sb/{id}.sock";
    source = { plugin = "mmap"; path = "$STORE/mem"; };
    layers = ( { layer = "cache";
                 bogus = 1; } ); }
);
CONF
rc=0
"$UFFDKIT" --check-config "$TMP/bad.conf" --plugin-dir "$PLUGINS" \
  >"$TMP/bad.out" 2>"$TMP/bad.err" || rc=$?
[ $rc -eq 1 ] || fail "--check-config of bad templates: exit $rc: $(cat "$TMP/bad.err")"
grep -q "template slow: $TMP/bad.conf:9: slow/http: 'timeout' must be a duration" \
  "$TMP/bad.err" || fail "the http setting: $(cat "$TMP/bad.err")"
grep -q "template layered: $TMP/bad.conf:13: layered/cache: unknown setting 'bogus'" \
  "$TMP/bad.err" || fail "the layer's key: $(cat "$TMP/bad.err")"
[ "$(grep -c error "$TMP/bad.err")" -eq 2 ] ||
  fail "errors beyond the two: $(cat "$TMP/bad.err")"

head -n 5 "$TMP/bad.conf" | sed '$ s/,$//' >"$TMP/good.conf"
echo ");" >>"$TMP/good.conf"
"$UFFDKIT" --check-config "$TMP/good.conf" --plugin-dir "$PLUGINS" \
  >"$TMP/good.out" 2>"$TMP/good.err" ||
  fail "--check-config of a good template: $(cat "$TMP/good.err")"
[ "$(cat "$TMP/good.out")" = "$TMP/good.conf: OK (0 listeners, 1 template)" ] ||
  fail "good: $(cat "$TMP/good.out")"
