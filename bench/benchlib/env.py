"""What scenarios need around them: huge pages, nginx on loopback."""
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

from .machine import log

# ---------------------------------------------------------------------------
# environment: huge pages, nginx


class HugePages:
    """Adds the 2 MiB pages the run needs to the pool and takes the same
    number away at the end (by difference, so a concurrent user of the pool
    keeps its own)."""
    PATH = "/proc/sys/vm/nr_hugepages"

    def __init__(self):
        self.added = 0

    @staticmethod
    def free():
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("HugePages_Free:"):
                    return int(line.split()[1])
        return 0

    @classmethod
    def total(cls):
        with open(cls.PATH) as f:
            return int(f.read())

    def reserve(self, need):
        """Makes `need` 2 MiB pages free; returns None or why not."""
        try:
            free = self.free()
            if free >= need:
                return None
            cur = self.total()
            with open(self.PATH, "w") as f:
                f.write(str(cur + need - free))
            self.added += self.total() - cur
            got = self.free()
            if got < need:
                return "only %d of %d free 2 MiB huge pages could be reserved" % (got, need)
            return None
        except (OSError, ValueError) as e:
            return "cannot reserve 2 MiB huge pages: %s" % e

    def restore(self):
        if self.added <= 0:
            return
        try:
            cur = self.total()
            with open(self.PATH, "w") as f:
                f.write(str(max(cur - self.added, 0)))
        except (OSError, ValueError) as e:
            log("could not give back %d huge pages: %s" % (self.added, e))
        self.added = 0


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Nginx:
    def __init__(self, work, root):
        self.dir = os.path.join(work, "nginx")
        self.root = root
        self.proc = None
        self.port = None

    def start(self):
        exe = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
        if not exe:
            return "nginx is not installed (apt-get install nginx-light)"
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        for attempt in range(3):
            self.port = free_port()
            conf = os.path.join(self.dir, "nginx.conf")
            d = self.dir
            with open(conf, "w") as f:
                f.write("""daemon off;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 512; }
http {
  access_log off;
  client_body_temp_path %(d)s/tmp;
  proxy_temp_path %(d)s/tmp;
  fastcgi_temp_path %(d)s/tmp;
  uwsgi_temp_path %(d)s/tmp;
  scgi_temp_path %(d)s/tmp;
  sendfile on;
  keepalive_requests 10000000;
  keepalive_timeout 600s;
  server { listen 127.0.0.1:%(p)d; root %(r)s; }
}
""" % {"d": d, "p": self.port, "r": self.root})
            self.logf = open(os.path.join(d, "stderr.log"), "ab")
            self.proc = subprocess.Popen([exe, "-c", conf, "-p", d, "-e",
                                          os.path.join(d, "error.log")],
                                         stdin=subprocess.DEVNULL,
                                         stdout=self.logf, stderr=self.logf)
            for _ in range(100):
                if self.proc.poll() is not None:
                    break
                try:
                    with urllib.request.urlopen("http://127.0.0.1:%d/" % self.port, timeout=1):
                        pass
                    return None
                except urllib.error.HTTPError:
                    return None  # listening (403/404 for the directory)
                except OSError:
                    time.sleep(0.05)
            self.stop()
        return "nginx did not start (see %s)" % os.path.join(self.dir, "error.log")

    def url(self, name):
        return "http://127.0.0.1:%d/%s" % (self.port, name)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.logf.close()
        self.proc = None
