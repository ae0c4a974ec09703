#!/bin/bash
# The Debian packages end to end: built with cpack from a fresh build tree
# configured for /usr, checked, installed with dpkg, used (the installed
# daemon lists its plugins; examples/pattern is built against uffdkit-dev
# with pkg-config alone, installed into the plugin directory and serves a
# restore through the installed daemon and simulator; the installed
# `uffdkit ctl` lists a live VM's session and GET /metrics counts its
# faults), then removed and purged.  It changes the system, so it runs
# only with UFFDKIT_PACKAGE_TEST=1.
if [ "${UFFDKIT_PACKAGE_TEST:-}" != 1 ]; then
  echo "installs and removes packages: set UFFDKIT_PACKAGE_TEST=1 to run" >&2
  exit 77
fi
source "$(dirname "$0")/../lib/functions.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || fail "dpkg -i needs root"
for tool in dpkg dpkg-deb cmake cpack make cc pkg-config curl; do
  command -v $tool >/dev/null || fail "$tool is missing"
done

INSTALLED=0
EXAMPLE_SO=
HELD=
pkg_cleanup() {
  local pid
  [ -z "$HELD" ] || kill -KILL "$HELD" 2>/dev/null || true
  for pid in "${DAEMON_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  DAEMON_PIDS=()
  [ -z "$EXAMPLE_SO" ] || rm -f "$EXAMPLE_SO"
  if [ $INSTALLED -eq 1 ]; then
    dpkg -P uffdkit-dev uffdkit >/dev/null 2>&1 || true
  fi
}
trap 'rc=$?; pkg_cleanup; (exit $rc); cleanup' EXIT

# ---- build ----
PB=$TMP/build
cmake -S "$SRC" -B "$PB" -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$TMP/configure.log" 2>&1 ||
  fail "configure failed: $(tail -20 "$TMP/configure.log")"
cmake --build "$PB" -j "$(nproc)" >"$TMP/build.log" 2>&1 ||
  fail "build failed: $(tail -20 "$TMP/build.log")"
(cd "$PB" && cpack -G DEB) >"$TMP/cpack.log" 2>&1 ||
  fail "cpack failed: $(tail -20 "$TMP/cpack.log")"
DEB=$(echo "$PB"/uffdkit_*.deb)
DEV=$(echo "$PB"/uffdkit-dev_*.deb)
[ -f "$DEB" ] && [ -f "$DEV" ] || fail "cpack made: $(ls "$PB"/*.deb)"

# ---- what the packages hold ----
[ "$(dpkg-deb -f "$DEB" Package)" = uffdkit ] || fail "runtime package name"
[ "$(dpkg-deb -f "$DEV" Package)" = uffdkit-dev ] || fail "dev package name"
deps=$(dpkg-deb -f "$DEB" Depends)
# libzstd1, liblz4-1: the diff source's compressed builds; libssl3 holds
# libcrypto (uffdkit-snap's SHA-256).
for d in libconfig9 libcjson1 libcurl4 libuuid1 libzstd1 liblz4-1 libssl3; do
  grep -qw "$d" <<<"$deps" || fail "uffdkit does not depend on $d: $deps"
done
# The metrics endpoint is libmicrohttpd's: a daemon built with it needs it.
if objdump -p "$PB/bin/uffdkit" 2>/dev/null | grep -q 'NEEDED *libmicrohttpd'; then
  grep -qw libmicrohttpd12 <<<"$deps" ||
    fail "uffdkit links libmicrohttpd but does not depend on it: $deps"
fi
files=$(dpkg-deb -c "$DEB" | awk '{print $6}')
devfiles=$(dpkg-deb -c "$DEV" | awk '{print $6}')
for f in ./usr/bin/uffdkit ./usr/bin/uffdkit-snap ./usr/bin/uffdkit-sim \
  ./usr/bin/uffdkit-capture \
  ./usr/lib/systemd/system/uffdkit.service ./usr/lib/tmpfiles.d/uffdkit.conf \
  ./usr/share/man/man1/uffdkit-sim.1 ./usr/share/man/man1/uffdkit-capture.1 \
  ./usr/share/uffdkit/nginx/uffdkit-tier.conf; do
  grep -qx "$f" <<<"$files" || fail "uffdkit lacks $f"
done
plugins=$(grep '/uffdkit/plugins/lib.*\.so$' <<<"$files") ||
  fail "uffdkit has no plugins"
grep -q '/libmmap\.so$' <<<"$plugins" || fail "uffdkit lacks the mmap plugin"
grep -q '^\./usr/include' <<<"$files" && fail "uffdkit ships headers"
for f in ./usr/include/uffdkit/plugin.h ./usr/share/man/man3/uffdkit-plugin.3; do
  grep -qx "$f" <<<"$devfiles" || fail "uffdkit-dev lacks $f"
