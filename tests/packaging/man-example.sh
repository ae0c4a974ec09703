#!/bin/bash
# The complete example of uffdkit-plugin(3), taken from the page: its code
# built with the page's own cc command (pkg-config pointed at this build
# tree), loaded by the daemon, refusing a bad setting, and serving a restore
# the simulator checks.
source "$(dirname "$0")/../lib/functions.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PAGE=$SRC/include/uffdkit/uffdkit-plugin.3
for tool in cc pkg-config; do
  command -v $tool >/dev/null || { echo "no $tool" >&2; exit 77; }
done

# block N: the Nth .nf/.fi block after ".SH EXAMPLE", roff escapes undone.
block() {
  awk -v want="$1" '
    /^\.SH EXAMPLE/ { on = 1; next }
    on && /^\.SH / { exit }
    on && /^\.nf/ { n++; inblock = 1; next }
    on && /^\.fi/ { inblock = 0; if (n == want) exit; next }
    on && inblock && n == want { print }
  ' "$PAGE" | sed -e 's/\\-/-/g' -e 's/\\(aq/'"'"'/g' -e 's/\\(dq/"/g' \
    -e 's/\\&//g' -e 's/\\e/\\/g'
}

mkdir "$TMP/fill"
block 1 >"$TMP/fill/fill.c"
grep -qx "UFFDKIT_PLUGIN(plugin)" "$TMP/fill/fill.c" ||
  fail "no plugin code found in the EXAMPLE section"
# The page's build command, and only that (not the install into the
# package's plugin directory), with warnings as errors.
block 2 | sed -n '1,/fill\.c$/p' | sed 's/^cc /cc -Werror /' \
  >"$TMP/fill/build.sh"
grep -q '^cc -Werror .*-shared' "$TMP/fill/build.sh" || fail "no cc command"
(cd "$TMP/fill" && PKG_CONFIG_PATH=$BUILD/packaging bash -ex build.sh) \
  >"$TMP/build.log" 2>&1 || {
  cat "$TMP/build.log" "$TMP/fill/build.sh"
  fail "the page's example does not build"
}
mkdir "$TMP/plugins"
cp "$TMP/fill/libfill.so" "$TMP/plugins/"
"$UFFDKIT" --plugin-dir "$TMP/plugins" --describe fill >"$TMP/describe.out" ||
  fail "--describe fill failed"
grep -qx 'name: fill' "$TMP/describe.out" || fail "not described"

conf() {
  cat >"$TMP/$1.conf" <<CONF
uffdkit = { plugin_dir = "$TMP/plugins"; };
listeners = ( { name = "$1"; socket = "$TMP/$1.sock";
  source = { plugin = "fill"; size = "16M"; value = $2; }; } );
CONF
}
conf bad 300
out=$("$UFFDKIT" --check-config "$TMP/bad.conf" 2>&1) &&
  fail "value = 300 was accepted"
grep -q 'value must be 0 to 255' <<<"$out" || fail "unexpected message: $out"

conf fill 7
head -c 16M /dev/zero | tr '\0' '\7' >"$TMP/sevens.img"
start_daemon fill "$TMP/fill.sock" --config "$TMP/fill.conf"
rc=0
"$SIM" run --socket "$TMP/fill.sock" --image "$TMP/sevens.img" --vcpus 2 \
  --timeout 60 >"$TMP/sim.out" 2>"$TMP/sim.log" || rc=$?
cat "$TMP/sim.out"
[ $rc -eq 0 ] || { cat "$TMP/sim.log"; fail "uffdkit-sim exited with $rc"; }
stop_daemons
echo "ok: the man page's example builds, loads and serves"
