"""A fake handler that records the simulator's handshake.

usage: peer.py SOCKET REPORT

Accepts one connection, reads until the bytes form a complete JSON value
(or EOF), then watches for 0.5 s whether the peer closes. REPORT gets the
payload on the first line and, on the second, key=value facts: fds received,
kinds of the fds, bytes in the first recvmsg, whether it closed.
"""
import array
import json
import os
import select
import socket
import sys


def recv_handshake(conn):
    data, fds, first, reads = b"", [], None, 0
    while True:
        msg, anc, _flags, _addr = conn.recvmsg(65536, socket.CMSG_SPACE(256 * 4))
        reads += 1
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                a = array.array("i")
                a.frombytes(payload[: len(payload) - len(payload) % 4])
                fds.extend(a)
        if first is None:
            first = (len(msg), len(fds))
        data += msg
        if not msg:
            return data, fds, first, reads
        try:
            json.loads(data)
            return data, fds, first, reads
        except ValueError:
            continue


def peer_closed(conn, secs):
    ready, _, _ = select.select([conn], [], [], secs)
    return bool(ready) and conn.recv(1) == b""


def main():
    path, report = sys.argv[1], sys.argv[2]
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(20)
    conn, _ = srv.accept()
    data, fds, first, reads = recv_handshake(conn)
    kinds = ",".join(os.readlink("/proc/self/fd/%d" % fd) for fd in fds)
    closed = peer_closed(conn, 0.5)
    with open(report, "w") as f:
        f.write(data.decode() + "\n")
        f.write("fds=%d kinds=%s first_bytes=%d first_fds=%d reads=%d closed=%d\n"
                % (len(fds), kinds, first[0], first[1], reads, int(closed)))


main()
