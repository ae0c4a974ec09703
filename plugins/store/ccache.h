/* The store source's recent chunks: decoded and checked chunks kept for
 * the next read of the same chunk (a 4 KiB fault after another in a 64 KiB
 * chunk), so it neither fetches nor decodes again.  Direct-mapped by chunk
 * number: a run of consecutive chunks up to the capacity never evicts
 * itself.  Only chunks that passed their checks are put. */
#ifndef UFFDKIT_PLUGIN_STORE_RECENT_H
#define UFFDKIT_PLUGIN_STORE_RECENT_H

#include <pthread.h>
#include <stdint.h>

struct recent_slot {
  pthread_mutex_t lock;
  uint64_t chunk; /* chunk number + 1; 0 when empty */
  uint64_t len;
  uint8_t *buf; /* chunk_size bytes, allocated on first use */
};

struct recent {
  uint32_t n, chunk_size;
  struct recent_slot *slots;
};

/* Room for `bytes` / chunk_size chunks; none (a cache that keeps nothing)
 * when that is 0.  -1 when out of memory. */
int recent_init(struct recent *r, uint64_t bytes, uint32_t chunk_size);
void recent_free(struct recent *r);

/* Copies n bytes of chunk `chunk` from `shift` into dst if the chunk is
 * kept: 1, else 0. */
int recent_get(struct recent *r, uint64_t chunk, uint64_t shift, void *dst,
               uint64_t n);

/* Keeps a copy of the checked chunk (len bytes), in place of whatever was
 * in its slot. */
void recent_put(struct recent *r, uint64_t chunk, const void *data,
                uint64_t len);

#endif
