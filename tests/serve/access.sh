#!/bin/bash
# Who may serve: a control peer whose uid is neither root, the daemon's
# user, nor in control_allow_uids is refused (code denied) and serves
# nothing; one in the list serves.  The per-restore socket goes to the
# jailer's uid only when the template lists it in serve_uids: it then
# owns the socket and alone may connect (allow_uids); another uid is
# denied.
. "$(dirname "$0")/common.sh"

ALLOWED=4711
OTHER=4712
JAILER=5000
chmod 755 "$TMP" # other users reach the control socket
build b1 71 256
chmod -R a+rX "$STORE"
cat >"$TMP/d.conf" <<CONF
uffdkit = { control_socket = "$CTL"; control_allow_uids = [ $ALLOWED ]; };
templates = (
  { name = "sandbox"; vars = [ "build_id", "sandbox_id" ];
    socket = "$TMP/sb/{sandbox_id}.sock"; serve_uids = [ $JAILER ];
    source = { plugin = "mmap"; path = "$STORE/{build_id}/mem"; }; }
);
CONF
start_daemon d "$CTL" --config "$TMP/d.conf" --plugin-dir "$PLUGINS"
[ "$(stat -c %a "$CTL")" = 666 ] || fail "control socket mode with allow lists"

as() {
  local uid=$1
  shift
  setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"
}

rc=0
as $OTHER "$CTL_BIN" ctl --socket "$CTL" --json serve sandbox build_id=b1 \
  sandbox_id=x >"$TMP/other.json" 2>&1 || rc=$?
[ $rc -eq 1 ] && [ "$(json 'j["code"]' <"$TMP/other.json")" = denied ] ||
  fail "uid $OTHER: exit $rc: $(cat "$TMP/other.json")"
[ ! -e "$TMP/sb/x.sock" ] || fail "a refused peer served"

as $ALLOWED "$CTL_BIN" ctl --socket "$CTL" serve sandbox build_id=b1 \
  sandbox_id=a --id a >"$TMP/allowed.out" 2>&1 ||
  fail "uid $ALLOWED: $(cat "$TMP/allowed.out")"
[ -S "$TMP/sb/a.sock" ] || fail "no socket for the allowed peer"
sctl stop a >/dev/null

rc=0
sctl --json serve sandbox build_id=b1 sandbox_id=j --uid $OTHER \
  >"$TMP/uid-other.json" 2>&1 || rc=$?
[ $rc -eq 1 ] && [ "$(json 'j["code"]' <"$TMP/uid-other.json")" = denied ] ||
  fail "uid not in serve_uids: $(cat "$TMP/uid-other.json")"

sctl serve sandbox build_id=b1 sandbox_id=j --id j --uid $JAILER >/dev/null
[ "$(stat -c '%u %a' "$TMP/sb/j.sock")" = "$JAILER 600" ] ||
  fail "jailer's socket: $(stat -c '%u %a' "$TMP/sb/j.sock")"
# root is not the jailer: refused, and the socket stays for the jailer.
sctl serve sandbox build_id=b1 sandbox_id=k --id k --uid $JAILER >/dev/null
sim 0 root-refused run --socket "$TMP/sb/k.sock" --image "$STORE/b1/mem" \
  --expect-refused --timeout 10
chmod 755 "$TMP/sb"
# userfaultfd(2) without privilege may be off (vm.unprivileged_userfaultfd):
# the jailer's VMM keeps CAP_SYS_PTRACE, which allows it.
as $JAILER --inh-caps=+sys_ptrace --ambient-caps=+sys_ptrace "$SIM" run --socket "$TMP/sb/j.sock" --image "$STORE/b1/mem" \
  --timeout 60 >"$TMP/jailer.out" 2>"$TMP/jailer.err" ||
  fail "the jailer's VM: $(cat "$TMP/jailer.err")"
verified jailer 256
echo "serve-access: ok"
