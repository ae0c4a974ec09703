/* The disk mode's writer: a thread that stores fetched chunks in the
 * directory, so the read that fetched a chunk returns before the chunk is
 * written and synced.  Its queue of copies is bounded (in chunks, so in
 * memory); past it a chunk is queued without a copy, by its place alone
 * (up to WRITER_NOCOPY_FACTOR times as many), and the writer takes its
 * bytes from the memory cache when it gets to it, so a fault never waits
 * and a writer that falls behind loses only chunks the memory cache let
 * go of meanwhile. */
#ifndef UFFDKIT_CACHE_WRITER_H
#define UFFDKIT_CACHE_WRITER_H

#include <stdint.h>

#define WRITER_KEY_LEN 32
#define WRITER_NOCOPY_FACTOR 64

struct wjob {
  uint8_t key[WRITER_KEY_LEN];
  uint64_t off, len;
  uint8_t *buf; /* a copy of the chunk, the writer's own; NULL: no copy */
  void *ctx;    /* the queuer's, given back to `fn` */
  int busy;     /* being written */
  struct wjob *next;
};

/* Called on the writer's thread for each job, in the order queued. */
typedef void (*writer_fn)(void *arg, const struct wjob *job);

struct writer;

/* Starts the thread.  NULL with errno on failure. */
struct writer *writer_new(unsigned depth, writer_fn fn, void *arg);
/* Waits for every job queued, then stops the thread. */
void writer_free(struct writer *w);

/* Queues a copy of buf, or past `depth` copies queued or being written
 * the place alone (the job's buf NULL): 0, or -1 with errno EAGAIN when
 * depth * WRITER_NOCOPY_FACTOR of those are queued too (nothing queued),
 * ENOMEM. */
int writer_put(struct writer *w, const uint8_t key[WRITER_KEY_LEN],
               uint64_t off, const void *buf, uint64_t len, void *ctx);

/* A chunk queued with a copy and not yet written, copied into buf: 1,
 * else 0. */
int writer_find(struct writer *w, const uint8_t key[WRITER_KEY_LEN],
                uint64_t off, void *buf, uint64_t len);

/* Returns once no job of ctx is queued or being written. */
void writer_drain(struct writer *w, const void *ctx);

#endif
