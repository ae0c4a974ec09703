/* A bounded cache of decoded frames of compressed diffs, shared by every
 * read of a diff instance: a frame is decoded once while several faults
 * need it (the others wait for that decode), and the least recently used
 * unused frame makes room for the next. */
#ifndef UFFDKIT_DIFF_FRAMES_H
#define UFFDKIT_DIFF_FRAMES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes frame `frame` of `owner` into dst; reports its own errors.
 * Returns 0 or -1. */
typedef int (*fcache_decode_fn)(void *opaque, uint8_t *dst);

struct fslot {
  const void *owner;
  uint64_t frame;
  int state;
  unsigned refs;
  uint64_t used; /* tick of the last use, for eviction */
  uint8_t *buf;
};

struct fcache {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct fslot *slots;
  size_t nslots;
  size_t slot_bytes;
  uint64_t tick;
  uint64_t *decoded, *hits; /* counters, may be NULL */
};

/* Slots of max_frame bytes within budget bytes, at least two. */
int fcache_init(struct fcache *c, uint64_t budget, uint32_t max_frame);
void fcache_free(struct fcache *c);
/* The decoded frame (owner, frame), decoding it with fn if no slot holds
 * it.  Returns a slot index to read c->slots[i].buf from and give back with
 * fcache_put, or -1 when the decode failed. */
long fcache_get(struct fcache *c, const void *owner, uint64_t frame,
                fcache_decode_fn fn, void *opaque);
void fcache_put(struct fcache *c, long slot);

#endif
