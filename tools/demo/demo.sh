#!/usr/bin/env bash
# The uffdkit demo: restores two VMs through the daemon with the VMM
# simulator and verifies every byte.
#
#   tools/demo/demo.sh [BUILD_DIR]      (default: ./build)
#
# It makes a 256 MiB memory image, serves it with the mmap source from a
# config derived from conf/uffdkit.conf (socket and image in a temporary
# directory), restores one VM (4 KiB pages, 2 vCPUs touching every page in
# random order), then a second one whose balloon discards 32 MiB, prints
# what happened, stops the daemon and removes everything it made.  Exits
# non-zero if any step fails.  Needs userfaultfd, so run it as root.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
[ -d "$BUILD" ] || { echo "demo: build directory $BUILD not found (cmake -B build && cmake --build build)" >&2; exit 2; }
BUILD=$(cd "$BUILD" && pwd)
UFFDKIT=$BUILD/bin/uffdkit
SIM=$BUILD/bin/uffdkit-sim
for b in "$UFFDKIT" "$SIM"; do
  [ -x "$b" ] || { echo "demo: $b is missing: build the tree first" >&2; exit 2; }
done

IMAGE_SIZE=256M
PAGES=65536               # 256 MiB of 4 KiB pages
BALLOON=64M:32M           # memory-file offset and length the balloon discards
BALLOON_PAGES=8192

TMP=$(mktemp -d /tmp/uffdkit-demo.XXXXXX)
DAEMON=
cleanup() {
  local rc=$?
  if [ -n "$DAEMON" ]; then
    kill -TERM "$DAEMON" 2>/dev/null || true
    wait "$DAEMON" 2>/dev/null || true
  fi
  if [ $rc -ne 0 ] && [ -f "$TMP/daemon.log" ]; then
    echo "---- daemon log" >&2
    tail -n 30 "$TMP/daemon.log" >&2
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "demo: FAILED: $*" >&2
  exit 1
}

# field FILE KEY: a key=value of a simulator summary line.
field() {
  sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" "$1"
}

# ended N: waits until the daemon logged the end of N sessions.
ended() {
  local i
  for ((i = 0; i < 100; i++)); do
    [ "$(grep -c ' ended: ' "$TMP/daemon.log")" -ge "$1" ] && return 0
    sleep 0.05
  done
  fail "the daemon did not log the end of session $1"
}

# vm N NAME ARGS...: restores a VM with the simulator and prints its summary.
vm() {
  local n=$1 what=$2 rc=0
  shift 2
  echo
  echo "VM $n: $what"
  "$SIM" run --socket "$TMP/vm.sock" --image "$TMP/mem" --page-size 4K \
    --vcpus 2 --order random --timeout 60 "$@" \
    >"$TMP/vm$n.out" 2>"$TMP/vm$n.err" || rc=$?
  if [ $rc -ne 0 ]; then
    cat "$TMP/vm$n.err" >&2
    fail "uffdkit-sim exited with status $rc"
  fi
  local out=$TMP/vm$n.out
  [ "$(field "$out" mismatches)" = 0 ] || fail "VM $n: pages held wrong bytes"
  [ "$(field "$out" pages)" = "$PAGES" ] || fail "VM $n: $(field "$out" pages) pages restored, expected $PAGES"
  printf '  restored   %s pages (%s MiB) in %.2f s\n' "$(field "$out" pages)" \
    $(($(field "$out" bytes) >> 20)) "$(field "$out" seconds)"
  printf '  per fault  %s us on average (p50 %s us, p99 %s us, max %s us)\n' \
    "$(field "$out" us_per_fault)" "$(field "$out" p50_us)" \
    "$(field "$out" p99_us)" "$(field "$out" max_us)"
  printf '  verified   %s bytes, every page equal to the image\n' \
    "$(field "$out" bytes)"
  local zc
  zc=$(field "$out" zero_checked)
  if [ "$zc" != 0 ]; then
    printf '  balloon    %s discarded pages read back as zeros\n' "$zc"
  fi
  ended "$n"
  local line
  line=$(grep ' ended: ' "$TMP/daemon.log" | sed -n "${n}p")
  printf '  daemon     %s (from its log)\n' "${line#*ended: }"
}

echo "uffdkit demo (build: $BUILD)"

# 1. A memory image, as Firecracker's memory file would be: random bytes with
# about one page in ten left as a hole.
"$SIM" mkimage "$TMP/mem" --size "$IMAGE_SIZE" --seed 7 ||
  fail "uffdkit-sim mkimage"
echo "  image      $TMP/mem: 256 MiB, $(($(stat -c %b "$TMP/mem") * 512 >> 20)) MiB on disk (holes read as zeros)"

# 2. The example config, pointed at the image and a socket of our own.
sed -e "s|\"/run/uffdkit/vm.sock\"|\"$TMP/vm.sock\"|" \
  -e "s|\"/srv/snap/vm/mem\"|\"$TMP/mem\"|" \
  "$REPO/conf/uffdkit.conf" >"$TMP/uffdkit.conf"
grep -q "\"$TMP/vm.sock\"" "$TMP/uffdkit.conf" &&
  grep -q "\"$TMP/mem\"" "$TMP/uffdkit.conf" ||
  fail "conf/uffdkit.conf no longer has the socket and path the demo replaces"
"$UFFDKIT" --check-config "$TMP/uffdkit.conf" >/dev/null ||
  fail "uffdkit --check-config $TMP/uffdkit.conf"

# 3. The daemon.
: >"$TMP/daemon.log"
"$UFFDKIT" --config "$TMP/uffdkit.conf" 2>>"$TMP/daemon.log" &
DAEMON=$!
for ((i = 0; i < 200; i++)); do
  grep -q ' info: worker [0-9]* ready' "$TMP/daemon.log" && break
  kill -0 "$DAEMON" 2>/dev/null || { wait "$DAEMON" || true; DAEMON=; fail "the daemon exited at start"; }
  sleep 0.05
done
[ -S "$TMP/vm.sock" ] || fail "the daemon did not open $TMP/vm.sock"
echo "  daemon     pid $DAEMON, $(sed -n 's/.*info: \(listener vm: .*\)/\1/p' "$TMP/daemon.log")"

# 4. Two VMs.
vm 1 "4 KiB pages, 2 vCPUs, every page touched once in random order" --seed 1
vm 2 "the same, then the balloon discards 32 MiB at offset 64 MiB" --seed 2 \
  --balloon "$BALLOON"
[ "$(field "$TMP/vm2.out" zero_checked)" = "$BALLOON_PAGES" ] ||
  fail "VM 2: $(field "$TMP/vm2.out" zero_checked) balloon pages checked, expected $BALLOON_PAGES"

# 5. Stop.
echo
kill -TERM "$DAEMON"
rc=0
wait "$DAEMON" || rc=$?
DAEMON=
[ $rc -eq 0 ] || fail "the daemon exited with status $rc on SIGTERM"
if grep -q ' error: ' "$TMP/daemon.log"; then
  grep ' error: ' "$TMP/daemon.log" >&2
  fail "the daemon logged errors"
fi
echo "daemon stopped cleanly; $((2 * PAGES)) pages restored and verified"
