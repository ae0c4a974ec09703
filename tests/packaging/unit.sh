#!/bin/bash
# packaging/uffdkit.service passes systemd-analyze verify (with its binary
# paths pointed at the build tree), its sandbox lets through what the daemon
# needs (the userfaultfd, pidfd and memfd syscalls; CAP_KILL; /run/uffdkit
# writable) without CAP_SYS_PTRACE, and the tmpfiles entry makes
# /run/uffdkit 0750 root:root.
source "$(dirname "$0")/../lib/functions.sh"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
UNIT=$SRC/packaging/uffdkit.service
command -v systemd-analyze >/dev/null || { echo "no systemd-analyze" >&2; exit 77; }
[ -x "$UFFDKIT" ] || fail "$UFFDKIT not built"

# The same unit, running the build tree's daemon.
mkdir "$TMP/unit"
sed "s#/usr/bin/uffdkit#$UFFDKIT#g" "$UNIT" >"$TMP/unit/uffdkit.service"
grep -q "ExecStart=$UFFDKIT --config" "$TMP/unit/uffdkit.service" ||
  fail "ExecStart does not run /usr/bin/uffdkit --config"
# Documentation= pages belong to the daemon's own tests.
out=$(systemd-analyze verify --man=no "$TMP/unit/uffdkit.service" 2>&1) ||
  fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify warned: $out"

# A broken copy must fail, or the check above proves nothing.
sed 's/^Type=notify$/Type=notifyy/' "$TMP/unit/uffdkit.service" \
  >"$TMP/unit/broken.service"
bad=$(systemd-analyze verify --man=no "$TMP/unit/broken.service" 2>&1) || true
grep -q "notifyy" <<<"$bad" || fail "verify did not notice a bad Type="

# value KEY: the values of KEY= in the unit, one per line.
value() { sed -n "s/^$1=//p" "$UNIT"; }
[ "$(value Type)" = notify ] || fail "Type is not notify"
[ "$(value NotifyAccess)" = main ] || fail "NotifyAccess is not main"
[ -n "$(value WatchdogSec)" ] || fail "no WatchdogSec"
[ "$(value Restart)" = on-failure ] || fail "Restart is not on-failure"
case $(value KillMode) in
mixed | process) ;;
*) fail "KillMode must let the supervisor stop the worker" ;;
esac
[ "$(value FileDescriptorStoreMax)" -ge 4096 ] || fail "fd store too small"
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$UNIT" || fail "ExecReload"
[ "$(value ProtectSystem)" = strict ] || fail "ProtectSystem is not strict"
value ReadWritePaths | grep -qw /run/uffdkit || fail "/run/uffdkit not writable"

caps=$(value CapabilityBoundingSet)
for c in CAP_KILL CAP_CHOWN; do
  grep -qw "$c" <<<"$caps" || fail "$c missing from CapabilityBoundingSet"
done
grep -qw CAP_SYS_PTRACE <<<"$caps" && fail "CAP_SYS_PTRACE is not needed"

# expand NAME...: syscalls of every @group (recursively) and plain name.
expand() {
  local n
  for n in "$@"; do
    case $n in
    @*)
      expand $(systemd-analyze syscall-filter "$n" |
        sed -n '2,$p' | sed 's/#.*//' | awk 'NF {print $1}')
      ;;
    *) echo "$n" ;;
    esac
  done
}
allow=$(value SystemCallFilter | grep -v '^~' | tr ' ' '\n' | grep -v '^$')
deny=$(value SystemCallFilter | grep '^~' | sed 's/^~//' | tr ' ' '\n' |
  grep -v '^$')
[ -n "$allow" ] || fail "no SystemCallFilter allow list"
allowed=$(expand $allow | sort -u)
denied=$(expand $deny | sort -u)
[ "$(wc -l <<<"$allowed")" -gt 100 ] || fail "could not expand $allow"
for s in userfaultfd ioctl pidfd_open pidfd_send_signal memfd_create \
  signalfd4 epoll_wait accept4 sendmsg recvmsg socketpair execve clone \
  mmap munmap chown chmod fchmod bind listen setpriority eventfd2 madvise \
  fadvise64; do
  grep -qx "$s" <<<"$allowed" || fail "SystemCallFilter does not allow $s"
  grep -qx "$s" <<<"$denied" && fail "SystemCallFilter denies $s"
done
grep -qx '/dev/userfaultfd rw' <<<"$(value DeviceAllow)" ||
  fail "/dev/userfaultfd is not allowed"

# The tmpfiles entry, applied under a scratch root.
TMPFILES=$SRC/packaging/uffdkit.tmpfiles
if command -v systemd-tmpfiles >/dev/null; then
  mkdir -p "$TMP/root/run"
  systemd-tmpfiles --create --root="$TMP/root" "$TMPFILES" ||
    fail "systemd-tmpfiles --create failed"
  st=$(stat -c '%a %U %G %F' "$TMP/root/run/uffdkit")
  [ "$st" = "750 root root directory" ] || fail "/run/uffdkit is '$st'"
fi
echo "ok: unit verified, sandbox allows the daemon's syscalls, tmpfiles good"
