"""Reads a chunk store for the tests (docs/store-format.md).

storelib.py flip STORE SNAPSHOT: flips one bit in the stored bytes of a
stored chunk of SNAPSHOT near the middle of its image, and prints the
first image offset that reads that chunk.
"""
import os
import sys

HEAD = 48
REF = 36


def manifest(store, name):
    b = open(os.path.join(store, "snapshots", name), "rb").read()
    size = int.from_bytes(b[16:24], "little")
    cs = int.from_bytes(b[24:28], "little")
    npacks = int.from_bytes(b[28:32], "little")
    n = int.from_bytes(b[32:40], "little")
    packs = [b[HEAD + 32 * i:HEAD + 32 * i + 32].hex() for i in range(npacks)]
    at = HEAD + 32 * npacks
    refs = []
    for i in range(n):
        r = b[at + REF * i:at + REF * (i + 1)]
        refs.append((int.from_bytes(r[:4], "little"), r[4:]))
    return size, cs, packs, refs


def entry(store, pack, cid):
    b = open(os.path.join(store, "packs", pack + ".idx"), "rb").read()
    n = int.from_bytes(b[48:52], "little")
    for i in range(n):
        e = b[64 + 56 * i:64 + 56 * (i + 1)]
        if e[:32] == cid:
            return (int.from_bytes(e[32:40], "little"),
                    int.from_bytes(e[40:44], "little"))
    raise SystemExit("chunk not in its index")


def flip(store, name):
    size, cs, packs, refs = manifest(store, name)
    k = len(refs) // 2
    while refs[k][0] == 0xFFFFFFFF:
        k += 1
    pack, cid = packs[refs[k][0]], refs[k][1]
    off, length = entry(store, pack, cid)
    with open(os.path.join(store, "packs", pack + ".pack"), "r+b") as f:
        f.seek(off + length // 2)
        byte = f.read(1)[0]
        f.seek(off + length // 2)
        f.write(bytes([byte ^ 0x10]))
    first = min(i for i, r in enumerate(refs) if r[1] == cid)
    print(first * cs)


if __name__ == "__main__":
    if sys.argv[1] == "flip":
        flip(sys.argv[2], sys.argv[3])
