"""Deterministic memory images for the store tests.

images.py OUTDIR SIZE writes OUTDIR/m0, m1, m2 (three generations) and
OUTDIR/m2.diff, a Firecracker-style diff snapshot of m2 over m1: a sparse
file holding only the 4 KiB pages written since m1 (holes elsewhere).
Pages are a mix of zeros, text-like bytes (compressible) and random bytes,
so compression, deduplication and zero chunks are all exercised.
"""
import os
import random
import sys

PAGE = 4096


def page(rng, kind):
    if kind == 0:
        return bytes(PAGE)
    if kind == 1:
        words = [b"frame", b"vcpu", b"guest", b"kernel", b"page", b"0000"]
        out = bytearray()
        while len(out) < PAGE:
            out += rng.choice(words) + b" %d\n" % rng.randrange(1000)
        return bytes(out[:PAGE])
    return rng.randbytes(PAGE)


def main():
    out, size = sys.argv[1], int(sys.argv[2])
    rng = random.Random(15)
    n = size // PAGE
    # long runs of each kind, so whole chunks of each exist
    img = bytearray()
    kind = 0
    while len(img) < size:
        kind = rng.choice([0, 1, 1, 2])
        for _ in range(rng.randrange(1, 64)):
            img += page(rng, kind)
    img = img[:size]
    gens = [bytes(img)]
    written = set()
    for g in (1, 2):
        for _ in range(n // 20):
            p = rng.randrange(n)
            start = rng.randrange(0, n - 8)
            for q in range(start, start + rng.randrange(1, 8)):
                img[q * PAGE:(q + 1) * PAGE] = page(rng, rng.choice([0, 1, 2]))
                if g == 2:
                    written.add(q)
            del p
        gens.append(bytes(img))
    for i, data in enumerate(gens):
        with open(os.path.join(out, "m%d" % i), "wb") as f:
            f.write(data)
    with open(os.path.join(out, "m2.diff"), "wb") as f:
        f.truncate(size)
        for q in sorted(written):
            f.seek(q * PAGE)
            f.write(gens[2][q * PAGE:(q + 1) * PAGE])


main()
