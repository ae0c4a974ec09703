/* readahead: notices sequential reads and prefetches what follows through
 * the layer below, from background threads, with a window that starts small,
 * doubles while the reads stay sequential and starts over on a new stream.
 *
 * Several vCPUs fault at once, so one "last offset" would see only noise:
 * a few streams are tracked, each with its own window.  Demand reads go
 * straight down and are never queued behind prefetches; the layer below
 * (cache) fetches prefetches with UFK_READ_PREFETCH, which the http source
 * serves with a connection left free for demand reads. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uffdkit/plugin.h>

#include "layer.h"

#define NSTREAMS 16
#define MAX_THREADS 64

static const struct ufk_host *host;

struct stream {
  uint64_t next;      /* where the next sequential read starts */
  uint64_t win_start; /* start of the last window queued */
  uint64_t ra_end;    /* queued up to here */
  uint64_t window;    /* size of the last window queued, 0: none yet */
  uint64_t used;      /* tick of last use, for replacement */
  int live;
};

struct job {
  uint64_t off, len;
};

struct ra {
  struct ufk_next *below;
  uint64_t window, max_window;
  unsigned nthreads;
  int64_t size;

  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct stream streams[NSTREAMS];
  uint64_t tick;
  struct job *q;
  unsigned qcap, qhead, qlen;
  pthread_t threads[MAX_THREADS];
  unsigned started;
  int stop, disabled;

  uint64_t *c_bytes, *c_errors, *c_dropped, *c_windows;
};

#define fail(...) ufk_fail(host, __VA_ARGS__)

/* ---- settings and lifetime ---- */

static int read_settings(const struct ufk_config *cfg, struct ra *r) {
  int64_t threads;
  if (host->get_size(cfg, "window", &r->window) ||
      host->get_size(cfg, "max_window", &r->max_window) ||
      host->get_int(cfg, "threads", &threads))
    return fail(EINVAL, "readahead: window, max_window must be sizes and "
                        "threads an integer");
  if (r->window < 4096 || r->window % 4096)
    return fail(EINVAL, "window (%s): %" PRIu64 " is not a multiple of 4K",
                host->where(cfg, "window"), r->window);
  if (r->max_window < r->window || r->max_window > (1ull << 40))
    return fail(EINVAL, "max_window (%s): must be between window and 1T",
                host->where(cfg, "max_window"));
  if (threads < 1 || threads > MAX_THREADS)
    return fail(EINVAL, "threads (%s): %" PRId64 " is not in 1..%d",
                host->where(cfg, "threads"), threads, MAX_THREADS);
  r->nthreads = (unsigned)threads;
  return 0;
}

static void readahead_destroy(void *inst);

static void *readahead_create(const struct ufk_config *cfg,
                              struct ufk_next *below) {
  if (!below) {
    fail(EINVAL, "readahead is a layer: it needs a source below it");
    return NULL;
  }
  struct ra *r = calloc(1, sizeof *r);
  if (!r) {
    fail(ENOMEM, "readahead: out of memory");
    return NULL;
  }
  r->below = below;
  pthread_mutex_init(&r->lock, NULL);
  pthread_cond_init(&r->cond, NULL);
  if (read_settings(cfg, r) < 0) {
    readahead_destroy(r);
    return NULL;
  }
  r->c_bytes = host->counter(cfg, "prefetch_bytes", "bytes asked below");
  r->c_errors = host->counter(cfg, "prefetch_errors", "failed prefetches");
  r->c_dropped = host->counter(cfg, "prefetch_dropped",
                               "prefetches dropped from a full queue");
  r->c_windows = host->counter(cfg, "windows", "windows queued");
  return r;
}

static void *fetch_thread(void *opaque);

static int readahead_start(void *inst) {
  struct ra *r = inst;
  r->size = r->below->get_size(r->below->handle);
  if (r->size <= 0)
    return fail(EINVAL, "readahead: the source below has no usable size");
  if (!r->below->prefetch) {
    r->disabled = 1;
    host->log(UFK_LOG_WARN, "readahead: the layer below cannot prefetch, so "
                            "readahead does nothing; put a cache layer "
                            "below it");
    return 0;
  }
  /* Room for two full windows in pieces of the initial window. */
  r->qcap = (unsigned)(2 * (r->max_window / r->window) + 16);
  r->q = calloc(r->qcap, sizeof *r->q);
  if (!r->q) return fail(ENOMEM, "readahead: out of memory");
  for (; r->started < r->nthreads; r->started++) {
    int e = pthread_create(&r->threads[r->started], NULL, fetch_thread, r);
    if (e) return fail(e, "readahead: cannot start thread: %s", strerror(e));
  }
  return 0;
}

static void readahead_destroy(void *inst) {
  struct ra *r = inst;
  if (!r) return;
  pthread_mutex_lock(&r->lock);
  r->stop = 1;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->lock);
  for (unsigned i = 0; i < r->started; i++)
    pthread_join(r->threads[i], NULL);
  free(r->q);
  pthread_cond_destroy(&r->cond);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

/* ---- queue (under r->lock) ---- */

static void push_job(struct ra *r, uint64_t off, uint64_t len) {
  if (r->qlen == r->qcap) {
    /* The oldest prefetch is the one the reader is most likely past. */
    r->qhead = (r->qhead + 1) % r->qcap;
    r->qlen--;
    __atomic_fetch_add(r->c_dropped, 1, __ATOMIC_RELAXED);
  }
  r->q[(r->qhead + r->qlen) % r->qcap] = (struct job){off, len};
  r->qlen++;
  pthread_cond_signal(&r->cond);
}

