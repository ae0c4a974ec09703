"""A peer the daemon must refuse: sends a well-formed Firecracker 1.12
handshake with a real userfaultfd (user-mode-only, which needs no privilege)
and checks that the daemon closes the connection without serving it.

usage: intruder.py SOCKET [TIMEOUT_SECONDS]

Exit status: 0 the connection was closed (refused), 1 it stayed open (the
handshake was accepted), 2 setup error.  Run it as a uid that the
listener's allow_uids does not list.
"""
import ctypes
import mmap
import os
import select
import socket
import sys

SYS_USERFAULTFD = 323  # x86_64
UFFD_USER_MODE_ONLY = 1
UFFD_API = 0xAA
UFFDIO_API = 0xC018AA3F  # _IOWR(0xAA, 0x3F, struct uffdio_api)
UFFDIO_REGISTER = 0xC020AA00  # _IOWR(0xAA, 0x00, struct uffdio_register)
UFFDIO_REGISTER_MODE_MISSING = 1
PAGE = 4096


def userfaultfd(base, size):
    """A userfaultfd set up as Firecracker does, with [base, +size)
    registered, so a daemon that wrongly accepted it would serve it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
    flags = os.O_CLOEXEC | os.O_NONBLOCK
    fd = -1
    for extra in (UFFD_USER_MODE_ONLY, 0):
        fd = libc.syscall(SYS_USERFAULTFD, flags | extra)
        if fd >= 0:
            break
    if fd < 0:
        raise OSError(ctypes.get_errno(), "userfaultfd")
    api = (ctypes.c_uint64 * 3)(UFFD_API, 0, 0)
    if libc.ioctl(fd, UFFDIO_API, ctypes.addressof(api)) < 0:
        raise OSError(ctypes.get_errno(), "UFFDIO_API")
    reg = (ctypes.c_uint64 * 4)(base, size, UFFDIO_REGISTER_MODE_MISSING, 0)
    if libc.ioctl(fd, UFFDIO_REGISTER, ctypes.addressof(reg)) < 0:
        raise OSError(ctypes.get_errno(), "UFFDIO_REGISTER")
    return fd


def main():
    path = sys.argv[1]
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
    size = 16 * PAGE
    mem = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    base = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    try:
        fd = userfaultfd(base, size)
    except OSError as e:
        print("intruder: %s" % e, file=sys.stderr)
        return 2
    payload = ('[{"base_host_virt_addr":%d,"size":%d,"offset":0,'
               '"page_size":%d,"page_size_kib":%d}]'
               % (base, size, PAGE, PAGE)).encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        s.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                               bytes(ctypes.c_int(fd)))])
    except (BrokenPipeError, ConnectionResetError):
        return 0  # closed before the handshake was even read
    except OSError as e:
        print("intruder: %s: %s" % (path, e), file=sys.stderr)
        return 2
    ready, _, _ = select.select([s], [], [], timeout)
    if not ready:
        print("intruder: %s kept the connection open for %.1f s"
              % (path, timeout), file=sys.stderr)
        return 1
    try:
        data = s.recv(1)
    except ConnectionResetError:
        data = b""
    if data:
        print("intruder: %s sent data" % path, file=sys.stderr)
        return 1
    return 0


sys.exit(main())
