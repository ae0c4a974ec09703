#!/usr/bin/env python3
"""Reads and forges uffdkit working-set files (core/prefetch.c).

Layout: 40-byte header (magic "UFKWSET1", u32 version 1, u32 page size,
u64 source size, u64 entry count, u64 identity length, little endian), the
identity, then one zigzag LEB128 varint per entry: the delta of its page
index from the previous entry's (the first from 0).

  wset.py show FILE
      page_size=.. source_size=.. n=.. distinct=.. first=.. last=..
      ascending=0|1 identity=..  (fails if the body does not decode to
      exactly n entries)
  wset.py bridged FILE GAP
      how many pages a replay with max_gap = GAP may install at most: the
      listed pages and every run of at most GAP unlisted pages between two
      listed ones
  wset.py forge IN OUT [--page-size N] [--source-size N] [--count N]
                [--pages A,B,..] [--append-hex HEX] [--magic TEXT]
      IN's header and identity with the fields given replaced; --pages
      replaces the entries (and the count, unless --count is given).
"""
import argparse
import struct
import sys

MAGIC = b"UFKWSET1"
HEADER = 40


def parse(data):
    if len(data) < HEADER or data[:8] != MAGIC:
        raise ValueError("not a working-set file")
    version, page_size = struct.unpack_from("<II", data, 8)
    source_size, n, idlen = struct.unpack_from("<QQQ", data, 16)
    if version != 1:
        raise ValueError("version %d" % version)
    identity = data[HEADER:HEADER + idlen]
    body = data[HEADER + idlen:]
    return page_size, source_size, n, identity, body


def decode(body, n):
    pages, at, prev = [], 0, 0
    for i in range(n):
        z, shift = 0, 0
        while True:
            if at == len(body):
                raise ValueError("entry %d is cut short" % i)
            b = body[at]
            at += 1
            z |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        prev += (z >> 1) ^ -(z & 1)
        pages.append(prev)
    if at != len(body):
        raise ValueError("%d bytes after the last entry" % (len(body) - at))
    return pages


def encode(pages):
    out, prev = bytearray(), 0
    for p in pages:
        d = p - prev
        prev = p
        z = ((d << 1) ^ (d >> 63)) & 0xFFFFFFFFFFFFFFFF
        while True:
            out.append((z & 0x7F) | (0x80 if z > 0x7F else 0))
            z >>= 7
            if not z:
                break
    return bytes(out)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("show")
    s.add_argument("file")
    b = sub.add_parser("bridged")
    b.add_argument("file")
    b.add_argument("gap", type=int)
    f = sub.add_parser("forge")
    f.add_argument("src")
    f.add_argument("out")
    f.add_argument("--page-size", type=int)
    f.add_argument("--source-size", type=int)
    f.add_argument("--count", type=int)
    f.add_argument("--pages")
    f.add_argument("--append-hex", default="")
    f.add_argument("--magic")
    a = ap.parse_args()

    with open(a.src if a.cmd == "forge" else a.file, "rb") as fh:
        data = fh.read()
    page_size, source_size, n, identity, body = parse(data)
    if a.cmd == "bridged":
        pages = sorted(set(decode(body, n)))
        print(len(pages) + sum(q - p - 1 for p, q in zip(pages, pages[1:])
                               if q - p - 1 <= a.gap))
    elif a.cmd == "show":
        pages = decode(body, n)
        print("page_size=%d source_size=%d n=%d distinct=%d first=%s last=%s "
              "ascending=%d identity=%s" %
              (page_size, source_size, n, len(set(pages)),
               pages[0] if pages else "-", pages[-1] if pages else "-",
               int(pages == sorted(pages)), identity.decode()))
    else:
        if a.pages is not None:
            pages = [int(x) for x in a.pages.split(",") if x]
            body = encode(pages)
            n = len(pages)
        if a.count is not None:
            n = a.count
        if a.page_size is not None:
            page_size = a.page_size
        if a.source_size is not None:
            source_size = a.source_size
        magic = a.magic.encode() if a.magic else MAGIC
        head = magic + struct.pack("<IIQQQ", 1, page_size, source_size, n,
                                   len(identity))
        with open(a.out, "wb") as fh:
            fh.write(head + identity + body + bytes.fromhex(a.append_hex))


if __name__ == "__main__":
    try:
        main()
    except ValueError as e:
        print("wset.py: %s" % e, file=sys.stderr)
        sys.exit(1)
