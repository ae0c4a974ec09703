/* Encoding an import's new chunks on several threads: chunks go in, in
 * the image's order, and come out encoded in that same order, so packs are
 * laid out as a one-thread import lays them (neighbours in the image next
 * to each other in the pack, which a prefetch reads in one range).
 * Compression is what an import spends its time on; reading, hashing and
 * writing stay on the caller's thread. */
#ifndef UFFDKIT_SNAP_CHUNKENCODE_H
#define UFFDKIT_SNAP_CHUNKENCODE_H

#include <pthread.h>

#include "format.h"
#include "keys.h"

struct cenc_slot {
  uint8_t id[UFK_STORE_ID];
  uint8_t *raw, *out; /* chunk_size bytes; ufk_store_encode_bound of it */
  uint8_t *sums;      /* the chunk's page sums, or NULL: none given */
  uint8_t *sums_buf;  /* room for them */
  uint32_t len;
  uint32_t *pack; /* where the caller wants the chunk's pack number */
  struct ufk_store_entry e;
  struct ufk_store_err err;
  int rc, state;
};

struct cencoder {
  const struct ufk_store_keys *keys;
  int codec, level;
  pthread_mutex_t lock;
  pthread_cond_t work, done;
  pthread_t *threads;
  int nthreads, stop;
  int idle, waiting; /* encoders waiting for work; the writer for one */
  struct cenc_slot *slot;
  unsigned nslots, head, count; /* ring: oldest at head */
};

/* Encodes on `threads` threads (2 or more): threads - 1 encoders, and the
 * caller's while it waits for a chunk to write; with a ring of chunks in
 * flight sized for them.  Returns 0, or -1 after a message. */
int cenc_start(struct cencoder *c, const struct ufk_store_keys *keys, int codec,
               int level, uint32_t chunk_size, int threads);
/* Queues a chunk and its page sums (NULL: none; both copied).  Returns 0,
 * or 1 when the ring is full: take
 * the oldest with cenc_oldest first. */
int cenc_put(struct cencoder *c, const uint8_t id[UFK_STORE_ID],
             const uint8_t *sums, const void *raw, uint32_t len,
             uint32_t *pack);
/* The oldest chunk queued, once encoded (waits); NULL when none is
 * queued.  cenc_drop ends it. */
struct cenc_slot *cenc_oldest(struct cencoder *c);
void cenc_drop(struct cencoder *c);
/* A chunk with this id queued and not yet taken (its number from the
 * oldest, 0 for the oldest), or -1. */
int cenc_find(struct cencoder *c, const uint8_t id[UFK_STORE_ID]);
/* Stops the threads and frees everything (chunks still queued are lost). */
void cenc_stop(struct cencoder *c);

#endif
