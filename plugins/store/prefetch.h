/* Prefetching a store's chunks (prefetch.c): the chunks of the ranges a
 * working-set replay lists are fetched in merged byte ranges of their packs,
 * checked as on demand, and held decoded so later reads and faults take
 * them without fetching again. */
#ifndef UFFDKIT_PLUGIN_STORE_PREFETCH_H
#define UFFDKIT_PLUGIN_STORE_PREFETCH_H

#include <stdint.h>

struct store;

/* Held chunks are bounded by this many decoded bytes; the oldest held goes
 * first. */
#define HELD_MAX_BYTES ((uint64_t)64 << 20)
/* Pack bytes between two wanted chunks fetched anyway rather than asked
 * for in two requests, and the largest request. */
#define PACK_GAP_MAX ((uint64_t)16 << 10)
#define PACK_REQUEST_MAX ((uint64_t)4 << 20)

/* The plugin's prefetch callback (uffdkit-plugin(3)): fetches the missing
 * chunks of [off, off+len) on the calling thread; several callers fetch
 * side by side, never the same chunk twice. */
int store_prefetch(void *inst, uint64_t off, uint64_t len);

/* For a read of n bytes of chunk i from shift into dst, before fetching:
 * 1 when the chunk was held (copied to dst, after waiting for a fetch in
 * flight), 0 when nothing is held (no prefetch ever asked: fetch as
 * usual), 2 when the caller must fetch it and then call held_done. */
int held_serve(struct store *s, uint64_t i, uint64_t shift, uint8_t *dst,
               uint64_t n);
/* After held_serve returned 2: the decoded, checked chunk (NULL if its
 * fetch failed) is held for the next readers, or they fetch it. */
void held_done(struct store *s, uint64_t i, const uint8_t *chunk);

void held_free(struct store *s);

#endif
