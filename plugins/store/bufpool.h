/* Buffers of one size for the chunk cache, carved from slabs whose pages
 * the kernel fills in one call.  A decoded chunk the cache keeps lands in
 * memory the process has never written, and on virtual machines the first
 * write to each page traps (measured here: 11-15 us a page, four pages for
 * a 16 KiB chunk, paid on the fault path).  MADV_POPULATE_WRITE fills a
 * range without a trap per page (0.5-0.8 us a page here, 0.13-0.33 in a
 * transparent huge page, which 2 MiB slabs ask for), so a take that finds
 * no free buffer fills the next step of its slab itself: no thread writes
 * pages beside the fault loop (one did, and its page faults slowed the
 * loop's UFFDIO_COPY on the other CPU).  Buffers given back are taken
 * again first; memory goes back to the system when the pool is freed, so
 * a pool holds what the most buffers out at once needed, and at most one
 * step beyond. */
#ifndef UFFDKIT_PLUGIN_STORE_BUFPOOL_H
#define UFFDKIT_PLUGIN_STORE_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

struct bufpool;

/* A pool of buffers of `size` bytes for a user holding about `most` bytes
 * of them at once (slabs are no larger than needed for that, and 2 MiB
 * at most unless one buffer is larger); NULL when out of memory.  No
 * memory is taken before the first take. */
struct bufpool *bufpool_new(size_t size, uint64_t most);

/* Frees the pool and every buffer it gave out. */
void bufpool_free(struct bufpool *p);

/* A buffer of the pool's size whose pages are written: one given back,
 * else the next of the current slab (filling a step of it, or mapping a
 * new slab, first); NULL when out of memory. */
void *bufpool_take(struct bufpool *p);

/* Gives a buffer taken from p back, to be taken again.  NULL is ignored. */
void bufpool_give(struct bufpool *p, void *buf);

/* Counters the pool adds to from now (either may be NULL): buffers carved
 * from new memory, and fills (each one call filling a step of a slab, on
 * the path of the take that needed it). */
void bufpool_count(struct bufpool *p, uint64_t *made, uint64_t *fills);

/* Bytes of slabs mapped, and buffers given back not yet taken again. */
uint64_t bufpool_mapped(struct bufpool *p);
unsigned bufpool_spare(struct bufpool *p);

#endif
