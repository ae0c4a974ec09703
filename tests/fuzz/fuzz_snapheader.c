/* The snapshot header parser (common/snapheader.c) on arbitrary bytes.
 *
 * When a header parses, every lookup must land inside a mapping that holds
 * the offset, the header must serialise back to the same bytes, its builds
 * must cover every mapping, and the next generation built over it (dirty
 * and empty blocks drawn from a hash of the input) must resolve every block
 * exactly as the rules say: empty reads zeros, dirty reads the new build at
 * its packed storage offset, the rest reads what the parent read. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"
#include "snapheader.h"

/* Blocks up to which the next generation is built and checked. */
#define MAX_NEXT_BLOCKS (1u << 14)
#define LOOKUPS 64

static uint64_t mix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* What an offset reads as: a build and an offset in its diff, or zeros. */
struct where {
  int zero;
  uint8_t id[16];
  uint64_t storage;
};

/* Looks off up and checks the mapping found holds it. */
static struct where resolve(const struct ufk_snap_header *h, uint64_t off) {
  long i = ufk_snap_find(h, off);
  CHECK(i >= 0 && (size_t)i < h->nmappings, "offset 0x%llx of 0x%llx: %ld",
        (unsigned long long)off, (unsigned long long)h->size, i);
  const struct ufk_snap_mapping *m = &h->mappings[i];
  CHECK(m->offset <= off && off - m->offset < m->length,
        "offset 0x%llx found in mapping %ld [0x%llx, +0x%llx)",
        (unsigned long long)off, i, (unsigned long long)m->offset,
        (unsigned long long)m->length);
  struct where w = {.zero = ufk_snap_is_nil(m->build_id)};
  if (!w.zero) {
    memcpy(w.id, m->build_id, 16);
    CHECK(m->storage_offset + m->length >= m->storage_offset,
          "mapping %ld storage wraps", i);
    w.storage = m->storage_offset + (off - m->offset);
  }
  return w;
}

static void check_shape(const struct ufk_snap_header *h) {
  CHECK(h->nmappings >= 1 && h->mappings, "%zu mappings", h->nmappings);
  uint64_t end = 0;
  for (size_t i = 0; i < h->nmappings; i++) {
    const struct ufk_snap_mapping *m = &h->mappings[i];
    CHECK(m->offset == end && m->length > 0 &&
              m->length % ufk_snap_granule(h) == 0 &&
              m->length <= h->size - end,
          "mapping %zu [0x%llx, +0x%llx) after 0x%llx", i,
          (unsigned long long)m->offset, (unsigned long long)m->length,
          (unsigned long long)end);
    end += m->length;
  }
  CHECK(end == h->size, "mappings end at 0x%llx of 0x%llx",
        (unsigned long long)end, (unsigned long long)h->size);
}

static void check_lookups(const struct ufk_snap_header *h, uint64_t seed) {
  for (size_t i = 0; i < h->nmappings; i++) {
    const struct ufk_snap_mapping *m = &h->mappings[i];
    CHECK(ufk_snap_find(h, m->offset) == (long)i, "start of mapping %zu", i);
    CHECK(ufk_snap_find(h, m->offset + m->length - 1) == (long)i,
          "end of mapping %zu", i);
  }
  CHECK(ufk_snap_find(h, h->size) == -1, "offset Size found");
  CHECK(ufk_snap_find(h, UINT64_MAX) == -1, "offset 2^64-1 found");
  for (int k = 0; k < LOOKUPS; k++) {
    uint64_t off = mix(&seed);
    if (k % 2) off %= h->size;
    if (off < h->size)
      resolve(h, off);
    else
      CHECK(ufk_snap_find(h, off) == -1, "offset 0x%llx past Size found",
            (unsigned long long)off);
  }
}

static void check_builds(const struct ufk_snap_header *h) {
  struct ufk_snap_build *b = NULL;
  size_t nb = 0;
  if (ufk_snap_builds(h, &b, &nb) < 0) return;
  uint32_t *idx = malloc(h->nmappings * sizeof *idx);
  CHECK(idx, "out of memory");
  ufk_snap_build_index(h, b, nb, idx);
  for (size_t i = 0; i < h->nmappings; i++) {
    const struct ufk_snap_mapping *m = &h->mappings[i];
    if (ufk_snap_is_nil(m->build_id)) {
      CHECK(idx[i] == UFK_SNAP_NO_BUILD, "nil mapping %zu has a build", i);
      continue;
    }
    CHECK(idx[i] < nb && !memcmp(b[idx[i]].id, m->build_id, 16),
          "mapping %zu: build index %u of %zu", i, idx[i], nb);
    CHECK(b[idx[i]].need >= m->storage_offset + m->length,
          "build of mapping %zu needs less than it reads", i);
  }
  struct ufk_snap_err err;
  for (size_t k = 0; k < nb; k++) {
    CHECK(ufk_snap_check_build_size(h, &b[k], b[k].need, "h", "d", &err) == 0,
          "build %zu: a diff of exactly the need is refused", k);
    if (b[k].need)
      CHECK(ufk_snap_check_build_size(h, &b[k], b[k].need - 1, "h", "d", &err) <
                0,
            "build %zu: a diff one byte short is accepted", k);
  }
  free(idx);
  free(b);
}

