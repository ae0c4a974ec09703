#!/usr/bin/env python3
"""Per-restore listeners across a restart of the service with its fd store
(the stand-in service manager of tests/packaging/service-manager.py).

Two restores are served: r1 with a VM restoring slowly, r2 not yet
connected.  Their text (R-), socket (L-), counters (S-) and pinned data
file (D-, K-) are in the fd store.  The image is then replaced by rename,
and the main process is killed with its worker and started again with
the store: r1's VM goes on and verifies every page, r2 is listed and a VM
then restores from it, every page of the image it was served with.  Once
both restores have ended, nothing of theirs is left in the store.

usage: restart.py BUILD_DIR
"""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "service_manager", os.path.join(HERE, "..", "packaging",
                                    "service-manager.py"))
sm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sm)
fail, UFFDKIT, SIM = sm.fail, sm.UFFDKIT, sm.SIM


def ctl(sock, *args):
    r = subprocess.run([UFFDKIT, "ctl", "--socket", sock] + list(args),
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail("ctl %s: %s %s" % (" ".join(args), r.stdout, r.stderr))
    return r.stdout


def verified(out, pages):
    f = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
    if f.get("pages") != str(pages) or f.get("mismatches") != "0":
        fail("restore not byte-exact: " + out)


def main():
    tmp = __import__("tempfile").mkdtemp(prefix="uffdkit-test.")
    m = sm.Manager(tmp)
    procs = []
    try:
        image = os.path.join(tmp, "store", "b1", "mem")
        os.makedirs(os.path.dirname(image))
        subprocess.run([SIM, "mkimage", image, "--size", "8M", "--seed", "5"],
                       check=True, stdout=subprocess.DEVNULL)
        ctl_sock = os.path.join(tmp, "control.sock")
        conf = os.path.join(tmp, "uffdkit.conf")
        with open(conf, "w") as f:
            f.write('uffdkit = { control_socket = "%s"; };\n'
                    'templates = ( { name = "sandbox"; vars = [ "b" ];\n'
                    '  socket = "%s/sb/{id}.sock";\n'
                    '  source = { plugin = "mmap";\n'
                    '             path = "%s/store/{b}/mem"; }; } );\n'
                    % (ctl_sock, tmp, tmp))
        a = m.start(conf)
        m.wait_message("READY=1")
        for r in ("r1", "r2"):
            ctl(ctl_sock, "serve", "sandbox", "b=b1", "--id", r)
        m.wait("r1 and r2 in the fd store", lambda: all(
            k + "-" + r in m.store for k in "RLS" for r in ("r1", "r2")))
        m.wait("r1's and r2's pinned files in the fd store", lambda: all(
            k + "-" + r + "-0" in m.store for k in "DK" for r in ("r1", "r2")))
        orig = os.path.join(tmp, "orig")
        shutil.copy(image, orig)
        other = image + ".new"
        subprocess.run([SIM, "mkimage", other, "--size", "8M", "--seed", "6"],
                       check=True, stdout=subprocess.DEVNULL)
        os.rename(other, image)
        vm = subprocess.Popen(
            [SIM, "run", "--socket", os.path.join(tmp, "sb", "r1.sock"),
             "--image", orig, "--delay-us", "2000", "--timeout", "120"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(vm)
        m.wait("r1's session in the fd store",
               lambda: any(n.startswith("U-") for n in m.store))
        time.sleep(0.5)
        workers = sm.children(a)
        os.kill(a, signal.SIGKILL)
        os.waitpid(a, 0)
        for w in workers:
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if vm.poll() is not None:
            fail("the restore ended before the crash: " + vm.stderr.read())
        restart_at = len(m.messages)
        b = m.start(conf)
        m.wait_message("READY=1", restart_at)
        out, err = vm.communicate(timeout=120)
        if vm.returncode != 0:
            fail("r1's VM across the restart: " + err)
        verified(out, 2048)
        listed = json.loads(ctl(ctl_sock, "--json", "list"))
        ids = sorted(r["id"] for r in listed["restores"])
        if "r2" not in ids:
            fail("r2 is not listed after the restart: %s" % listed)
        r2 = subprocess.run(
            [SIM, "run", "--socket", os.path.join(tmp, "sb", "r2.sock"),
             "--image", orig, "--timeout", "60"],
            capture_output=True, text=True, timeout=120)
        if r2.returncode != 0:
            fail("r2's VM after the restart: " + r2.stderr)
        verified(r2.stdout, 2048)
        m.wait("r1 and r2 out of the fd store", lambda: not any(
            n.endswith("-r1") or n.endswith("-r2") or n[:2] in ("D-", "K-")
            for n in m.store))
        print("restores across a restart with the fd store: ok")
        os.kill(b, signal.SIGTERM)
        os.waitpid(b, 0)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        if m.main:
            for p in [m.main] + sm.children(m.main):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(tmp, ignore_errors=True)


main()
