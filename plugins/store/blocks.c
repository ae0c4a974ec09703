/* store: serving a store with page blocks, whose chunks' pages are each
 * compressed alone: a read decodes only the pages it serves, straight into
 * the buffer it was given, and the chunk cache keeps chunks as they are
 * stored, each read of one decoding its own pages from it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "layer.h"

int store_keep_blocks(struct store *s, uint64_t i, const uint8_t *sums,
                      const uint8_t *body, size_t n, uint64_t checked,
                      int whole, struct cchunk *k) {
  uint32_t slen =
      ufk_store_sums_len(UFK_STORE_F_PAGE_SUMS, s->entry[i]->raw_len);
  *k = (struct cchunk){.len = s->m.chunk_size, .checked = checked};
  if (n > s->m.chunk_size || (!whole && !(k->sums = malloc(slen)))) return -1;
  if (!(k->data = ccache_buf(&s->cache))) {
    free(k->sums);
    k->sums = NULL;
    return -1;
  }
  memcpy(k->data, body, n);
  if (k->sums) memcpy(k->sums, sums, slen);
  return 0;
}

int store_serve_blocks(struct store *s, uint64_t i, uint64_t shift,
                       uint8_t *dst, uint64_t n, uint32_t flags, int got) {
  const struct ufk_store_entry *e = s->entry[i];
  struct pack *p = &s->packs[s->pack_of[i]];
  uint8_t *stored = malloc(e->stored_len);
  const uint8_t *sums = NULL, *body = NULL;
  size_t len = 0;
  int rc = stored ? obj_read(&p->obj, stored, e->stored_len, e->offset, flags)
                  : ufk_fail(host, ENOMEM, "out of memory");
  if (rc == 0) rc = store_open_chunk(s, i, stored, &sums, &body, &len);
  if (rc == 0) rc = store_read_pages(s, i, sums, body, len, shift, n, dst, 1);
  struct cchunk k = {0};
  if (rc == 0 && got != CC_OFF)
    store_keep_blocks(s, i, sums, body, len, ccache_pages(shift, n),
                      shift == 0 && n == e->raw_len, &k);
  if (!ccache_settle(&s->cache, i, got, &k) && k.data) {
    free(k.sums);
    ccache_unbuf(&s->cache, k.data);
  }
  free(stored);
  if (rc == 0) __atomic_fetch_add(s->c_served, n, __ATOMIC_RELAXED);
  return rc;
}
