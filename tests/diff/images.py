"""Deterministic guest memory images for the snapshot tests.

images.py OUTDIR SIZE [compressible] writes OUTDIR/m0, m1, m2 (three
generations of one guest's memory) and OUTDIR/m2.runs, the runs of 4 KiB
pages written between m1 and m2 ("first count" per line), from which a
sparse diff snapshot is made.  With "compressible", most pages repeat a
short random pattern (so zstd and lz4 frames really compress), the rest
stay random.
"""
import random
import sys

PAGE = 4096
REGION = 2 << 20


COMPRESSIBLE = False


def page_bytes(rng):
    if COMPRESSIBLE and rng.random() < 0.75:
        return rng.randbytes(64) * (PAGE // 64)
    return rng.randbytes(PAGE)


def zero_region(img, r):
    img[r * REGION:(r + 1) * REGION] = bytes(REGION)


def first(npages, rng):
    img = bytearray(npages * PAGE)
    for p in range(npages):
        if (p * 7 + 3) % 11 >= 3:
            img[p * PAGE:(p + 1) * PAGE] = page_bytes(rng)
    zero_region(img, 1)  # never written: nil in every generation
    return img


def write(img, p, data, written):
    img[p * PAGE:(p + 1) * PAGE] = data
    written.add(p)


def in_regions(p, regions):
    return p * PAGE // REGION in regions


# Each generation leaves some huge pages alone, so that at 2 MiB blocks too
# the last header references every generation.
def second(img, rng):
    img = bytearray(img)
    npages = len(img) // PAGE
    for p in range(npages):
        if not in_regions(p, (0, 2, 4)):
            continue
        if p % 13 == 5:
            write(img, p, page_bytes(rng), set())
        elif p % 17 == 2:
            write(img, p, bytes(PAGE), set())  # zeroed by the guest
    zero_region(img, 3)  # a whole huge page zeroed: must not come back
    return img


def third(img, rng):
    img = bytearray(img)
    npages = len(img) // PAGE
    written = set()
    per_region = REGION // PAGE
    for p in range(npages):
        if not in_regions(p, (0, 7)):
            continue
        if p % 19 == 7:
            write(img, p, page_bytes(rng), written)
        elif p % 23 == 4:
            write(img, p, bytes(PAGE), written)
    for p in range(5 * per_region, 6 * per_region):
        write(img, p, bytes(PAGE), written)
    for p in range(3 * per_region, 3 * per_region + 10):
        write(img, p, page_bytes(rng), written)
    for p in range(per_region + 100, per_region + 103):
        write(img, p, page_bytes(rng), written)
    return img, sorted(written)


def main():
    global COMPRESSIBLE
    out, size = sys.argv[1], int(sys.argv[2])
    COMPRESSIBLE = len(sys.argv) > 3 and sys.argv[3] == "compressible"
    rng = random.Random(20260)
    m0 = first(size // PAGE, rng)
    m1 = second(m0, rng)
    m2, pages = third(m1, rng)
    for name, img in (("m0", m0), ("m1", m1), ("m2", m2)):
        with open(f"{out}/{name}", "wb") as f:
            f.write(img)
    runs = []
    for p in pages:
        if runs and runs[-1][0] + runs[-1][1] == p:
            runs[-1][1] += 1
        else:
            runs.append([p, 1])
    with open(f"{out}/m2.runs", "w") as f:
        f.write("".join(f"{a} {n}\n" for a, n in runs))


if __name__ == "__main__":
    main()
