#!/bin/bash
# Plugin files and the search path.  As root, a plugin in a directory that
# others can write, or owned by another user, is refused with a message
# naming it, and is never dlopen'ed (its constructor would run as root):
# libtmarker.so leaves a file behind whenever it is loaded, and does so in
# the trusted case below, so the check cannot pass by never loading it.
# --plugin-dir adds to the built-in directory; --list-plugins is sorted;
# --describe names every callback a plugin has.
source "$(dirname "$0")/../lib/functions.sh"
PLUGINS=${TEST_PLUGIN_DIR:?TEST_PLUGIN_DIR is set by ctest}
need_built "$UFFDKIT" "$PLUGINS/libtmarker.so"
[ "$(id -u)" -eq 0 ] || { echo "SKIPPED: the checks apply to root"; exit 77; }
export UFK_TEST_MARKER=$TMP/loaded
chmod 0755 "$TMP"

# list_with DIR OUT: --list-plugins with DIR added; its exit code.
list_with() {
  local rc=0
  "$UFFDKIT" --plugin-dir "$1" --list-plugins >"$2.out" 2>"$2.err" || rc=$?
  return $rc
}

# refused DIR WHAT: DIR's libtmarker.so is refused by --list-plugins,
# --describe and a configuration, each naming the file, and never loaded.
refused() {
  local dir=$1 what=$2 rc=0
  rm -f "$UFK_TEST_MARKER"
  list_with "$dir" "$TMP/list" || rc=$?
  [ $rc -ne 0 ] || fail "$what: --list-plugins succeeded"
  grep -q "$dir/libtmarker.so: refusing to load it: .*$what" "$TMP/list.err" ||
    fail "$what: no error naming the file: $(cat "$TMP/list.err")"
  grep -Eq '^mmap +source' "$TMP/list.out" ||
    fail "$what: the built-in plugins were not listed"
  "$UFFDKIT" --plugin-dir "$dir" --describe tmarker 2>"$TMP/desc.err" &&
    fail "$what: --describe succeeded"
  grep -q "refusing to load it" "$TMP/desc.err" || fail "$what: --describe"
  printf 'listeners = ({ name = "m"; socket = "%s/m.sock";\n  source = { plugin = "tmarker"; }; });\n' \
    "$TMP" >"$TMP/m.conf"
  "$UFFDKIT" --plugin-dir "$dir" --check-config "$TMP/m.conf" \
    >/dev/null 2>"$TMP/check.err" && fail "$what: --check-config accepted it"
  grep -q "refusing to load it" "$TMP/check.err" ||
    fail "$what: --check-config: $(cat "$TMP/check.err")"
  [ ! -e "$UFK_TEST_MARKER" ] || fail "$what: the plugin was loaded"
  echo "ok: refused ($what)"
}

D=$TMP/plugins
mkdir "$D"
cp "$PLUGINS/libtmarker.so" "$PLUGINS/libtgood.so" "$D/"
chmod 0755 "$D" "$D"/*.so

# Trusted: loaded (the marker appears), listed with the built-in ones.
list_with "$D" "$TMP/ok" || fail "trusted dir: $(cat "$TMP/ok.err")"
[ -e "$UFK_TEST_MARKER" ] || fail "the marker plugin leaves no marker"
for p in mmap file tgood tmarker; do
  grep -Eq "^$p +source" "$TMP/ok.out" || fail "$p not listed"
done
names=$(awk 'NR > 1 { print $1 }' "$TMP/ok.out")
[ "$names" = "$(sort <<<"$names")" ] || fail "--list-plugins is not sorted"
echo "ok: search path lists built-in and added plugins, sorted"

chmod 0777 "$D"
refused "$D" "directory $D is writable by others"
chmod 1777 "$D"
refused "$D" "directory $D is writable by others"
chmod 0775 "$D"
refused "$D" "directory $D is writable by its group"
chmod 0755 "$D"
chown nobody "$D"
refused "$D" "directory $D is owned by uid $(id -u nobody)"
chown root "$D"
chmod 0666 "$D/libtmarker.so"
refused "$D" "the plugin file $D/libtmarker.so is writable by others"
chmod 0755 "$D/libtmarker.so"
chown nobody "$D/libtmarker.so"
refused "$D" "the plugin file $D/libtmarker.so is owned by uid"
chown root "$D/libtmarker.so"
# A link into a trusted place does not launder an untrusted one.
W=$TMP/ww
mkdir -m 0777 "$W"
cp "$PLUGINS/libtmarker.so" "$W/"
ln -s "$W" "$TMP/link"
rm -f "$UFK_TEST_MARKER"
list_with "$TMP/link" "$TMP/link" && fail "a link to a writable dir passed"
[ ! -e "$UFK_TEST_MARKER" ] || fail "loaded through a link"
echo "ok: refused through a symbolic link"

# --describe lists every callback, identity included.
"$UFFDKIT" --describe mmap | grep -qx 'callbacks:.* identity' ||
  fail "--describe mmap does not list identity"
"$UFFDKIT" --plugin-dir "$D" --describe tgood | grep -qx \
  'callbacks: load create destroy get_size read caps' ||
  fail "--describe tgood: $("$UFFDKIT" --plugin-dir "$D" --describe tgood | grep callbacks)"
echo "ok: --describe lists every callback"

# Two --plugin-dir options add both; a config using mmap still finds it.
E=$TMP/more
mkdir -m 0755 "$E"
cp "$PLUGINS/libtlayer.so" "$E/"
"$UFFDKIT" --plugin-dir "$D" --plugin-dir "$E" --list-plugins >"$TMP/two.out"
grep -Eq '^tlayer +layer' "$TMP/two.out" || fail "second --plugin-dir ignored"
grep -Eq '^tgood +source' "$TMP/two.out" || fail "first --plugin-dir lost"
"$SIM" mkimage "$TMP/mem" --size 1M --seed 1 >/dev/null
printf 'listeners = ({ name = "a"; socket = "%s/a.sock";\n  source = { plugin = "mmap"; path = "%s/mem"; };\n  layers = ({ layer = "tlayer"; }); });\n' \
  "$TMP" "$TMP" >"$TMP/a.conf"
"$UFFDKIT" --plugin-dir "$E" --check-config "$TMP/a.conf" ||
  fail "mmap and tlayer not both found"
echo "ok: --plugin-dir adds to the built-in directory"
