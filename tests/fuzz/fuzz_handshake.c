/* handshake_parse on arbitrary bytes, as the supervisor calls it with the
 * bytes received so far.  On HS_COMPLETE the regions must be what the fault
 * loop relies on: aligned to one valid page size, non-empty, without
 * overflow, not overlapping, and found by region_find. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"
#include "handshake.h"
#include "region.h"

#define MAX_REGIONS 64

static void check_regions(const struct handshake *h) {
  CHECK(h->nregions >= 1 && h->nregions <= MAX_REGIONS, "%u regions",
        h->nregions);
  CHECK(h->page_size == 4096 || h->page_size == 2097152, "page size %u",
        h->page_size);
  uint64_t ps = h->page_size;
  for (uint32_t i = 0; i < h->nregions; i++) {
    const struct ufk_region *r = &h->regions[i];
    CHECK(r->size > 0, "region %u is empty", i);
    CHECK(r->base % ps == 0 && r->size % ps == 0 && r->offset % ps == 0,
          "region %u: base 0x%llx size 0x%llx offset 0x%llx, page %u", i,
          (unsigned long long)r->base, (unsigned long long)r->size,
          (unsigned long long)r->offset, h->page_size);
    CHECK(r->base + r->size > r->base, "region %u: base + size wraps", i);
    CHECK(r->offset + r->size > r->offset, "region %u: offset + size wraps", i);
    for (uint32_t j = 0; j < i; j++) {
      const struct ufk_region *o = &h->regions[j];
      CHECK(r->base + r->size <= o->base || o->base + o->size <= r->base,
            "regions %u and %u overlap", j, i);
    }
    CHECK(region_find(h->regions, h->nregions, r->base) == (int)i,
          "first byte of region %u not found in it", i);
    CHECK(region_find(h->regions, h->nregions, r->base + r->size - 1) == (int)i,
          "last byte of region %u not found in it", i);
    int after = region_find(h->regions, h->nregions, r->base + r->size);
    CHECK(after != (int)i, "the byte after region %u is found in it", i);
  }
}

static void same(const struct handshake *a, const struct handshake *b) {
  CHECK(a->nregions == b->nregions && a->page_size == b->page_size &&
            a->keeps_socket == b->keeps_socket && a->consumed == b->consumed,
        "parsing the consumed prefix alone gives another result");
  CHECK(!memcmp(a->regions, b->regions, a->nregions * sizeof *a->regions),
        "parsing the consumed prefix alone gives other regions");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* A heap copy of exactly size bytes, so reads past it are caught. */
  char *buf = malloc(size ? size : 1);
  if (!buf) return 0;
  memcpy(buf, data, size);
  static struct handshake h, h2;
  char err[512];
  memset(err, 0, sizeof err);
  int r = handshake_parse(buf, size, MAX_REGIONS, &h, err, sizeof err);
  CHECK(r == HS_COMPLETE || r == HS_INCOMPLETE || r == HS_INVALID,
        "returned %d", r);
  if (r == HS_INVALID) {
    CHECK(err[0] != 0, "HS_INVALID without a reason");
    CHECK(memchr(err, 0, sizeof err) != NULL, "reason not terminated");
  } else if (r == HS_COMPLETE) {
    CHECK(h.consumed > 0 && h.consumed <= size, "consumed %zu of %zu",
          h.consumed, size);
    CHECK(buf[h.consumed - 1] == ']', "consumed ends with byte 0x%02x",
          (unsigned char)buf[h.consumed - 1]);
    check_regions(&h);
    /* The bytes after the array do not change the verdict. */
    CHECK(handshake_parse(buf, h.consumed, MAX_REGIONS, &h2, err, sizeof err) ==
              HS_COMPLETE,
          "the consumed prefix alone is not complete: %s", err);
    same(&h, &h2);
    /* Any shorter prefix is incomplete (the supervisor keeps reading); a
     * few are enough to catch a parser judging early. */
    size_t cuts[] = {0, 1, h.consumed / 2, h.consumed - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
      if (cuts[i] >= h.consumed) continue;
      int pr = handshake_parse(buf, cuts[i], MAX_REGIONS, &h2, err, sizeof err);
      CHECK(pr == HS_INCOMPLETE,
            "prefix of %zu bytes of a complete "
            "handshake gives %d",
            cuts[i], pr);
    }
  }
  /* Fewer regions allowed can only turn COMPLETE into INVALID. */
  if (r == HS_COMPLETE && h.nregions > 1) {
    int lr = handshake_parse(buf, size, h.nregions - 1, &h2, err, sizeof err);
    CHECK(lr == HS_INVALID, "%u regions accepted with max_regions %u",
          h.nregions, h.nregions - 1);
  }
  free(buf);
  return 0;
}
