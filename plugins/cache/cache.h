/* The cache layer's private parts: the instance, its settings and
 * counters (settings.c), and its slot table (a hash from chunk to slot)
 * with the LRU (common/lru.h) and free lists, in slots.c. */
#ifndef UFFDKIT_CACHE_CACHE_H
#define UFFDKIT_CACHE_CACHE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <uffdkit/plugin.h>

#include "disk.h"
#include "lru.h"

#define NONE (-1)
#define MAX_PARTS 16 /* requests one chunk fetch is split into, at most */

enum { S_FREE, S_FETCHING, S_VALID };

/* One fetch in flight; its fetcher and every waiter hold a reference, so the
 * outcome outlives the slot being recycled. */
struct fetch {
  int done, err, refs;
};

struct slot {
  uint64_t chunk;
  uint32_t state;
  uint32_t refs; /* readers, pointers mapped, plus its fetcher */
  int32_t next;  /* free list */
  int32_t hnext;
  struct fetch *fetch;
};

struct cache {
  struct ufk_next *below;
  uint64_t chunk, capacity;
  unsigned parts; /* requests one chunk fetch is split into */
  unsigned shift;
  char *file;
  int fd;
  int64_t size;

  uint8_t *mem;
  size_t mem_len;
  struct slot *slots;
  uint8_t *populated; /* per slot: its memory was faulted in */
  uint32_t nslots, slot_waiters;
  int32_t *heads;
  unsigned hbits;
  struct lru order; /* VALID slots, over one node per slot */
  int32_t free_head;
  pthread_mutex_t lock;
  pthread_cond_t cond;

  /* Hits by tier: memory (c_hits), dir (c_disk_hits), the source below
   * (c_remote). */
  uint64_t *c_hits, *c_misses, *c_bytes, *c_evictions, *c_remote;

  /* Disk mode (disk.c): chunks kept in `dir` across restarts. */
  char *dir;
  uint64_t dir_size;
  unsigned dir_queue; /* chunks waiting for the writer thread, at most */
  struct disk *disk;
  uint8_t dkey[DISK_KEY_LEN];
  int disk_warned;
  uint64_t *c_disk_hits, *c_disk_writes, *c_disk_evictions, *c_disk_discarded;
  uint64_t *c_disk_skipped;
};

/* ---- settings.c ---- */

extern const struct ufk_param cache_params[];
/* Reads cfg into c; -1 after reporting the setting that is wrong. */
int cache_read_settings(const struct ufk_host *host,
                        const struct ufk_config *cfg, struct cache *c);
/* Every counter exists with or without dir. */
void cache_make_counters(const struct ufk_host *host,
                         const struct ufk_config *cfg, struct cache *c);

/* ---- slots.c: the table and lists, all under c->lock ---- */

/* Sizes the table for c->nslots, every slot free.  -1 when out of memory. */
int slots_make(struct cache *c);
void slots_free(struct cache *c);
int32_t slot_lookup(const struct cache *c, uint64_t chunk);
void slot_hash_insert(struct cache *c, int32_t s);
void slot_hash_remove(struct cache *c, int32_t s);
void slot_lru_push(struct cache *c, int32_t s);
void slot_lru_touch(struct cache *c, int32_t s);
/* A free slot, else the least recently used chunk nobody is reading
 * (evicted); NONE if every slot is in use. */
int32_t slot_take(struct cache *c);
/* Drops a reference (takes the lock itself). */
void slot_release(struct cache *c, int32_t s);

#endif
