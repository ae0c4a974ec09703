#!/usr/bin/env python3
"""A small HTTP/1.1 file server with byte ranges that misbehaves on request.

Serves the files under --root (GET and HEAD, one range per request, keep-alive)
on 127.0.0.1.  Faults are armed for the next COUNT file requests with

  GET /_control?mode=MODE&count=COUNT&seconds=S

MODE is one of
  500, 503, 403, 404, ...  answer that status
  truncate   headers for the full range, then half the body, then close
  long       Content-Length and body 16 bytes longer than the range
  badrange   a Content-Range shifted by one page
  lastbyte   a Content-Range (and body) one byte short at the end
  total      a Content-Range whose total is one page more than the file
  startotal  a Content-Range whose total is "*"
  etag       an ETag other than the file's (as if it had been replaced,
             by a server that ignores If-Match)
  bigheaders a 200 KiB response header before the Content-Range
  redirect   302 to the URL given as to=URL, with the request's path
  norange    ignore Range, answer 200 with the whole file
  gzip       claim Content-Encoding: gzip
  trickle    send the body 16 KiB every 5 ms through a send buffer of
             256 KiB (so writes stop soon after the client stops reading);
             the body bytes written so far are "sent" in /_stats
  delay      answer normally (with seconds=S, any mode sleeps S seconds
             before it misbehaves; GET /_release ends every such sleep
             at once, until the next /_reset)
  drop       close the connection without answering
  down       close the listener and every connection for S seconds
             (new connections are refused), then listen again; at once,
             or with after=K when file request K+1 arrives (that request
             is not answered)

With after=K the fault waits: the next K file requests are served
normally, and the COUNT requests after them misbehave.

With --sigv4 KEY_ID:SECRET:REGION:SERVICE[:TOKEN], file requests must carry
a valid AWS Signature V4 Authorization header (checked here from the
specification, not by trusting any library), else 403 with an S3-style code.

Files are served with an ETag made of their mtime and size (as nginx
does) and a Last-Modified; a request whose If-Match names another ETag
gets 412.

GET /_headers answers the headers of every file request so far, as a JSON
list of [name, value] lists, one list per request.

GET /_stats answers {"requests": N, "faults": F} (file requests so far and
faults served); GET /_reset clears faults and counts.
"""
import argparse
import hashlib
import hmac
import json
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.mode = None
        self.count = 0
        self.seconds = 0.0
        self.after = 0
        self.requests = 0
        self.faults = 0
        self.sent = 0
        self.conns = set()
        self.server = None
        self.down_for = 0.0
        self.to = ""
        self.seen_headers = []
        # Set by /_release: every delay in progress or to come ends now.
        self.release = threading.Event()

    def next_fault(self):
        with self.lock:
            self.requests += 1
            if self.count <= 0:
                return None, 0.0
            if self.after > 0:
                self.after -= 1
                return None, 0.0
            self.count -= 1
            self.faults += 1
            return self.mode, self.seconds


STATE = State()
ROOT = "."
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
SIGV4 = None  # (key_id, secret, region, service, token)
AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/"
                     r"([^/]+)/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?"
                     r"Signature=([0-9a-f]{64})$")