/* Runs of random length, each all set or all clear with probability
 * num/den of set. */
static void fill_bits(uint64_t *bits, uint64_t n, uint64_t *seed, unsigned num,
                      unsigned den) {
  for (uint64_t i = 0; i < n;) {
    uint64_t r = mix(seed);
    uint64_t len = 1 + (r >> 8) % 16;
    int on = (r & 0xff) % den < num;
    for (; len && i < n; len--, i++)
      if (on) bits[i / 64] |= 1ull << (i % 64);
  }
}

static int bit(const uint64_t *b, uint64_t i) {
  return b[i / 64] >> (i % 64) & 1;
}

static void check_next(const struct ufk_snap_header *h, uint64_t seed) {
  uint64_t nblocks = h->size / h->block_size;
  if (nblocks > MAX_NEXT_BLOCKS) return;
  unsigned dirty_share = seed & 3, empty_share = seed >> 2 & 3;
  uint64_t *dirty = calloc((nblocks + 63) / 64, 8);
  uint64_t *empty = calloc((nblocks + 63) / 64, 8);
  CHECK(dirty && empty, "out of memory");
  fill_bits(dirty, nblocks, &seed, dirty_share, 3);
  fill_bits(empty, nblocks, &seed, empty_share, 6);
  uint8_t id[16];
  memset(id, 0xa5, sizeof id);
  struct ufk_snap_header out;
  struct ufk_snap_err err;
  int rc = ufk_snap_next(h, id, dirty, empty, &out, &err);
  CHECK(rc == 0, "next generation of a valid header: %s", err.msg);
  check_shape(&out);
  CHECK(out.generation == h->generation + 1 && out.size == h->size &&
            out.block_size == h->block_size,
        "next generation metadata");
  uint64_t packed = 0;
  for (uint64_t i = 0; i < nblocks; i++) {
    uint64_t off = i * h->block_size;
    struct where got = resolve(&out, off);
    struct where want = {0};
    if (bit(empty, i)) {
      want.zero = 1;
    } else if (bit(dirty, i)) {
      memcpy(want.id, id, 16);
      want.storage = packed;
      packed += h->block_size;
    } else {
      want = resolve(h, off);
    }
    CHECK(got.zero == want.zero && (got.zero || (!memcmp(got.id, want.id, 16) &&
                                                 got.storage == want.storage)),
          "block %llu of the next generation reads %s at 0x%llx, expected "
          "%s at 0x%llx",
          (unsigned long long)i, got.zero ? "zeros" : "a build",
          (unsigned long long)got.storage, want.zero ? "zeros" : "a build",
          (unsigned long long)want.storage);
  }
  /* What it writes, it reads back. */
  size_t len = ufk_snap_serial_size(&out);
  uint8_t *buf = malloc(len);
  CHECK(buf, "out of memory");
  ufk_snap_serialise(&out, buf);
  struct ufk_snap_header back;
  CHECK(ufk_snap_parse(buf, len, "next", &back, &err) == 0,
        "the next generation written does not parse: %s", err.msg);
  CHECK(back.nmappings == out.nmappings &&
            !memcmp(back.mappings, out.mappings,
                    out.nmappings * sizeof *out.mappings),
        "the next generation reads back different");
  ufk_snap_free(&back);
  free(buf);
  ufk_snap_free(&out);
  free(dirty);
  free(empty);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy) return 0;
  memcpy(copy, data, size);
  struct ufk_snap_header h;
  struct ufk_snap_err err;
  memset(&err, 0, sizeof err);
  if (ufk_snap_parse(copy, size, "fuzz.header", &h, &err) < 0) {
    CHECK(err.msg[0], "refused without a message");
    CHECK(!h.mappings && !h.nmappings, "refused but mappings kept");
    free(copy);
    return 0;
  }
  CHECK(ufk_snap_format(&h) >= UFK_SNAP_VERSION_MIN &&
            ufk_snap_format(&h) <= UFK_SNAP_VERSION_MAX,
        "version %llu", (unsigned long long)h.version);
  CHECK(h.block_size == UFK_SNAP_BLOCK_4K || h.block_size == UFK_SNAP_BLOCK_2M,
        "block size %llu", (unsigned long long)h.block_size);
  check_shape(&h);
  CHECK(ufk_snap_validate(&h, "again", &err) == 0, "%s", err.msg);
  /* V4/V5 (fuzz-snapv4 checks them) serialise compressed. */
  if (ufk_snap_format(&h) < 4 && size > UFK_SNAP_META_SIZE) {
    CHECK(ufk_snap_serial_size(&h) == size, "serial size %zu of %zu",
          ufk_snap_serial_size(&h), size);
    uint8_t *out = malloc(size);
    CHECK(out, "out of memory");
    ufk_snap_serialise(&h, out);
    CHECK(!memcmp(out, copy, size), "serialised header differs from input");
    free(out);
  }
  uint64_t seed = 0;
  for (size_t i = 0; i < size; i++)
    seed = seed * 131 + copy[i];
  check_lookups(&h, seed);
  check_builds(&h);
  if (ufk_snap_format(&h) < 4) check_next(&h, seed);
  ufk_snap_free(&h);
  free(copy);
  return 0;
}
