/* Prefetching a store's chunks (prefetch.c): the chunks of the ranges a
 * working-set replay lists are fetched in merged byte ranges of their packs,
 * checked as on demand, and put in the chunk cache (ccache.h), so later
 * reads and faults take them without fetching again. */
#ifndef UFFDKIT_PLUGIN_STORE_PREFETCH_H
#define UFFDKIT_PLUGIN_STORE_PREFETCH_H

#include <stdint.h>

/* Pack bytes between two wanted chunks fetched anyway rather than asked
 * for in two requests, and the largest request. */
#define PACK_GAP_MAX ((uint64_t)16 << 10)
#define PACK_REQUEST_MAX ((uint64_t)4 << 20)

/* The plugin's prefetch callback (uffdkit-plugin(3)): fetches the chunks
 * of [off, off+len) neither held nor in flight on the calling thread;
 * several callers fetch side by side, never the same chunk twice.  Nothing
 * when the chunk cache keeps nothing. */
int store_prefetch(void *inst, uint64_t off, uint64_t len);

#endif
