#!/usr/bin/env python3
"""The daemon under a stand-in for systemd's side of uffdkit.service.

Like the service manager with Type=notify, NotifyAccess=main, WatchdogSec
and FileDescriptorStoreMax, it gives the daemon $NOTIFY_SOCKET and
$WATCHDOG_USEC, reads every notification with the sender's credentials,
keeps the descriptors sent with FDSTORE=1 under their FDNAME (dropping them
on FDSTOREREMOVE=1), and after the main process crashes starts it again
with them in $LISTEN_FDS/$LISTEN_FDNAMES.  Checked: READY=1 once the worker
is up, STATUS=, WATCHDOG=1 pings, RELOADING=1 then READY=1 on SIGHUP, the
listener and every session descriptor in the store, a VM restore that goes
on across a crash and restart of the daemon and verifies every page, the
session's descriptors removed when it ends, STOPPING=1 on SIGTERM, and
nothing sent by any process but the main one.

usage: service-manager.py BUILD_DIR
"""
import array
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.path.abspath(sys.argv[1])
UFFDKIT = os.path.join(BUILD, "bin", "uffdkit")
SIM = os.path.join(BUILD, "bin", "uffdkit-sim")
WATCHDOG_USEC = 1_000_000
LISTEN_FDS_START = 3


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    raise SystemExit(1)