done
grep -q '/pkgconfig/uffdkit-plugin\.pc$' <<<"$devfiles" ||
  fail "uffdkit-dev lacks uffdkit-plugin.pc"
dpkg-deb -e "$DEB" "$TMP/control"
if [ -f "$SRC/conf/uffdkit.conf" ]; then
  grep -qx ./etc/uffdkit/uffdkit.conf <<<"$files" ||
    fail "uffdkit lacks /etc/uffdkit/uffdkit.conf"
  grep -qx /etc/uffdkit/uffdkit.conf "$TMP/control/conffiles" ||
    fail "/etc/uffdkit/uffdkit.conf is not a conffile"
fi

# ---- install ----
dpkg -l uffdkit 2>/dev/null | grep -q '^ii' &&
  echo "note: replacing the installed uffdkit"
INSTALLED=1
dpkg -i "$DEB" "$DEV" >"$TMP/dpkg.log" 2>&1 ||
  fail "dpkg -i failed: $(cat "$TMP/dpkg.log")"
# Enabled as an admin would, so the purge has a link to take away.
mkdir -p /etc/systemd/system/multi-user.target.wants
ln -sf /usr/lib/systemd/system/uffdkit.service \
  /etc/systemd/system/multi-user.target.wants/uffdkit.service
st=$(stat -c '%a %U %G' /run/uffdkit 2>&1) || fail "no /run/uffdkit: $st"
[ "$st" = "750 root root" ] || fail "/run/uffdkit is $st"
RUNDIR_INO=$(stat -c %i /run/uffdkit)
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify --man=no \
    /usr/lib/systemd/system/uffdkit.service 2>&1) ||
    fail "installed unit does not verify: $out"
fi
if [ -f /etc/uffdkit/uffdkit.conf ]; then
  /usr/bin/uffdkit --check-config /etc/uffdkit/uffdkit.conf ||
    fail "the installed example config does not pass --check-config"
fi
if command -v man >/dev/null; then
  man -w uffdkit-plugin | grep -q '/man3/uffdkit-plugin\.3' ||
    fail "man uffdkit-plugin finds no page"
fi

/usr/bin/uffdkit --version
list=$(/usr/bin/uffdkit --list-plugins) || fail "--list-plugins failed"
echo "$list"
for so in $plugins; do
  name=$(basename "$so" .so)
  grep -Eq "^${name#lib} " <<<"$list" || fail "--list-plugins lacks ${name#lib}"
done

# ---- an out-of-tree plugin against uffdkit-dev ----
cp -r "$SRC/examples/pattern" "$TMP/pattern"
unset PKG_CONFIG_PATH
PLUGINDIR=$(pkg-config --variable=plugindir uffdkit-plugin) ||
  fail "pkg-config does not find uffdkit-plugin"
[ -f "$PLUGINDIR/libmmap.so" ] ||
  fail "plugindir $PLUGINDIR is not where the packaged plugins are"
[ "$(pkg-config --modversion uffdkit-plugin)" = \
  "$(dpkg-deb -f "$DEB" Version | sed 's/-[^-]*$//')" ] ||
  fail "uffdkit-plugin.pc has another version than the package"
make -C "$TMP/pattern" >"$TMP/make.log" 2>&1 ||
  fail "make against uffdkit-dev failed: $(cat "$TMP/make.log")"
EXAMPLE_SO=$PLUGINDIR/libpattern.so
make -C "$TMP/pattern" install >>"$TMP/make.log" 2>&1 ||
  fail "make install failed: $(cat "$TMP/make.log")"
[ -f "$EXAMPLE_SO" ] || fail "make install did not install $EXAMPLE_SO"
/usr/bin/uffdkit --list-plugins | grep -q '^pattern ' ||
  fail "the installed daemon does not list the example plugin"

UFFDKIT=/usr/bin/uffdkit
start_daemon pattern "$TMP/pattern.sock" --socket "$TMP/pattern.sock" \
  pattern size=64M seed=11
"$TMP/pattern/pattern-image" "$TMP/pattern.img" 64M 11
rc=0
/usr/bin/uffdkit-sim run --socket "$TMP/pattern.sock" \
  --image "$TMP/pattern.img" --vcpus 2 --regions 2 --order random \
  --timeout 120 >"$TMP/sim.out" 2>"$TMP/sim.log" || rc=$?
cat "$TMP/sim.out"
[ $rc -eq 0 ] || { cat "$TMP/sim.log"; fail "uffdkit-sim exited with $rc"; }
stop_daemons
make -C "$TMP/pattern" uninstall >/dev/null || fail "make uninstall failed"
[ ! -e "$EXAMPLE_SO" ] || fail "make uninstall left $EXAMPLE_SO"
EXAMPLE_SO=

