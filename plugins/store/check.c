/* store: checking chunks against their ids and page sums before a byte
 * of them is served. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "internal.h"
#include "layer.h"

/* Chunk i failed a check: counted, and reported with where it is. */
static int bad_chunk(struct store *s, uint64_t i, const char *why) {
  const struct ufk_store_entry *e = s->entry[i];
  const struct pack *p = &s->packs[s->pack_of[i]];
  __atomic_fetch_add(s->c_bad, 1, __ATOMIC_RELAXED);
  return ufk_fail(host, EIO,
                  "%s: chunk %llu of snapshot %s (image bytes %llu+%u) at "
                  "byte %llu: %s",
                  p->obj.shown, (unsigned long long)i, s->snapshot,
                  (unsigned long long)(i * s->m.chunk_size), e->raw_len,
                  (unsigned long long)e->offset, why);
}

/* The sums a cache entry keeps: a copy, as the stored bytes go; none
 * (the rest checked now) when out of memory. */
static int keep_sums(struct store *s, uint64_t i, const uint8_t *in,
                     const uint8_t *out, uint8_t **sums) {
  const struct ufk_store_entry *e = s->entry[i];
  uint32_t len = ufk_store_sums_len(UFK_STORE_F_PAGE_SUMS, e->raw_len);
  struct ufk_store_err err;
  *sums = malloc(len);
  if (*sums) {
    memcpy(*sums, in, len);
    return 0;
  }
  if (ufk_store_pages_check(in, out, 0, e->raw_len, &err) < 0)
    return bad_chunk(s, i, err.msg);
  return 0;
}

int store_check_part(struct store *s, uint64_t i, uint8_t *stored, uint8_t *out,
                     uint64_t from, uint64_t len, uint8_t **sums) {
  const struct ufk_store_entry *e = s->entry[i];
  const uint8_t *in = NULL;
  struct ufk_store_err err;
  __atomic_fetch_add(s->c_fetched, e->stored_len, __ATOMIC_RELAXED);
  if (ufk_store_chunk_decode_part(&s->keys, e, stored, out, from, len,
                                  sums ? &in : NULL, &err) < 0)
    return bad_chunk(s, i, err.msg);
  if (sums) *sums = NULL;
  if (in && from == 0 && len == e->raw_len) in = NULL; /* all checked */
  if (in && keep_sums(s, i, in, out, sums) < 0) return -1;
  __atomic_fetch_add(s->c_chunks, 1, __ATOMIC_RELAXED);
  return 0;
}

int store_check_chunk(struct store *s, uint64_t i, uint8_t *stored,
                      uint8_t *out) {
  return store_check_part(s, i, stored, out, 0, s->entry[i]->raw_len, NULL);
}

int store_open_chunk(struct store *s, uint64_t i, uint8_t *stored,
                     const uint8_t **sums, const uint8_t **body, size_t *n) {
  struct ufk_store_err err;
  __atomic_fetch_add(s->c_fetched, s->entry[i]->stored_len, __ATOMIC_RELAXED);
  if (ufk_store_chunk_open(&s->keys, s->entry[i], stored, sums, body, n, &err) <
      0)
    return bad_chunk(s, i, err.msg);
  __atomic_fetch_add(s->c_chunks, 1, __ATOMIC_RELAXED);
  return 0;
}

int store_read_pages(struct store *s, uint64_t i, const uint8_t *sums,
                     const uint8_t *body, size_t n, uint64_t from, uint64_t len,
                     void *dst, int check) {
  struct ufk_store_err err;
  if (ufk_store_blocks_read(s->entry[i], sums, body, n, from, len, dst, check,
                            &err) < 0)
    return bad_chunk(s, i, err.msg);
  return 0;
}

int store_copy_out(void *arg, uint64_t i, const uint8_t *data, uint64_t len,
                   const uint8_t *sums, int check, uint64_t shift, void *dst,
                   uint64_t n) {
  struct store *s = arg;
  if (s->keys.page_blocks)
    return store_read_pages(s, i, sums, data, len, shift, n, dst, check);
  struct ufk_store_err err;
  if (check && ufk_store_pages_check(sums, data, shift, n, &err) < 0)
    return bad_chunk(s, i, err.msg);
  memcpy(dst, data + shift, n);
  return 0;
}