class Manager:
    """The notification socket, the fd store and the main process."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.path = os.path.join(tmp, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.messages = []  # (pid, text, names of the fds stored)
        self.store = {}  # FDNAME -> [fd, ...]
        self.lock = threading.Condition()
        self.main = None
        self.starts = 0
        threading.Thread(target=self.receive, daemon=True).start()

    def receive(self):
        creds = socket.CMSG_SPACE(12)
        rights = socket.CMSG_SPACE(253 * 4)
        while True:
            data, anc, _, _ = self.sock.recvmsg(65536, creds + rights)
            pid, fds = None, []
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = int.from_bytes(payload[:4], sys.byteorder)
                elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    a = array.array("i")
                    a.frombytes(payload[: len(payload) - len(payload) % 4])
                    fds.extend(a)
            text = data.decode()
            fields = dict(line.split("=", 1) for line in text.split("\n") if line)
            with self.lock:
                name = fields.get("FDNAME", "stored")
                if fields.get("FDSTORE") == "1":
                    self.store.setdefault(name, []).extend(fds)
                else:
                    for fd in fds:
                        os.close(fd)
                if fields.get("FDSTOREREMOVE") == "1":
                    for fd in self.store.pop(name, []):
                        os.close(fd)
                self.messages.append((pid, text))
                self.lock.notify_all()

    def wait(self, what, pred, timeout=20):
        """Waits until pred() (called under the lock) is true."""
        end = time.monotonic() + timeout
        with self.lock:
            while not pred():
                left = end - time.monotonic()
                if left <= 0:
                    fail("timed out waiting for " + what)
                self.lock.wait(left)

    def count(self, text, pid=None):
        return sum(1 for p, t in self.messages
                   if t == text and (pid is None or p == pid))

    def wait_message(self, text, after=0, timeout=20):
        """Waits for a message equal to text among messages[after:]."""
        self.wait(repr(text),
                  lambda: any(t == text for _, t in self.messages[after:]),
                  timeout)

    def start(self, conf):
        """Starts the main process, handing it the fd store like systemd."""
        self.starts += 1
        with self.lock:
            stored = [(name, fd) for name, fds in self.store.items()
                      for fd in fds]
        log = open(os.path.join(self.tmp, "daemon-%d.log" % self.starts), "w")
        pid = os.fork()
        if pid == 0:
            try:
                os.dup2(log.fileno(), 1)
                os.dup2(log.fileno(), 2)
                # Out of the way first (above every open descriptor), then
                # into place from 3 on.
                high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 200) for _, fd in stored]
                for i, fd in enumerate(high):
                    os.dup2(fd, LISTEN_FDS_START + i)
                    os.close(fd)
                env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                       "NOTIFY_SOCKET": self.path,
                       "WATCHDOG_USEC": str(WATCHDOG_USEC),
                       "WATCHDOG_PID": str(os.getpid())}
                if stored:
                    env["LISTEN_PID"] = str(os.getpid())
                    env["LISTEN_FDS"] = str(len(stored))
                    env["LISTEN_FDNAMES"] = ":".join(n for n, _ in stored)
                os.execve(UFFDKIT, [UFFDKIT, "--config", conf], env)
            finally:
                os._exit(127)
        log.close()
        self.main = pid
        return pid


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def main():
    for path in (UFFDKIT, SIM):
        if not os.access(path, os.X_OK):
            fail(path + " not built")
    tmp = tempfile.mkdtemp(prefix="uffdkit-test.")
    m = Manager(tmp)
    sim = None
    ok = False
    try:
        image = os.path.join(tmp, "mem")
        subprocess.run([SIM, "mkimage", image, "--size", "16M", "--seed", "9"],
                       check=True, stdout=subprocess.DEVNULL)
        vm_sock = os.path.join(tmp, "vm.sock")
        conf = os.path.join(tmp, "uffdkit.conf")
        with open(conf, "w") as f:
            f.write('uffdkit = { control_socket = "%s/control.sock"; };\n'
                    'listeners = ( { name = "vm"; socket = "%s";\n'
                    '  source = { plugin = "mmap"; path = "%s"; }; } );\n'
                    % (tmp, vm_sock, image))

        # Start: the listener in the store, then READY=1 and a status.
        a = m.start(conf)
        m.wait_message("READY=1")
        m.wait("the listener in the fd store",
               lambda: "L-vm" in m.store and "S-vm" in m.store)
        m.wait("STATUS=", lambda: any(t.startswith("STATUS=")
                                      for _, t in m.messages))
        ready_at = len(m.messages)

        # Watchdog pings at half of WATCHDOG_USEC.
        t0 = time.monotonic()
        m.wait("two WATCHDOG=1", lambda: m.count("WATCHDOG=1", a) >= 2, 5)
        took = time.monotonic() - t0
        if took > 2.5 * WATCHDOG_USEC / 1e6:
            fail("two watchdog pings took %.2f s" % took)

        # A reload: RELOADING=1, then READY=1 again.
        before = len(m.messages)
        os.kill(a, signal.SIGHUP)
        m.wait_message("RELOADING=1", before)
        reload_at = next(i for i in range(before, len(m.messages))
                         if m.messages[i][1] == "RELOADING=1")
        m.wait_message("READY=1", reload_at + 1)

        # A VM restore, slow enough to crash the daemon in the middle.
        sim = subprocess.Popen(
            [SIM, "run", "--socket", vm_sock, "--image", image,
             "--delay-us", "1000", "--timeout", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        m.wait("the session's descriptors in the fd store",
               lambda: sum(1 for n in m.store if n[:2] in
                           ("C-", "U-", "P-", "M-")) == 4)
        sid = next(n[2:] for n in m.store if n.startswith("U-"))
        for kind in "CUPM":
            if kind + "-" + sid not in m.store:
                fail("no %s-%s in the fd store: %s" % (kind, sid,
                                                       sorted(m.store)))
        time.sleep(0.5)

        # The main process crashes; KillMode=mixed takes the worker too.
        workers = children(a)
        os.kill(a, signal.SIGKILL)
        os.waitpid(a, 0)
        for w in workers:
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if sim.poll() is not None:
            fail("the restore ended before the crash: %s" % sim.stderr.read())

        # Restart=on-failure: a new main process, handed the store.
        restart_at = len(m.messages)
        b = m.start(conf)
        m.wait_message("READY=1", restart_at)
        try:
            out, err = sim.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            fail("the restore did not finish after the restart")
        print("restore across the restart: " + out.strip())
        if sim.returncode != 0 or " mismatches=0 " not in out:
            fail("uffdkit-sim exited with %d: %s" % (sim.returncode, err))
        with open(os.path.join(tmp, "daemon-2.log")) as f:
            if "session " + sid not in f.read():
                fail("the restarted daemon does not mention session " + sid)

        # The VM is gone: its descriptors leave the store.
        m.wait("the session's descriptors removed",
               lambda: not any(n.endswith("-" + sid) for n in m.store))
        for kind in "CUPM":
            if m.count("FDSTOREREMOVE=1\nFDNAME=%s-%s" % (kind, sid), b) != 1:
                fail("no FDSTOREREMOVE of %s-%s" % (kind, sid))
        if "L-vm" not in m.store:
            fail("the listener left the fd store")

        # Stop: STOPPING=1 and exit status 0.
        before = len(m.messages)
        os.kill(b, signal.SIGTERM)
        m.wait_message("STOPPING=1", before)
        _, status = os.waitpid(b, 0)
        m.main = None
        if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
            fail("the daemon did not exit 0 on SIGTERM (%#x)" % status)

        # NotifyAccess=main: only the main processes spoke.
        strangers = {p for p, _ in m.messages} - {a, b}
        if strangers:
            fail("notifications from other processes: %s" % strangers)
        print("ok: %d notifications, %d of them WATCHDOG=1, ready after %d"
              % (len(m.messages), m.count("WATCHDOG=1"), ready_at))
        ok = True
    finally:
        if sim and sim.poll() is None:
            sim.kill()
            sim.wait()
        if m.main:
            for p in [m.main] + children(m.main):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                os.waitpid(m.main, 0)
            except ChildProcessError:
                pass
        if not ok:
            for n in range(1, m.starts + 1):
                log = os.path.join(tmp, "daemon-%d.log" % n)
                if os.path.exists(log):
                    print("---- " + log)
                    with open(log) as f:
                        print("".join(f.readlines()[-40:]))
            print("---- notifications")
            for pid, text in m.messages:
                print(pid, text.replace("\n", "|"))
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
