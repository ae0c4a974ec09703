/* Buffers of one size whose pages have already been written, for the
 * chunk cache.  A decoded chunk kept by the cache lands in memory the
 * process has never touched, and the first write to a page costs a page
 * fault on the fault path (7-17 us a page on some virtual machines, four
 * pages for a 16 KiB chunk).  The pool keeps up to `ahead` such buffers
 * ready: when a take leaves it at half or less, a thread of its own
 * allocates and touches new ones, off the fault path; it stays while takes
 * keep coming and ends after idle_ns with the pool full.  Buffers the
 * cache drops come back to it.  Memory above
 * what the cache holds: at most `ahead` buffers. */
#ifndef UFFDKIT_PLUGIN_STORE_BUFPOOL_H
#define UFFDKIT_PLUGIN_STORE_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

struct bufpool;

/* A pool of buffers of `size` bytes keeping `ahead` ready, whose filler
 * thread ends after idle_ns with nothing to do; NULL when out of
 * memory. */
struct bufpool *bufpool_new(size_t size, unsigned ahead, uint64_t idle_ns);

/* Frees the pool and the buffers it holds (not those taken). */
void bufpool_free(struct bufpool *p);

/* A buffer of the pool's size: a touched one when there is one ready,
 * else a new one from malloc; NULL when out of memory. */
void *bufpool_take(struct bufpool *p);

/* Gives a buffer taken from p back (kept while the pool has fewer than
 * `ahead` ready, else freed).  NULL is ignored. */
void bufpool_give(struct bufpool *p, void *buf);

/* Counters the pool adds to from now (either may be NULL): buffers it
 * wrote ahead, and takes that found none ready and got fresh memory (each
 * a first write to every page on the fault path). */
void bufpool_count(struct bufpool *p, uint64_t *made, uint64_t *empty);

/* Buffers ready now, and filler threads started so far (for tests). */
unsigned bufpool_ready(struct bufpool *p);
unsigned bufpool_starts(struct bufpool *p);

#endif