# ---- the control socket and metrics of the installed daemon ----
# A config setting control_socket and metrics on a free port; a VM held
# 5 s after its restore: meanwhile the installed `uffdkit ctl` lists its
# session, and GET /metrics counts every one of its faults.
/usr/bin/uffdkit-sim mkimage "$TMP/held.img" --size 16M --seed 13 >/dev/null ||
  fail "uffdkit-sim mkimage failed"
cat >"$TMP/ctl.conf" <<CONF
uffdkit = { control_socket = "$TMP/ctl.sock"; metrics = "127.0.0.1:0"; };
listeners = (
  { name = "pkg"; socket = "$TMP/held.sock";
    source = { plugin = "mmap"; path = "$TMP/held.img"; }; }
);
CONF
/usr/bin/uffdkit --check-config "$TMP/ctl.conf" >/dev/null ||
  fail "$TMP/ctl.conf does not pass --check-config"
start_daemon ctl "$TMP/held.sock" --config "$TMP/ctl.conf"
wait_for_socket "$TMP/ctl.sock"
/usr/bin/uffdkit-sim run --socket "$TMP/held.sock" --image "$TMP/held.img" \
  --vcpus 2 --hold 5 --timeout 120 >"$TMP/held.out" 2>"$TMP/held.log" &
HELD=$!
# A session row: id, listener, pid, ..., faults, faults per second; every
# page has faulted once the restore is over and the VM is held.
held_listed() {
  /usr/bin/uffdkit ctl --socket "$TMP/ctl.sock" list >"$TMP/ctl-list.out" &&
    awk -v p=$HELD '$2 == "pkg" && $3 == p && $(NF - 1) == 4096 { ok = 1 }
      END { exit !ok }' "$TMP/ctl-list.out"
}
for ((i = 0; i < 80; i++)); do
  held_listed && break
  sleep 0.05
done
cat "$TMP/ctl-list.out"
held_listed ||
  fail "uffdkit ctl list has no session of pid $HELD with 4096 faults"
kill -0 $HELD 2>/dev/null ||
  fail "the held VM exited early: $(cat "$TMP/held.out" "$TMP/held.log")"
PORT=
for ((i = 0; i < 100; i++)); do
  PORT=$(sed -n 's|.*metrics on http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' \
    "$TMP/ctl.log" | tail -1)
  [ -n "$PORT" ] && break
  sleep 0.05
done
[ -n "$PORT" ] || fail "the installed daemon logged no metrics address"
curl -sf "http://127.0.0.1:$PORT/metrics" >"$TMP/metrics.txt" ||
  fail "GET http://127.0.0.1:$PORT/metrics failed"
sample() {
  awk -v m="$1" '$1 == m { print $2 }' "$TMP/metrics.txt"
}
faults=$(sample 'uffdkit_faults_total{listener="pkg"}')
live=$(sample 'uffdkit_sessions_live{listener="pkg"}')
echo "metrics on port $PORT: faults_total=$faults sessions_live=$live"
[ "$faults" = 4096 ] || fail "GET /metrics counts $faults faults, expected 4096"
[ "$live" = 1 ] || fail "GET /metrics counts $live live sessions, expected 1"
rc=0
wait $HELD || rc=$?
HELD=
cat "$TMP/held.out"
[ $rc -eq 0 ] && grep -q 'pages=4096 .*mismatches=0' "$TMP/held.out" ||
  fail "the held VM exited with $rc: $(cat "$TMP/held.out" "$TMP/held.log")"
stop_daemons

# ---- remove and purge ----
dpkg -r uffdkit-dev uffdkit >"$TMP/dpkg.log" 2>&1 ||
  fail "dpkg -r failed: $(cat "$TMP/dpkg.log")"
for f in /usr/bin/uffdkit /usr/include/uffdkit/plugin.h "$PLUGINDIR/libmmap.so" \
  /usr/lib/systemd/system/uffdkit.service; do
  [ ! -e "$f" ] || fail "$f is still there after dpkg -r"
done
dpkg -P uffdkit-dev uffdkit >"$TMP/dpkg.log" 2>&1 ||
  fail "dpkg -P failed: $(cat "$TMP/dpkg.log")"
[ ! -e /etc/uffdkit/uffdkit.conf ] || fail "purge left the config"
[ ! -L /etc/systemd/system/multi-user.target.wants/uffdkit.service ] ||
  fail "purge left the unit enabled"
# Left only if not empty (another process may also have made one since).
if [ "$(stat -c %i /run/uffdkit 2>/dev/null)" = "$RUNDIR_INO" ] &&
  [ -z "$(ls -A /run/uffdkit)" ]; then
  fail "/run/uffdkit is still there, and empty"
fi
INSTALLED=0
for p in uffdkit uffdkit-dev; do
  dpkg -l "$p" 2>/dev/null | grep -q '^[ir]i' && fail "$p is still installed"
done
echo "ok: packages built, installed, used by an out-of-tree plugin, removed"
