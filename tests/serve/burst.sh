#!/bin/bash
# An orchestrator may open a control connection per serve in flight, all
# at once: 200 connections made while the supervisor cannot accept (it is
# stopped with SIGSTOP) all wait in the socket's backlog, none refused,
# and each is answered once it runs again.
. "$(dirname "$0")/common.sh"

template_conf "$TMP/d.conf"
start_daemon d "$CTL" --config "$TMP/d.conf" --plugin-dir "$PLUGINS"
D=$(daemon_pid)
wait_worker "$D" >/dev/null
python3 - "$CTL" "$D" <<'PY' || fail "connections burst"
import json, os, signal, socket, sys, time
path, pid = sys.argv[1], int(sys.argv[2])
os.kill(pid, signal.SIGSTOP)
socks, refused = [], 0
try:
    for _ in range(200):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
            socks.append(s)
        except BlockingIOError:
            refused += 1
            s.close()
finally:
    os.kill(pid, signal.SIGCONT)
if refused:
    sys.exit("%d of 200 connections refused while the daemon was busy" % refused)
for s in socks:
    s.setblocking(True)
    s.settimeout(60)
    s.sendall(b'{"cmd":"version"}\n')
for s in socks:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        buf += chunk
    if json.loads(buf).get("protocol") != 1:
        sys.exit("answer: %r" % buf)
    s.close()
PY
