/* cache: chunks of the source below kept in memory (or an unlinked local
 * file), shared by every session of the instance, so clones of one template
 * fetch each chunk once.  Bounded; the least recently used chunk is reclaimed
 * first.  A chunk being fetched is in the table as FETCHING: other readers of
 * it wait for that one fetch.  A failed fetch leaves nothing behind. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <uffdkit/plugin.h>

#include "cache.h"
#include "layer.h"

static const struct ufk_host *host;

#define fail(...) ufk_fail(host, __VA_ARGS__)
#define MIN_PART ((uint64_t)256 << 10) /* smaller parts are not split off */

static void cache_destroy(void *inst);

static void *cache_create(const struct ufk_config *cfg,
                          struct ufk_next *below) {
  if (!below) {
    fail(EINVAL, "cache is a layer: it needs a source below it");
    return NULL;
  }
  struct cache *c = calloc(1, sizeof *c);
  if (!c) {
    fail(ENOMEM, "cache: out of memory");
    return NULL;
  }
  c->below = below;
  c->fd = -1;
  pthread_mutex_init(&c->lock, NULL);
  pthread_cond_init(&c->cond, NULL);
  if (cache_read_settings(host, cfg, c) < 0) {
    cache_destroy(c);
    return NULL;
  }
  cache_make_counters(host, cfg, c);
  return c;
}

/* ---- storage ---- */

/* The file is unlinked at once (nothing to clean up after a crash) and its
 * blocks reserved up front: a full disk must fail start(), not raise SIGBUS
 * on a later store into the mapping. */
