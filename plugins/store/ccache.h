/* The store source's chunk cache (the setting chunk_cache): decoded,
 * checked chunks, filled by reads and by prefetches alike, so the next read
 * of a chunk neither fetches nor decodes it again.  One entry per chunk of
 * the snapshot, each either empty, in flight (someone is fetching it:
 * readers wait for that fetch instead of fetching it too) or held; held
 * chunks are bounded by chunk_cache decoded bytes, the least recently used
 * dropped first (common/lru.h).  A chunk is held checked whole, or, from
 * a store with page sums, with its sums and the pages checked so far: a
 * read of other pages checks them first (the copy set at init), and a
 * chunk with a page that fails is dropped.  From a store with page blocks
 * a chunk is held as stored, and each read decodes its own pages. */
#ifndef UFFDKIT_PLUGIN_STORE_CCACHE_H
#define UFFDKIT_PLUGIN_STORE_CCACHE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "bufpool.h"
#include "lru.h"

struct centry;

#define CC_PAGE 4096u
#define CC_SUMS_PAGES 64u /* the most pages a chunk held with sums has */

/* A chunk for the cache: checked whole (sums NULL), or with its page sums
 * (from malloc, then the cache's) and the pages checked (bit j: page j;
 * pages past CC_SUMS_PAGES are checked on every read). */
struct cchunk {
  uint8_t *data; /* from ccache_buf */
  uint64_t len;
  uint8_t *sums;
  uint64_t checked;
};

/* Bits of the pages covering [shift, shift + n) of a chunk of at most
 * CC_SUMS_PAGES pages (pages past them have no bit). */
static inline uint64_t ccache_pages(uint64_t shift, uint64_t n) {
  uint64_t a = shift / CC_PAGE, b = (shift + n + CC_PAGE - 1) / CC_PAGE;
  if (a >= 64) return 0;
  uint64_t upto = b >= 64 ? ~0ull : (1ull << b) - 1;
  return upto & ~((1ull << a) - 1);
}

/* Copies n bytes of held chunk i from `shift` into dst, from its data (len
 * bytes as held: the decoded chunk, or what its source decodes pages from)
 * after checking the pages they cover against sums when check is set.  0,
 * or -1 after reporting a failed check. */
typedef int ccache_copy_fn(void *arg, uint64_t i, const uint8_t *data,
                           uint64_t len, const uint8_t *sums, int check,
                           uint64_t shift, void *dst, uint64_t n);

struct ccache {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  uint64_t n;          /* entries (the snapshot's chunks); 0: keeps nothing */
  uint64_t cap, bytes; /* bound, and decoded bytes held */
  uint32_t chunk_size;
  struct centry *e;
  struct lru order;     /* held chunks, over one node per entry */
  struct bufpool *pool; /* buffers for chunks to hold, pages written */
  ccache_copy_fn *copy; /* NULL: every chunk held decoded and checked */
  void *copy_arg;
};

enum { CC_OFF, CC_HIT, CC_MINE, CC_BUSY, CC_BAD };

/* A cache of `bytes` decoded bytes over nchunks chunks of chunk_size; one
 * that keeps nothing when fewer bytes than a chunk.  -1 when out of memory
 * or past the entries a list can number. */
int ccache_init(struct ccache *c, uint64_t bytes, uint64_t nchunks,
                uint32_t chunk_size);
void ccache_free(struct ccache *c);

static inline int ccache_on(const struct ccache *c) {
  return c->n != 0;
}

/* For a read of n bytes of chunk i from `shift` into dst: CC_HIT when the
 * chunk is held (copied to dst, its pages checked first if they were not,
 * after waiting for a fetch in flight unless !wait: then CC_BUSY, and the
 * caller fetches it for itself); CC_BAD when a page failed its check (the
 * chunk is dropped; the check reported it); CC_MINE when it is now in
 * flight for the caller, who fetches it and then calls ccache_done; CC_OFF
 * when the cache keeps nothing or is dropping the chunk (fetch it). */
int ccache_get(struct ccache *c, uint64_t i, uint64_t shift, void *dst,
               uint64_t n, int wait);

/* For a prefetch: keeps those of chunks want[0..k) that are neither held
 * nor in flight, puts them in flight for the caller, and returns how many
 * (moved to the front of want).  Stops at the bound: a prefetch larger than
 * the cache would drop its own first chunks. */
size_t ccache_claim(struct ccache *c, uint64_t *want, size_t k,
                    uint32_t chunk_size);

/* A buffer of a chunk's size for a chunk the cache will hold (from its
 * pool when it keeps anything, else from malloc); NULL when out of
 * memory.  ccache_unbuf gives one back that the cache was not given. */
void *ccache_buf(struct ccache *c);
void ccache_unbuf(struct ccache *c, void *buf);

/* Ends the caller's fetch of chunk i: k (its data from ccache_buf,
 * checked) is held and owned by the cache from now; NULL (a failed fetch
 * or check) leaves it empty, and readers waiting for it fetch it
 * themselves.  If a CC_BUSY reader offered the chunk meanwhile, that copy
 * stays and k's data and sums are given back. */
void ccache_done(struct ccache *c, uint64_t i, const struct cchunk *k);

/* After CC_BUSY, the reader fetched chunk i itself: if it is still in
 * flight, k (as for ccache_done) is held from now, owned by the cache, and
 * 1 is returned, so the chunk's next reads neither fetch it again nor
 * wait; else 0, and k stays the caller's. */
int ccache_offer(struct ccache *c, uint64_t i, const struct cchunk *k);

/* After a reader's own fetch of chunk i (got: what ccache_get said), hands
 * k (data NULL: nothing to keep) to the cache: ends the fetch (CC_MINE) or
 * offers it (CC_BUSY).  1 when the cache owns k from now (it may drop it
 * at once), 0 when k is still the caller's to give back. */
int ccache_settle(struct ccache *c, uint64_t i, int got,
                  const struct cchunk *k);

#endif
