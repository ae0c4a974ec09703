/* Building generations: E2B's MergeMappings, NormalizeMappings,
 * CreateMapping and ToDiffHeader over struct ufk_snap_header. */
#include <stdlib.h>
#include <string.h>

#include "bitmap.h"
#include "snapint.h"

static const uint8_t nil_id[16];

/* A growable list of mappings. */
struct mlist {
  struct ufk_snap_mapping *m;
  size_t n, cap;
};

static int push(struct mlist *l, const struct ufk_snap_mapping *m) {
  if (m->length == 0) return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct ufk_snap_mapping *nm = realloc(l->m, cap * sizeof *nm);
    if (!nm) return -1;
    l->m = nm;
    l->cap = cap;
  }
  l->m[l->n++] = *m;
  return 0;
}

/* The part of m from s bytes in. */
static struct ufk_snap_mapping shifted(const struct ufk_snap_mapping *m,
                                       uint64_t s) {
  struct ufk_snap_mapping r = *m;
  r.offset += s;
  r.length -= s;
  r.storage_offset += s;
  return r;
}

static struct ufk_snap_mapping left_part(const struct ufk_snap_mapping *m,
                                         uint64_t len) {
  struct ufk_snap_mapping r = *m;
  r.length = len;
  return r;
}

static uint64_t end_of(const struct ufk_snap_mapping *m) {
  return m->offset + m->length;
}

/* One step of the sweep over the current base b and diff d, both nonempty
 * and overlapping.  Returns what to advance: bit 0 base, bit 1 diff, or -1
 * on allocation failure.  *b may be trimmed in place. */
static int merge_overlap(struct mlist *out, struct ufk_snap_mapping *b,
                         const struct ufk_snap_mapping *d) {
  uint64_t bend = end_of(b), dend = end_of(d);
  if (b->offset >= d->offset && bend <= dend) /* base inside diff */
    return 1;
  if (d->offset >= b->offset && dend <= bend) { /* diff inside base */
    struct ufk_snap_mapping left = left_part(b, d->offset - b->offset);
    if (push(out, &left) < 0 || push(out, d) < 0) return -1;
    *b = shifted(b, dend - b->offset);
    return b->length ? 2 : 3;
  }
  if (b->offset > d->offset) { /* base starts inside diff */
    if (push(out, d) < 0) return -1;
    *b = shifted(b, dend - b->offset);
    return 2;
  }
  /* diff starts inside base and runs past it */
  struct ufk_snap_mapping left = left_part(b, d->offset - b->offset);
  return push(out, &left) < 0 ? -1 : 1;
}

static int merge_step(struct mlist *out, struct ufk_snap_mapping *b,
                      const struct ufk_snap_mapping *d) {
  if (b->length == 0) return 1;
  if (d->length == 0) return 2;
  if (end_of(b) <= d->offset) /* base entirely before diff */
    return push(out, b) < 0 ? -1 : 1;
  if (end_of(d) <= b->offset) /* diff entirely before base */
    return push(out, d) < 0 ? -1 : 2;
  return merge_overlap(out, b, d);
}

int ufk_snap_merge(const struct ufk_snap_mapping *base, size_t nbase,
                   const struct ufk_snap_mapping *diff, size_t ndiff,
                   struct ufk_snap_mapping **out, size_t *nout) {
  struct mlist l = {0};
  size_t bi = 0, di = 0;
  struct ufk_snap_mapping cur = {0};
  if (nbase) cur = base[0];
  while (bi < nbase && di < ndiff) {
    int adv = merge_step(&l, &cur, &diff[di]);
    if (adv < 0) goto oom;
    if (adv & 1 && ++bi < nbase) cur = base[bi];
    if (adv & 2) di++;
  }
  /* The current base may have been trimmed; the ones after it are whole. */
  if (bi < nbase && push(&l, &cur) < 0) goto oom;
  for (bi++; bi < nbase; bi++)
    if (push(&l, &base[bi]) < 0) goto oom;
  for (; di < ndiff; di++)
    if (push(&l, &diff[di]) < 0) goto oom;
  *out = l.m;
  *nout = l.n;
  return 0;
oom:
  free(l.m);
  return -1;
}

static int joinable(const struct ufk_snap_mapping *a,
                    const struct ufk_snap_mapping *b) {
  if (memcmp(a->build_id, b->build_id, 16) || end_of(a) != b->offset) return 0;
  /* Same build but storage elsewhere (e2b-dev/infra#2848): keep apart. */
  return ufk_snap_is_nil(a->build_id) ||
         a->storage_offset + a->length == b->storage_offset;
}