def hmac256(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_error(headers, method, raw_path):
    """None if the request is signed with SIGV4's key, else an S3 code."""
    key_id, secret, region, service, token = SIGV4
    m = AUTH_RE.match(headers.get("Authorization", ""))
    if not m:
        return "AccessDenied"
    akid, date, reg, svc, signed, sig = m.groups()
    if akid != key_id:
        return "InvalidAccessKeyId"
    names = signed.split(";")
    need = ["host", "x-amz-date", "x-amz-content-sha256"]
    if token:
        need.append("x-amz-security-token")
        if headers.get("x-amz-security-token") != token:
            return "InvalidToken"
    if any(n not in names for n in need) or (reg, svc) != (region, service):
        return "AuthorizationHeaderMalformed"
    amz_date = headers.get("x-amz-date", "")
    if not amz_date.startswith(date):
        return "AuthorizationHeaderMalformed"
    path, _, query = raw_path.partition("?")
    canon_query = "&".join(sorted(q if "=" in q else q + "="
                                  for q in query.split("&") if q))
    canon_headers = "".join("%s:%s\n" % (n, " ".join(
        (headers.get(n) or "").split())) for n in names)
    canon = "\n".join([method, path, canon_query, canon_headers, signed,
                       headers.get("x-amz-content-sha256", "")])
    scope = "%s/%s/%s/aws4_request" % (date, region, service)
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canon.encode()).hexdigest()])
    k = hmac256(("AWS4" + secret).encode(), date)
    for part in (region, service, "aws4_request"):
        k = hmac256(k, part)
    want = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(want, sig) else "SignatureDoesNotMatch"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle
        # holds the body back until the client's delayed ACK (40 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with STATE.lock:
            STATE.conns.add(self.connection)

    def finish(self):
        with STATE.lock:
            STATE.conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/_control":
            return self.control(parse_qs(url.query))
        if url.path == "/_stats":
            with STATE.lock:
                body = json.dumps({"requests": STATE.requests,
                                   "faults": STATE.faults,
                                   "sent": STATE.sent}).encode()
            return self.reply(200, body)
        if url.path == "/_headers":
            with STATE.lock:
                body = json.dumps(STATE.seen_headers).encode()
            return self.reply(200, body)
        if url.path == "/_reset":
            with STATE.lock:
                STATE.mode, STATE.count, STATE.after = None, 0, 0
                STATE.requests = STATE.faults = STATE.sent = 0
                STATE.seen_headers = []
                STATE.release.clear()
            return self.reply(200, b"ok")
        if url.path == "/_release":
            STATE.release.set()
            return self.reply(200, b"ok")
        self.serve_file(url.path)

    def control(self, q):
        mode = q.get("mode", [""])[0]
        seconds = float(q.get("seconds", ["0"])[0])
        after = int(q.get("after", ["0"])[0])
        if mode == "down" and "after" not in q:
            self.reply(200, b"ok")
            self.wfile.flush()
            go_down(seconds)
            return
        with STATE.lock:
            STATE.mode = mode
            # The server goes down once; later requests find it down.
            count = int(q.get("count", ["1"])[0])
            STATE.count = 1 if mode == "down" else count
            STATE.seconds = seconds
            STATE.after = after
            STATE.to = q.get("to", [""])[0]
        self.reply(200, b"ok")

    def serve_file(self, path):
        with STATE.lock:
            STATE.seen_headers.append([list(kv) for kv in self.headers.items()])
        if SIGV4:
            code = sigv4_error(self.headers, self.command, self.path)
            if code:
                STATE.next_fault()
                return self.reply(403, ("<Error><Code>%s</Code></Error>\n"
                                        % code).encode())
        full = os.path.realpath(os.path.join(ROOT, path.lstrip("/")))
        if not full.startswith(os.path.realpath(ROOT) + os.sep) or \
                not os.path.isfile(full):
            STATE.next_fault()
            return self.reply(404, b"not found\n")
        size = os.path.getsize(full)
        mode, seconds = STATE.next_fault()
        if mode == "down":
            go_down(seconds)
            mode = "drop"
        if mode == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if seconds > 0:
            STATE.release.wait(seconds)
        if mode == "redirect":
            return self.reply(302, b"", [("Location", STATE.to + path)])
        if mode and mode.isdigit():
            return self.reply(int(mode), b"injected failure\n")
        st = os.stat(full)
        etag = '"%x-%x"' % (int(st.st_mtime), size)
        if mode == "etag":
            etag = '"%x-%x"' % (int(st.st_mtime) + 1, size)
        want = self.headers.get("If-Match")
        if want is not None and want != etag and mode != "etag":
            return self.reply(412, b"precondition failed\n")
        first, last = self.parse_range(size, mode)
        if first is None:
            return self.reply(416, b"", [("Content-Range",
                                          "bytes */%d" % size)])
        # Only the range is read: whole-file reads per request would make
        # a restore of many pages slow.
        with open(full, "rb") as f:
            f.seek(first)
            body = f.read(last - first + 1) if last >= 0 else f.read()
        self.send_body(body, size, first, last, mode, etag)

    def parse_range(self, size, mode):
        m = RANGE_RE.match(self.headers.get("Range", "") or "")
        if not m or mode == "norange" or (not m.group(1) and not m.group(2)):
            return 0, -1
        if m.group(1):
            first = int(m.group(1))
            last = int(m.group(2)) if m.group(2) else size - 1
        else:
            first, last = max(0, size - int(m.group(2))), size - 1
        if first >= size or last < first:
            return None, None
        return first, min(last, size - 1)

    def send_body(self, body, size, first, last, mode, etag):
        ranged = last >= 0
        headers = [("Accept-Ranges", "bytes"), ("ETag", etag)]
        if mode == "bigheaders":
            headers.append(("X-Padding", "p" * (200 * 1024)))
        if ranged:
            shown = (first + 4096, last + 4096) if mode == "badrange" else \
                (first, last)
            total = "%d" % size
            if mode == "lastbyte":
                shown, body = (first, last - 1), body[:-1]
            elif mode == "total":
                total = "%d" % (size + 4096)
            elif mode == "startotal":
                total = "*"
            headers.append(("Content-Range", "bytes %d-%d/%s" %
                            (shown[0], shown[1], total)))
        if mode == "gzip":
            headers.append(("Content-Encoding", "gzip"))
        if mode == "long":
            body += b"\xee" * 16
        self.send_response(206 if ranged else 200)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if mode == "truncate":
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if mode == "trickle":
            return self.trickle(body)
        self.wfile.write(body)

    def trickle(self, body):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF,
                                   256 << 10)
        for i in range(0, len(body), 16384):
            self.wfile.write(body[i:i + 16384])
            with STATE.lock:
                STATE.sent += len(body[i:i + 16384])
            time.sleep(0.005)


def go_down(seconds):
    """Closes the listener and every connection for SECONDS (main())."""
    STATE.down_for = seconds
    threading.Thread(target=STATE.server.shutdown).start()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client that gave up (timeout, killed VM) is not an error here.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def close_connections():
    with STATE.lock:
        conns = list(STATE.conns)
    for c in conns:
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    global ROOT
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--sigv4")
    args = ap.parse_args()
    ROOT = args.root
    if args.sigv4:
        global SIGV4
        parts = args.sigv4.split(":")
        SIGV4 = tuple(parts[:4]) + ((parts[4] if len(parts) > 4 else ""),)
    port = args.port
    while True:
        srv = Server(("127.0.0.1", port), Handler)
        if port == 0:
            port = srv.server_address[1]
            tmp = args.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write("%d\n" % port)
            os.rename(tmp, args.port_file)
        STATE.server = srv
        srv.serve_forever(poll_interval=0.05)
        srv.server_close()
        close_connections()
        time.sleep(STATE.down_for)


if __name__ == "__main__":
    main()
