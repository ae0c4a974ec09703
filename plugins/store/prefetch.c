/* store: prefetching chunks (prefetch.h) into the chunk cache. */
#include "prefetch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "layer.h"

static int by_place(const void *a, const void *b, void *arg) {
  const struct store *s = arg;
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  if (s->pack_of[x] != s->pack_of[y])
    return s->pack_of[x] < s->pack_of[y] ? -1 : 1;
  return s->entry[x]->offset < s->entry[y]->offset
             ? -1
             : s->entry[x]->offset > s->entry[y]->offset;
}

/* Claims the stored chunks of [first, last] that are neither held nor
 * being fetched; their numbers in *out, in pack order. */
static size_t claim(struct store *s, uint64_t first, uint64_t last,
                    uint64_t *out) {
  size_t n = 0;
  for (uint64_t i = first; i <= last; i++)
    if (s->entry[i]) out[n++] = i;
  n = ccache_claim(&s->cache, out, n, s->m.chunk_size);
  qsort_r(out, n, sizeof *out, by_place, s);
  return n;
}

/* How many of the chunks c[0..n) one request of their pack covers. */
static size_t piece(const struct store *s, const uint64_t *c, size_t n) {
  const struct ufk_store_entry *a = s->entry[c[0]];
  uint64_t end = a->offset + a->stored_len;
  size_t k = 1;
  for (; k < n; k++) {
    const struct ufk_store_entry *e = s->entry[c[k]];
    uint64_t e_end = e->offset + e->stored_len;
    if (s->pack_of[c[k]] != s->pack_of[c[0]]) break;
    /* Equal chunks share their stored bytes: one fetch serves them all. */
    if (e->offset < end) {
      if (e_end > end) break;
      continue;
    }
    if (e->offset - end > PACK_GAP_MAX || e_end - a->offset > PACK_REQUEST_MAX)
      break;
    end = e_end;
  }
  return k;
}

/* Chunk c[k] of a piece fetched into buf, as a store with page blocks
 * keeps it (store_keep_blocks): its sums checked, its pages when read. */
static int keep_blocks(struct store *s, uint64_t i, uint8_t *stored,
                       struct cchunk *out) {
  const uint8_t *sums, *body;
  size_t n;
  if (store_open_chunk(s, i, stored, &sums, &body, &n) < 0) return -1;
  store_keep_blocks(s, i, sums, body, n, 0, 0, out);
  return 0;
}

/* A copy of the chunk the cache was given just before (an equal one, of
 * raw_len bytes). */
static void copy_chunk(struct store *s, uint32_t raw_len,
                       const struct cchunk *before, struct cchunk *out) {
  uint32_t slen = ufk_store_sums_len(UFK_STORE_F_PAGE_SUMS, raw_len);
  *out = *before;
  out->data = ccache_buf(&s->cache);
  out->sums = before->sums ? malloc(slen) : NULL;
  if (!out->data || (before->sums && !out->sums)) {
    if (out->data) ccache_unbuf(&s->cache, out->data);
    free(out->sums);
    *out = (struct cchunk){0};
    return;
  }
  memcpy(out->data, before->data, before->len);
  if (out->sums) memcpy(out->sums, before->sums, slen);
}

/* Chunk c[k] of a piece fetched into buf (NULL: not fetched) for the
 * cache, checked as the store checks it, in *out (data NULL if it cannot
 * be had).  A chunk equal to the one before it (one stored copy, sorted
 * next to each other) is that chunk's bytes again: neither decoded nor
 * checked twice (a sealed chunk is decrypted in place, once). */
static void take_chunk(struct store *s, const uint64_t *c, size_t k,
                       uint8_t *buf, const struct cchunk *before,
                       struct cchunk *out, int *rc) {
  const struct ufk_store_entry *e = s->entry[c[k]], *a = s->entry[c[0]];
  uint8_t *stored = buf ? buf + (e->offset - a->offset) : NULL;
  *out = (struct cchunk){0};
  if (!buf) return;
  if (k > 0 && s->entry[c[k - 1]] == e) {
    if (before->data) copy_chunk(s, e->raw_len, before, out);
    return;
  }
  /* The bytes of a failed chunk are never kept: a read fetches it again
   * and fails or succeeds on its own. */
  if (s->keys.page_blocks) {
    if (keep_blocks(s, c[k], stored, out) < 0) *rc = -1;
    return;
  }
  out->data = ccache_buf(&s->cache);
  out->len = e->raw_len;
  if (!out->data) {
    *rc = ufk_fail(host, ENOMEM, "out of memory");
  } else if (store_check_chunk(s, c[k], stored, out->data) < 0) {
    ccache_unbuf(&s->cache, out->data);
    out->data = NULL;
    *rc = -1;
  }
}

/* Fetches chunks c[0..n) (one piece) in one request and caches each that
 * passes its check.  Returns 0, or -1 if any could not be had. */
static int fetch_piece(struct store *s, const uint64_t *c, size_t n) {
  const struct ufk_store_entry *a = s->entry[c[0]], *z = s->entry[c[n - 1]];
  uint64_t len = z->offset + z->stored_len - a->offset;
  uint8_t *buf = malloc(len);
  int rc = buf ? 0 : ufk_fail(host, ENOMEM, "out of memory");
  if (rc == 0 && obj_read(&s->packs[s->pack_of[c[0]]].obj, buf, len, a->offset,
                          UFK_READ_PREFETCH) < 0) {
    rc = -1;
    free(buf);
    buf = NULL;
  }
  /* Each chunk goes to the cache once the next is taken (the cache may
   * drop it at once). */
  struct cchunk before = {0};
  for (size_t k = 0; k < n; k++) {
    struct cchunk now;
    take_chunk(s, c, k, buf, &before, &now, &rc);
    if (k > 0) ccache_done(&s->cache, c[k - 1], before.data ? &before : NULL);
    before = now;
  }
  ccache_done(&s->cache, c[n - 1], before.data ? &before : NULL);
  free(buf);
  return rc;
}

int store_prefetch(void *inst, uint64_t off, uint64_t len) {
  struct store *s = inst;
  if (!len || off >= s->m.image_size) return 0;
  if (len > s->m.image_size - off) len = s->m.image_size - off;
  if (!ccache_on(&s->cache)) return 0; /* nowhere to keep them */
  uint64_t first = off / s->m.chunk_size,
           last = (off + len - 1) / s->m.chunk_size;
  uint64_t *c = malloc((last - first + 1) * sizeof *c);
  if (!c) return ufk_fail(host, ENOMEM, "out of memory");
  size_t n = claim(s, first, last, c), k = 0;
  int rc = 0;
  while (k < n) {
    size_t m = piece(s, c + k, n - k);
    if (fetch_piece(s, c + k, m) < 0) rc = -1;
    k += m;
  }
  free(c);
  return rc;
}