size_t ufk_snap_normalize(struct ufk_snap_mapping *m, size_t n) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (m[i].length == 0) continue;
    if (o > 0 && joinable(&m[o - 1], &m[i]))
      m[o - 1].length += m[i].length;
    else
      m[o++] = m[i];
  }
  return o;
}

static int bit(const uint64_t *bits, uint64_t i) {
  return bits && bitmap_test(bits, i);
}

/* Runs of blocks set in `set` and clear in `clear` (either may be NULL;
 * a NULL set has no bits). */
static int runs_of(const uint64_t *set, const uint64_t *clear, uint64_t nblocks,
                   uint64_t bs, const uint8_t id[16], struct mlist *l) {
  uint64_t storage = 0;
  for (uint64_t i = 0; i < nblocks;) {
    if (!bit(set, i) || bit(clear, i)) {
      i++;
      continue;
    }
    uint64_t start = i;
    while (i < nblocks && bit(set, i) && !bit(clear, i))
      i++;
    struct ufk_snap_mapping m = {.offset = start * bs,
                                 .length = (i - start) * bs,
                                 .storage_offset = storage};
    memcpy(m.build_id, id, 16);
    storage += m.length;
    if (push(l, &m) < 0) return -1;
  }
  return 0;
}

int ufk_snap_runs(const uint64_t *bits, uint64_t nblocks, uint64_t block_size,
                  const uint8_t id[16], struct ufk_snap_mapping **out,
                  size_t *n) {
  struct mlist l = {0};
  if (runs_of(bits, NULL, nblocks, block_size, id, &l) < 0) {
    free(l.m);
    return -1;
  }
  *out = l.m;
  *n = l.n;
  return 0;
}

/* Mappings of the new build's blocks over the parent's. */
static int overlay(const struct ufk_snap_header *parent, const uint8_t id[16],
                   const uint64_t *dirty, const uint64_t *empty,
                   struct mlist *res) {
  uint64_t nblocks = parent->size / parent->block_size;
  struct mlist d = {0}, e = {0};
  struct ufk_snap_mapping *diff = NULL;
  size_t ndiff = 0;
  int rc = -1;
  if (runs_of(dirty, empty, nblocks, parent->block_size, id, &d) < 0 ||
      runs_of(empty, NULL, nblocks, parent->block_size, nil_id, &e) < 0 ||
      ufk_snap_merge(d.m, d.n, e.m, e.n, &diff, &ndiff) < 0 ||
      ufk_snap_merge(parent->mappings, parent->nmappings, diff, ndiff, &res->m,
                     &res->n) < 0)
    goto out;
  res->n = ufk_snap_normalize(res->m, res->n);
  /* A nil mapping's storage offset means nothing; write it as 0. */
  for (size_t i = 0; i < res->n; i++)
    if (ufk_snap_is_nil(res->m[i].build_id)) res->m[i].storage_offset = 0;
  rc = 0;
out:
  free(d.m);
  free(e.m);
  free(diff);
  return rc;
}

int ufk_snap_next(const struct ufk_snap_header *parent,
                  const uint8_t new_id[16], const uint64_t *dirty,
                  const uint64_t *empty, struct ufk_snap_header *out,
                  struct ufk_snap_err *err) {
  struct mlist res = {0};
  memset(out, 0, sizeof *out);
  if (overlay(parent, new_id, dirty, empty, &res) < 0)
    return ufk_snap_fail(err, "out of memory merging %zu parent mappings",
                         parent->nmappings);
  *out = *parent;
  /* Entries describe the parent's builds; the caller writes the new ones. */
  out->entries = NULL;
  out->nentries = 0;
  out->flags = 0;
  out->generation = parent->generation + 1;
  memcpy(out->build_id, new_id, 16);
  out->mappings = res.m;
  out->nmappings = res.n;
  if (ufk_snap_validate(out, "new header", err) < 0) {
    ufk_snap_free(out);
    return -1;
  }
  return 0;
}

int ufk_snap_first(uint64_t size, uint64_t block_size, const uint8_t id[16],
                   const uint64_t *dirty, struct ufk_snap_header *out,
                   struct ufk_snap_err *err) {
  struct ufk_snap_mapping zeros = {.length = size};
  struct ufk_snap_header empty = {.version = UFK_SNAP_VERSION_WRITE,
                                  .block_size = block_size,
                                  .size = size,
                                  .nmappings = 1,
                                  .mappings = &zeros};
  if (ufk_snap_check_meta(&empty, "new header", err) < 0) return -1;
  if (ufk_snap_next(&empty, id, dirty, NULL, out, err) < 0) return -1;
  out->generation = 0;
  memcpy(out->base_build_id, id, 16);
  return 0;
}