/* Pieces of the initial window, so the threads work on one window at once. */
static void queue_window(struct ra *r, uint64_t off, uint64_t len) {
  __atomic_fetch_add(r->c_windows, 1, __ATOMIC_RELAXED);
  for (uint64_t done = 0; done < len; done += r->window) {
    uint64_t n = len - done < r->window ? len - done : r->window;
    push_job(r, off + done, n);
  }
}

static void *fetch_thread(void *opaque) {
  struct ra *r = opaque;
  pthread_mutex_lock(&r->lock);
  while (!r->stop) {
    if (!r->qlen || __atomic_load_n(&r->disabled, __ATOMIC_RELAXED)) {
      pthread_cond_wait(&r->cond, &r->lock);
      continue;
    }
    struct job j = r->q[r->qhead];
    r->qhead = (r->qhead + 1) % r->qcap;
    r->qlen--;
    pthread_mutex_unlock(&r->lock);
    errno = 0;
    int rc = r->below->prefetch(r->below->handle, j.off, j.len);
    int e = errno;
    __atomic_fetch_add(rc < 0 ? r->c_errors : r->c_bytes, rc < 0 ? 1 : j.len,
                       __ATOMIC_RELAXED);
    pthread_mutex_lock(&r->lock);
    if (rc < 0 && e == ENOTSUP)
      __atomic_store_n(&r->disabled, 1, __ATOMIC_RELAXED);
  }
  pthread_mutex_unlock(&r->lock);
  return NULL;
}

/* ---- detection (under r->lock) ---- */

static struct stream *find_stream(struct ra *r, uint64_t off) {
  for (int i = 0; i < NSTREAMS; i++) {
    struct stream *s = &r->streams[i];
    if (s->live && (off == s->next || (off > s->next && off < s->ra_end)))
      return s;
  }
  return NULL;
}

/* A read that continues no stream starts one, in place of the least
 * recently used: that is the reset to the initial window. */
static void new_stream(struct ra *r, uint64_t end) {
  struct stream *old = &r->streams[0];
  for (int i = 1; i < NSTREAMS; i++)
    if (!r->streams[i].live || r->streams[i].used < old->used)
      old = &r->streams[i];
  *old =
      (struct stream){.next = end, .ra_end = end, .used = r->tick, .live = 1};
}

/* Once the reader enters the last window queued (or none is queued yet),
 * the next one is queued, twice as large. */
static void advance(struct ra *r, struct stream *s, uint64_t end) {
  if (end > s->next) s->next = end;
  s->used = r->tick;
  if (s->window && s->next <= s->win_start) return;
  uint64_t start = s->ra_end > s->next ? s->ra_end : s->next;
  if (start >= (uint64_t)r->size) return;
  uint64_t w = s->window ? s->window * 2 : r->window;
  if (w > r->max_window) w = r->max_window;
  uint64_t len = (uint64_t)r->size - start < w ? (uint64_t)r->size - start : w;
  s->window = w;
  s->win_start = start;
  s->ra_end = start + len;
  queue_window(r, start, len);
}

static void observe(struct ra *r, uint64_t off, uint64_t len) {
  pthread_mutex_lock(&r->lock);
  r->tick++;
  struct stream *s = find_stream(r, off);
  if (s)
    advance(r, s, off + len);
  else
    new_stream(r, off + len);
  pthread_mutex_unlock(&r->lock);
}

/* ---- data ---- */

static int readahead_read(void *inst, void *buf, uint64_t len, uint64_t off,
                          uint32_t flags) {
  struct ra *r = inst;
  if (r->below->read(r->below->handle, buf, len, off, flags) < 0) return -1;
  /* Background reads of the core are prefetches already; only what the
   * guest asks for says where it is going. */
  if (!__atomic_load_n(&r->disabled, __ATOMIC_RELAXED) &&
      !(flags & UFK_READ_PREFETCH))
    observe(r, off, len);
  return 0;
}

/* A page the layer below holds is served by map() and never read: a
 * stream seen only through its misses has holes (every other 2 MiB page
 * under a cache of 4 MiB chunks) and never looks sequential.  So a map
 * that hits is a guest access like a read. */
static const void *readahead_map(void *inst, uint64_t off, uint64_t len) {
  struct ra *r = inst;
  const void *p =
      r->below->map ? r->below->map(r->below->handle, off, len) : NULL;
  if (p && !__atomic_load_n(&r->disabled, __ATOMIC_RELAXED))
    observe(r, off, len);
  return p;
}

/* A layer with a map() owns its pointers' release: they are the layer
 * below's, so it gets them back. */
static void readahead_release(void *inst, const void *ptr, uint64_t off,
                              uint64_t len) {
  struct ra *r = inst;
  if (r->below->release) r->below->release(r->below->handle, ptr, off, len);
}

static int64_t readahead_get_size(void *inst) {
  struct ra *r = inst;
  return r->below->get_size(r->below->handle);
}

static int readahead_load(const struct ufk_host *h) {
  host = h;
  return 0;
}

static const struct ufk_param params[] = {
    {"window", UFK_T_SIZE, 0, "1M",
     "first prefetch window, and the piece each thread fetches"},
    {"max_window", UFK_T_SIZE, 0, "64M", "largest window"},
    {"threads", UFK_T_INT, 0, "2", "background prefetch threads"},
    {0},
};

static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,
    .flags = UFK_PLUGIN_LAYER,
    .thread_model = UFK_THREAD_PARALLEL,
    .name = "readahead",
    .version = "1.0",
    .description = "adaptive sequential prefetch into the layer below",
    .params = params,
    .load = readahead_load,
    .create = readahead_create,
    .start = readahead_start,
    .destroy = readahead_destroy,
    .get_size = readahead_get_size,
    .read = readahead_read,
    .map = readahead_map,
    .release = readahead_release,
};

UFFDKIT_PLUGIN(plugin)