static int open_file(struct cache *c) {
  c->fd = open(c->file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (c->fd < 0)
    return fail(errno, "cache file %s: %s (it must not exist yet)", c->file,
                strerror(errno));
  if (unlink(c->file) < 0)
    return fail(errno, "cache file %s: unlink: %s", c->file, strerror(errno));
  int e = posix_fallocate(c->fd, 0, (off_t)c->mem_len);
  if (e)
    return fail(e, "cache file %s: cannot reserve %zu bytes: %s", c->file,
                c->mem_len, strerror(e));
  return 0;
}

static int map_storage(struct cache *c) {
  if (c->file && open_file(c) < 0) return -1;
  int flags = c->file ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS;
  c->mem = mmap(NULL, c->mem_len, PROT_READ | PROT_WRITE, flags | MAP_NORESERVE,
                c->fd, 0);
  if (c->mem == MAP_FAILED) {
    c->mem = NULL;
    return fail(errno, "cache: cannot map %zu bytes%s%s: %s", c->mem_len,
                c->file ? " of " : "", c->file ? c->file : "", strerror(errno));
  }
  return 0;
}

/* On the writer's thread, once a chunk queued by c is stored (or not). */
static void disk_done(void *ctx, int evicted, int err) {
  struct cache *c = ctx;
  if (evicted < 0 && err == ESTALE) {
    __atomic_fetch_add(c->c_disk_skipped, 1, __ATOMIC_RELAXED);
  } else if (evicted >= 0) {
    __atomic_fetch_add(c->c_disk_writes, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(c->c_disk_evictions, (uint64_t)evicted,
                       __ATOMIC_RELAXED);
  } else if (!__atomic_exchange_n(&c->disk_warned, 1, __ATOMIC_RELAXED)) {
    host->log(UFK_LOG_WARN, "cache dir %s: cannot store a chunk: %s (%s)",
              c->dir, strerror(err), "further failures are not logged");
  }
}

static const void *disk_borrow(void *ctx, uint64_t off, uint64_t len);
static void disk_give_back(void *ctx, const void *p, uint64_t off,
                           uint64_t len);

static const struct disk_calls disk_calls = {
    .done = disk_done, .borrow = disk_borrow, .give_back = disk_give_back};

/* Entries are keyed by the version of the source's data and the chunk
 * size: a replaced object, or another chunk size, never meets them. */
static int open_disk(struct cache *c) {
  char id[2048], err[600];
  if (!UFK_NEXT_HAS(c->below, identity) ||
      c->below->identity(c->below->handle, id, sizeof id - 32) < 0)
    return fail(EINVAL,
                "cache: dir %s: the source below names no version of its "
                "data (an http server with neither ETag nor Last-Modified?), "
                "so chunks kept across restarts could be of another version",
                c->dir);
  snprintf(id + strlen(id), 32, "|chunk %" PRIu64, c->chunk);
  disk_key(id, c->dkey);
  errno = 0;
  if (!(c->disk = disk_open(c->dir, c->dir_size, c->dir_queue, &disk_calls, err,
                            sizeof err)))
    return fail(errno ? errno : EIO, "cache: %s", err);
  return 0;
}

static int cache_start(void *inst) {
  struct cache *c = inst;
  c->size = c->below->get_size(c->below->handle);
  if (c->size <= 0)
    return fail(EINVAL, "cache: the source below has no usable size");
  /* No point holding more slots than the source has chunks. */
  uint64_t nchunks = ((uint64_t)c->size + c->chunk - 1) >> c->shift;
  uint64_t n = c->capacity >> c->shift;
  c->nslots = (uint32_t)(n < nchunks ? n : nchunks);
  c->mem_len = (size_t)c->nslots << c->shift;
  if (slots_make(c) < 0)
    return fail(ENOMEM, "cache: out of memory for %u slots", c->nslots);
  if (map_storage(c) < 0) return -1;
  return c->dir ? open_disk(c) : 0;
}

static void cache_destroy(void *inst) {
  struct cache *c = inst;
  if (!c) return;
  /* Nothing queued names c once it is gone, and chunks queued without a
   * copy are written from its memory: drained first. */
  disk_drain(c->disk, c);
  if (c->mem) munmap(c->mem, c->mem_len);
  if (c->fd >= 0) close(c->fd);
  disk_close(c->disk);
  free(c->dir);
  slots_free(c);
  free(c->file);
  pthread_cond_destroy(&c->cond);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

/* ---- fetching ---- */

static uint64_t chunk_len(const struct cache *c, uint64_t chunk) {
  uint64_t off = chunk << c->shift;
  uint64_t left = (uint64_t)c->size - off;
  return left < c->chunk ? left : c->chunk;
}

static uint8_t *slot_mem(const struct cache *c, int32_t s) {
  return c->mem + ((size_t)s << c->shift);
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* A slot's memory, on its first fetch, is faulted in by one call instead
 * of a page fault per 4 KiB while the bytes come in from below (about a
 * third of a cold fetch's CPU time, measured).  Only the slot's fetcher
 * runs this; kernels before 5.14 refuse the advice, which changes nothing. */
static void populate(struct cache *c, int32_t s, uint64_t len) {
  if (c->file || c->populated[s]) return;
  c->populated[s] = 1;
  madvise(slot_mem(c, s), len, MADV_POPULATE_WRITE);
}

/* One share of a chunk fetch. */
struct part {
  struct ufk_next *below;
  uint8_t *mem;
  uint64_t len, off;
  uint32_t flags;
  int err;
};

static void *read_part(void *arg) {
  struct part *p = arg;
  errno = 0;
  if (p->below->read(p->below->handle, p->mem, p->len, p->off, p->flags) < 0)
    p->err = errno ? errno : EIO;
  return NULL;
}

/* Reads a chunk from below as up to c->parts requests side by side: one
 * stream is bound by one CPU's copying (and, from object storage, by one
 * connection's throughput), several are not.  The caller's thread reads
 * the first part.  Returns 0, or -1 with errno of the first failed part. */
static int read_chunk(struct cache *c, uint8_t *mem, uint64_t len, uint64_t off,
                      uint32_t flags) {
  unsigned n = c->parts;
  while (n > 1 && len / n < MIN_PART)
    n--;
  uint64_t step = (len / n + 4095) & ~(uint64_t)4095;
  struct part p[MAX_PARTS];
  pthread_t t[MAX_PARTS];
  int started[MAX_PARTS] = {0};
  unsigned k = 0;
  for (uint64_t at = 0; at < len; at += step, k++)
    p[k] = (struct part){c->below, mem + at, at + step < len ? step : len - at,
                         off + at, flags,    0};
  for (unsigned i = 1; i < k; i++)
    started[i] = pthread_create(&t[i], NULL, read_part, &p[i]) == 0;
  for (unsigned i = 0; i < k; i++)
    if (!started[i]) read_part(&p[i]);
  int err = 0;
  for (unsigned i = 0; i < k; i++) {
    if (started[i]) pthread_join(t[i], NULL);
    if (p[i].err && !err) err = p[i].err;
  }
  errno = err;
  return err ? -1 : 0;
}

/* A chunk from dir if it has a good entry, else from below, then queued
 * to be kept in dir by the writer thread: the fault does not wait for a
 * write and a sync.  A failed store, or a queue full of places too, only
 * costs that chunk's persistence. */
static int fill_chunk(struct cache *c, uint8_t *mem, uint64_t len, uint64_t off,
                      uint32_t flags) {
  char why[PATH_MAX + 200];
  int got = c->disk ? disk_get(c->disk, c->dkey, off, mem, len, why, sizeof why)
                    : DISK_MISS;
  if (got == DISK_HIT) {
    __atomic_fetch_add(c->c_disk_hits, 1, __ATOMIC_RELAXED);
    return 0;
  }
  if (got == DISK_DISCARDED) {
    host->log(UFK_LOG_WARN, "%s", why);
    __atomic_fetch_add(c->c_disk_discarded, 1, __ATOMIC_RELAXED);
  }
  if (read_chunk(c, mem, len, off, flags) < 0) return -1;
  __atomic_fetch_add(c->c_remote, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(c->c_bytes, len, __ATOMIC_RELAXED);
  if (!c->disk) return 0;
  if (disk_put_later(c->disk, c->dkey, off, mem, len, c) == 0) return 0;
  if (errno == EAGAIN)
    __atomic_fetch_add(c->c_disk_skipped, 1, __ATOMIC_RELAXED);
  else
    disk_done(c, -1, errno);
  return 0;
}

/* Called with the lock held and returns with it held; drops it around the
 * read below.  On success the slot is VALID, with one reference for the
 * caller if `keep`. */
static int fetch_into(struct cache *c, int32_t s, uint64_t chunk,
                      uint32_t flags, int keep) {
  struct slot *sl = &c->slots[s];
  struct fetch *f = calloc(1, sizeof *f);
  if (!f) {
    sl->next = c->free_head;
    c->free_head = s;
    return fail(ENOMEM, "cache: out of memory");
  }
  f->refs = 1;
  *sl =
      (struct slot){.chunk = chunk, .state = S_FETCHING, .refs = 1, .fetch = f};
  slot_hash_insert(c, s);
  __atomic_fetch_add(c->c_misses, 1, __ATOMIC_RELAXED);
  pthread_mutex_unlock(&c->lock);

  uint64_t len = chunk_len(c, chunk);
  populate(c, s, len);
  errno = 0;
  int r = fill_chunk(c, slot_mem(c, s), len, chunk << c->shift,
                     flags & ~UFK_READ_NOWAIT);
  int e = r < 0 ? (errno ? errno : EIO) : 0;

  pthread_mutex_lock(&c->lock);
  f->done = 1;
  f->err = e;
  sl->fetch = NULL;
  if (--f->refs == 0) free(f);
  if (r == 0) {
    sl->state = S_VALID;
    slot_lru_push(c, s);
  } else {
    slot_hash_remove(c, s);
    sl->state = S_FREE;
    sl->refs = 0;
    sl->next = c->free_head;
    c->free_head = s;
  }
  if (r == 0 && !keep) sl->refs--;
  pthread_cond_broadcast(&c->cond);
  errno = e;
  return r < 0 ? -1 : 0;
}

/* Waits (lock held) for the fetch in flight on slot s; returns its error,
 * 0 if it went well. */
static int fetch_end(struct cache *c, int32_t s) {
  struct fetch *f = c->slots[s].fetch;
  f->refs++;
  while (!f->done)
    pthread_cond_wait(&c->cond, &c->lock);
  int e = f->err;
  if (--f->refs == 0) free(f);
  return e;
}

/* As fetch_end, with the error reported: 0, else -1. */
static int wait_fetch(struct cache *c, int32_t s, uint64_t chunk) {
  int e = fetch_end(c, s);
  if (!e) return 0;
  return fail(e,
              "cache: chunk %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64
              "): the fetch this read waited for failed: %s",
              chunk, chunk << c->shift,
              (chunk << c->shift) + chunk_len(c, chunk) - 1, strerror(e));
}

static int would_block(const struct cache *c, uint64_t chunk) {
  return fail(EWOULDBLOCK,
              "cache: chunk %" PRIu64 " (bytes %" PRIu64 "-) is not cached",
              chunk, chunk << c->shift);
}

/* Lock held.  Returns the slot of chunk with a reference held, or NONE with
 * the error reported. */
static int32_t acquire_locked(struct cache *c, uint64_t chunk, uint32_t flags) {
  for (;;) {
    int32_t s = slot_lookup(c, chunk);
    if (s != NONE && c->slots[s].state == S_VALID) {
      c->slots[s].refs++;
      slot_lru_touch(c, s);
      __atomic_fetch_add(c->c_hits, 1, __ATOMIC_RELAXED);
      return s;
    }
    if (flags & UFK_READ_NOWAIT) {
      would_block(c, chunk);
      return NONE;
    }
    if (s != NONE) {
      if (wait_fetch(c, s, chunk) < 0) return NONE;
      continue;
    }
    s = slot_take(c);
    if (s != NONE) return fetch_into(c, s, chunk, flags, 1) < 0 ? NONE : s;
    /* Every slot is being read or fetched: wait for one to come free. */
    c->slot_waiters++;
    pthread_cond_wait(&c->cond, &c->lock);
    c->slot_waiters--;
  }
}

static int32_t acquire(struct cache *c, uint64_t chunk, uint32_t flags) {
  pthread_mutex_lock(&c->lock);
  int32_t s = acquire_locked(c, chunk, flags);
  int e = errno;
  pthread_mutex_unlock(&c->lock);
  errno = e;
  return s;
}

/* ---- data ---- */

static int check_range(const struct cache *c, uint64_t len, uint64_t off) {
  if (len && off <= (uint64_t)c->size && len <= (uint64_t)c->size - off)
    return 0;
  return fail(EINVAL,
              "cache: read of %" PRIu64 " bytes at %" PRIu64
              " is outside the source (%" PRId64 " bytes)",
              len, off, c->size);
}

static int cache_read(void *inst, void *buf, uint64_t len, uint64_t off,
                      uint32_t flags) {
  struct cache *c = inst;
  uint8_t *p = buf;
  if (check_range(c, len, off) < 0) return -1;
  while (len) {
    uint64_t chunk = off >> c->shift, in = off & (c->chunk - 1);
    uint64_t n = c->chunk - in < len ? c->chunk - in : len;
    int32_t s = acquire(c, chunk, flags);
    if (s == NONE) return -1;
    memcpy(p, slot_mem(c, s) + in, n);
    slot_release(c, s);
    p += n;
    off += n;
    len -= n;
  }
  return 0;
}

/* Fetches the missing chunks of the range on the calling thread (the
 * readahead layer calls it from its own threads).  Never waits: chunks in
 * flight are skipped, and it stops when no slot is free. */
static int cache_prefetch(void *inst, uint64_t off, uint64_t len) {
  struct cache *c = inst;
  if (check_range(c, len, off) < 0) return -1;
  uint64_t last = (off + len - 1) >> c->shift;
  int r = 0;
  pthread_mutex_lock(&c->lock);
  for (uint64_t chunk = off >> c->shift; chunk <= last && r == 0; chunk++) {
    if (slot_lookup(c, chunk) != NONE) continue;
    int32_t s = slot_take(c);
    if (s == NONE) break;
    r = fetch_into(c, s, chunk, UFK_READ_PREFETCH, 0);
  }
  int e = errno;
  pthread_mutex_unlock(&c->lock);
  errno = e;
  return r;
}

/* A pointer into a cached chunk, holding a reference to it like a read in
 * progress, so the chunk is not reclaimed until cache_release.  Never
 * fetches: a chunk not cached (or a range over two chunks) is read. */
static const void *hold(struct cache *c, uint64_t off, uint64_t len, int use) {
  if (!len || (off >> c->shift) != ((off + len - 1) >> c->shift) ||
      off + len > (uint64_t)c->size)
    return NULL;
  const void *p = NULL;
  pthread_mutex_lock(&c->lock);
  int32_t s = slot_lookup(c, off >> c->shift);
  if (s != NONE && c->slots[s].state == S_VALID) {
    c->slots[s].refs++;
    if (use) {
      slot_lru_touch(c, s);
      __atomic_fetch_add(c->c_hits, 1, __ATOMIC_RELAXED);
    }
    p = slot_mem(c, s) + (off & (c->chunk - 1));
  }
  pthread_mutex_unlock(&c->lock);
  return p;
}

static const void *cache_map(void *inst, uint64_t off, uint64_t len) {
  return hold(inst, off, len, 1);
}

static void cache_release(void *inst, const void *ptr, uint64_t off,
                          uint64_t len) {
  struct cache *c = inst;
  (void)off;
  (void)len;
  slot_release(c, (int32_t)(((const uint8_t *)ptr - c->mem) >> c->shift));
}

/* The writer storing a chunk queued without a copy: not a use, so the
 * chunk keeps its place in the LRU and the hits stay the guest's. */
static const void *disk_borrow(void *ctx, uint64_t off, uint64_t len) {
  struct cache *c = ctx;
  /* The place is queued before its fetch marks the chunk valid: a writer
   * that gets there first waits for that, or it would count the chunk gone
   * when it is about to be there. */
  pthread_mutex_lock(&c->lock);
  int32_t s = slot_lookup(c, off >> c->shift);
  if (s != NONE && c->slots[s].state == S_FETCHING) fetch_end(c, s);
  pthread_mutex_unlock(&c->lock);
  return hold(c, off, len, 0);
}

static void disk_give_back(void *ctx, const void *p, uint64_t off,
                           uint64_t len) {
  cache_release(ctx, p, off, len);
}

static int64_t cache_get_size(void *inst) {
  struct cache *c = inst;
  return c->size ? c->size : c->below->get_size(c->below->handle);
}

static void cache_caps(void *inst, struct ufk_caps *out) {
  struct cache *c = inst;
  out->flags = UFK_PLUGIN_NOWAIT | (c->below->flags & UFK_PLUGIN_FAST);
  out->max_concurrency = 0;
  out->max_io = 0;
}

static int cache_load(const struct ufk_host *h) {
  host = h;
  return 0;
}

static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,
    .flags = UFK_PLUGIN_LAYER | UFK_PLUGIN_NOWAIT,
    .thread_model = UFK_THREAD_PARALLEL,
    .name = "cache",
    .version = "1.0",
    .description = "bounded LRU chunk cache shared by all sessions",
    .params = cache_params,
    .load = cache_load,
    .create = cache_create,
    .start = cache_start,
    .destroy = cache_destroy,
    .get_size = cache_get_size,
    .read = cache_read,
    .map = cache_map,
    .prefetch = cache_prefetch,
    .caps = cache_caps,
    .release = cache_release,
};

UFFDKIT_PLUGIN(plugin)
