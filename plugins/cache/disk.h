/* The cache layer's disk mode: chunks kept as files in a directory across
 * daemon restarts, bounded in bytes, least recently used first out.  An
 * entry is written to a temporary file, synced and renamed into place, and
 * carries the SHA-256 of its bytes: a torn or foreign file is discarded on
 * read, never served.  Entries are keyed by the version of the source
 * (its identity) and the chunk's offset. */
#ifndef UFFDKIT_CACHE_DISK_H
#define UFFDKIT_CACHE_DISK_H

#include <stddef.h>
#include <stdint.h>

#define DISK_KEY_LEN 32
#define DISK_HEADER 96

struct disk;

/* What the writer thread calls back with the ctx of a disk_put_later. */
struct disk_calls {
  /* The outcome: disk_put's result (entries evicted, or -1) and its errno;
   * ESTALE for a chunk queued without a copy that borrow no longer had. */
  void (*done)(void *ctx, int evicted, int err);
  /* The bytes of a chunk queued without a copy, held until given back;
   * NULL if the queuer has let go of them. */
  const void *(*borrow)(void *ctx, uint64_t off, uint64_t len);
  void (*give_back)(void *ctx, const void *p, uint64_t off, uint64_t len);
};

/* The directory's index, shared by every instance of this process that
 * names the same directory (with the same bound and queue depth); built
 * from the directory on first use, with a writer thread whose queue holds
 * `depth` chunks.  NULL with err and errno set on failure. */
struct disk *disk_open(const char *dir, uint64_t bound, unsigned depth,
                       const struct disk_calls *calls, char *err,
                       size_t errlen);
void disk_close(struct disk *d);

/* The key of a source's data: a hash of its identity. */
void disk_key(const char *identity, uint8_t key[DISK_KEY_LEN]);

enum { DISK_MISS, DISK_HIT, DISK_DISCARDED };

/* Fills buf with the entry of (key, off), len bytes, if there is a good
 * one or one queued to be written: DISK_HIT.  DISK_MISS if there is none;
 * DISK_DISCARDED if there was one that failed its checks, now removed (why in
 * `why`). */
int disk_get(struct disk *d, const uint8_t key[DISK_KEY_LEN], uint64_t off,
             void *buf, uint64_t len, char *why, size_t whylen);

/* Stores len bytes as the entry of (key, off), evicting the least recently
 * used entries to stay within the bound.  The number of entries evicted,
 * or -1 with errno (nothing stored; the cache goes on without it). */
int disk_put(struct disk *d, const uint8_t key[DISK_KEY_LEN], uint64_t off,
             const void *buf, uint64_t len);

/* Queues the chunk for the writer thread, which stores it with disk_put
 * and then calls `done` with ctx: a copy, or past the queue's depth its
 * place alone, whose bytes the writer borrows from ctx when it gets to it.
 * -1 with errno EAGAIN when the places are full too (the chunk is not
 * kept), ENOMEM. */
int disk_put_later(struct disk *d, const uint8_t key[DISK_KEY_LEN],
                   uint64_t off, const void *buf, uint64_t len, void *ctx);

/* Returns once no chunk queued with ctx waits to be written. */
void disk_drain(struct disk *d, const void *ctx);

/* Checks an entry's header and data (a file's whole content, n bytes)
 * against the key, offset and length it must have.  NULL if good, else
 * what is wrong. */
const char *disk_check(const uint8_t *file, size_t n,
                       const uint8_t key[DISK_KEY_LEN], uint64_t off,
                       uint64_t len);

#endif
