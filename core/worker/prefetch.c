#include "prefetch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "figures.h"
#include "host.h"
#include "log.h"
#include "session.h"

#define MAGIC "UFKWSET1"
#define HEADER 40
#define MAX_RUN_BYTES (2u << 20)
#define REPLAY_THREADS 2
#define REPLAY_CHUNK 32 /* working-set entries dealt to a thread at a time */

struct prefetch {
  struct session *s;
  const struct listener_conf *conf;
  int recording;
  uint64_t record_until; /* 0: until the session ends */
  uint64_t *rec;
  size_t nrec, caprec;
  pthread_mutex_t rec_lock;
  struct wset ws; /* to replay, n == 0 if none */
  int fill;
  pthread_t thread;
  int has_thread;
  void *buf;
};

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- the file ---- */

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

int wset_write(const char *path, const struct wset *w, char *err,
               size_t errlen) {
  /* Unique per write: many sessions of one worker may record at once. */
  static uint64_t seq;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d.%d.%llu", path, (int)getpid(),
           (int)gettid(),
           (unsigned long long)__atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
  FILE *f = fopen(tmp, "we");
  if (!f) {
    snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    return -1;
  }
  uint8_t h[HEADER];
  size_t idlen = strlen(w->identity);
  memcpy(h, MAGIC, 8);
  put_u32(h + 8, 1);
  put_u32(h + 12, w->page_size);
  put_u64(h + 16, w->source_size);
  put_u64(h + 24, w->n);
  put_u64(h + 32, idlen);
  fwrite(h, 1, HEADER, f);
  fwrite(w->identity, 1, idlen, f);
  uint64_t prev = 0;
  for (size_t i = 0; i < w->n; i++) {
    /* zigzag of the delta, as a LEB128 varint: runs cost one byte a page */
    int64_t d = (int64_t)(w->pages[i] - prev);
    uint64_t z = ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
    prev = w->pages[i];
    do {
      fputc((int)((z & 0x7f) | (z > 0x7f ? 0x80 : 0)), f);
      z >>= 7;
    } while (z);
  }
  int bad = ferror(f) | fflush(f) | fsync(fileno(f));
  bad |= fclose(f);
  if (bad || rename(tmp, path) < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

static int decode(const uint8_t *p, size_t len, struct wset *w, char *err,
                  size_t errlen) {
  size_t at = 0;
  uint64_t prev = 0, max = w->source_size / w->page_size;
  for (size_t i = 0; i < w->n; i++) {
    uint64_t z = 0;
    int shift = 0;
    for (;;) {
      if (at == len || shift > 63) {
        snprintf(err, errlen, "entry %zu is cut short", i);
        return -1;
      }
      uint8_t b = p[at++];
      z |= (uint64_t)(b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80)) break;
    }
    int64_t d = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    prev += (uint64_t)d;
    if (prev >= max) {
      snprintf(err, errlen, "entry %zu: page %llu is beyond the source", i,
               (unsigned long long)prev);
      return -1;
    }
    w->pages[i] = prev;
  }
  if (at != len) {
    snprintf(err, errlen, "%zu bytes after the last entry", len - at);
    return -1;
  }
  return 0;
}

int wset_read(const char *path, struct wset *w, char *err, size_t errlen) {
  memset(w, 0, sizeof *w);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    snprintf(err, errlen, "%s", strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  uint8_t *b = malloc((size_t)st.st_size + 1);
  ssize_t got = b ? read(fd, b, (size_t)st.st_size) : -1;
  close(fd);
  int r = -1;
  uint64_t idlen = got >= HEADER ? get_u64(b + 32) : 0;
  if (got != st.st_size || got < HEADER || memcmp(b, MAGIC, 8) ||
      (get_u64(b + 8) & 0xffffffffu) != 1) {
    snprintf(err, errlen, "not a uffdkit working-set file (version 1)");
  } else if (idlen >= sizeof w->identity || HEADER + idlen > (uint64_t)got) {
    snprintf(err, errlen, "identity of %llu bytes does not fit",
             (unsigned long long)idlen);
  } else {
    w->page_size =
        (uint32_t)(b[12] | b[13] << 8 | b[14] << 16 | (uint32_t)b[15] << 24);
    w->source_size = get_u64(b + 16);
    w->n = get_u64(b + 24);
    memcpy(w->identity, b + HEADER, idlen);
    size_t body = (size_t)got - HEADER - idlen;
    if ((w->page_size != 4096 && w->page_size != (2u << 20)) || w->n > body ||
        w->source_size / w->page_size < 1) {
      snprintf(err, errlen, "bad page size, count or source size");
    } else {
      w->pages = calloc(w->n + 1, sizeof *w->pages);
      r = decode(b + HEADER + idlen, body, w, err, errlen);
    }
  }
  free(b);
  if (r < 0) wset_free(w);
  return r;
}

void wset_free(struct wset *w) {
  free(w->pages);
  w->pages = NULL;
  w->n = 0;
}

/* ---- installing ---- */

/* Guest address of source offset off, with its region; 0 if none. */
static uint64_t guest_addr(struct session *s, uint64_t off, int *ri) {
  for (uint32_t i = 0; i < s->info.nregions; i++) {
    const struct ufk_region *r = &s->regions[i];
    if (off - r->offset < r->size) {
      *ri = (int)i;
      return r->base + (off - r->offset);
    }
  }
  return 0;
}

static uint64_t idx_of(struct session *s, int ri, uint64_t addr) {
  return s->shm->regions[ri].first_page +
         ((addr - s->regions[ri].base) >> s->ps_shift);
}

static int busy(struct session *s, uint64_t idx) {
  return bit_test(s->present, idx) || bit_test(s->removed, idx) ||
         bit_test(s->inflight, idx);
}

/* Installs the leading pages of [addr, addr+len) that are neither present,
 * removed nor in flight, without waking anyone.  The check and the copy
 * happen under one hold of rmlock, and again on every retry: a REMOVE
 * applied while we waited must never be undone by our copy.  Returns 0
 * (with the pages this call installed in *done), or -1 when the session is
 * over. */
static int copy_dontwake(struct session *s, int ri, uint64_t addr,
                         const void *src, uint64_t len, int zero,
                         uint64_t *done) {
  uint64_t idx = idx_of(s, ri, addr), n = len >> s->ps_shift, got = 0;
  *done = 0;
  for (int tries = 0; tries < 1000; tries++) {
    pthread_rwlock_rdlock(&s->rmlock);
    uint64_t k = 0;
    while (k < n && !busy(s, idx + k))
      k++;
    int r = !k ? 0
            : zero
                ? session_install_zero_mode(s, addr, k << s->ps_shift,
                                            UFFDIO_ZEROPAGE_MODE_DONTWAKE, &got)
                : session_install_copy_mode(s, addr, src, k << s->ps_shift,
                                            UFFDIO_COPY_MODE_DONTWAKE, &got);
    pthread_rwlock_unlock(&s->rmlock);
    if (r != 1) {
      *done = got >> s->ps_shift;
      return r < 0 ? -1 : 0; /* 3, unreadable: a fault applies the policy */
    }
    if (__atomic_load_n(&s->ending, __ATOMIC_ACQUIRE)) return -1;
    nanosleep(&(struct timespec){0, 50000}, NULL);
  }
  return 0;
}

/* Installs the leading pages of [addr, addr+len) (one region, not yet
 * present) from source offset off.  Returns how many pages the caller may
 * move past: those installed, or the whole run if it could not be read or
 * installed (a fault will ask again, with the failure policy), but never a
 * page after one somebody else installed meanwhile, since the pages beyond
 * it are still missing.  -1 when the session is over. */
static int64_t install_run(struct prefetch *p, void *buf, int ri, uint64_t addr,
                           uint64_t off, uint64_t len) {
  struct session *s = p->s;
  uint64_t n = len >> s->ps_shift;
  int zero = stack_is_zero(s->wl->stack, off, len);
  const void *src = NULL;
  if (!zero) {
    src = stack_map(s->wl->stack, off, len);
    host_clear_error();
    if (!src &&
        stack_read(s->wl->stack, buf, len, off, UFK_READ_PREFETCH) < 0) {
      log_debug("session %llu: prefetch of %llu+%llu failed: %s",
                (unsigned long long)s->id, (unsigned long long)off,
                (unsigned long long)len, host_last_error());
      return (int64_t)n;
    }
    if (!src) src = buf;
  }
  /* Between reading and installing, the range may have been removed or
   * installed: copy_dontwake checks again, under the lock. */
  uint64_t k;
  if (copy_dontwake(s, ri, addr, src, len, zero, &k) < 0) return -1;
  COUNT(s, prefetched_pages, k);
  if (k == n) return (int64_t)n;
  /* Stopped short: at a page that became busy (the caller skips it), or
   * for a reason retrying will not cure. */
  return k ? (int64_t)k : busy(s, idx_of(s, ri, addr)) ? 1 : (int64_t)n;
}

static void wake_range(struct session *s, uint64_t lo, uint64_t hi) {
  if (hi > lo) {
    struct uffdio_range r = {.start = lo, .len = hi - lo};
    ioctl(s->uffd, UFFDIO_WAKE, &r);
  }
}

static int stopping(struct session *s) {
  return __atomic_load_n(&s->ending, __ATOMIC_ACQUIRE);
}

/* One share of the replay: the working set in first-touch order, cut in
 * chunks dealt to REPLAY_THREADS threads, since installing is bound by how
 * fast one thread can copy.  Each page starts a run extended over the
 * following pages that are also in the set. */
struct share {
  struct prefetch *p;
  const uint64_t *in; /* bit per source page: in the working set */
  int part;
  void *buf;
};

static void *replay(void *arg) {
  struct share *sh = arg;
  struct prefetch *p = sh->p;
  struct session *s = p->s;
  const uint64_t *in = sh->in;
  uint64_t nsrc = p->ws.source_size / s->ps;
  uint64_t max_pages = MAX_RUN_BYTES / s->ps ? MAX_RUN_BYTES / s->ps : 1;
  uint64_t gap = (uint64_t)p->conf->replay_max_gap;
  uint64_t lo = UINT64_MAX, hi = 0;
  int runs = 0;
  for (size_t i = 0; i < p->ws.n && !stopping(s); i++) {
    if ((int)(i / REPLAY_CHUNK % REPLAY_THREADS) != sh->part) continue;
    int ri;
    uint64_t off = p->ws.pages[i] * s->ps;
    uint64_t addr = guest_addr(s, off, &ri);
    if (!addr || busy(s, idx_of(s, ri, addr))) continue;
    const struct ufk_region *r = &s->regions[ri];
    uint64_t pg = p->ws.pages[i];
    uint64_t n = 1, last_ws = 0, idx = idx_of(s, ri, addr);
    uint64_t left = (r->base + r->size - addr) >> s->ps_shift;
    /* Extend the run over the following pages of the set, copying across
     * at most max_gap unlisted pages between two listed ones: each such
     * page is guest memory spent on what the guest did not touch, traded
     * for one ioctl less (uffdkit.conf(5) has the measurements). */
    while (n < max_pages && n < left && pg + n < nsrc &&
           n - last_ws <= gap + 1 && !busy(s, idx + n)) {
      if (in[(pg + n) / 64] >> ((pg + n) % 64) & 1) last_ws = n;
      n++;
    }
    n = last_ws + 1;
    if (install_run(p, sh->buf, ri, addr, off, n << s->ps_shift) < 0) break;
    lo = addr < lo ? addr : lo;
    hi = addr + (n << s->ps_shift) > hi ? addr + (n << s->ps_shift) : hi;
    if (++runs % 64 == 0) {
      wake_range(s, lo, hi);
      lo = UINT64_MAX;
      hi = 0;
    }
  }
  wake_range(s, lo, hi);
  return NULL;
}

static void replay_all(struct prefetch *p) {
  struct session *s = p->s;
  uint64_t nsrc = p->ws.source_size / s->ps;
  uint64_t *in = calloc(nsrc / 64 + 1, sizeof *in);
  for (size_t i = 0; i < p->ws.n; i++)
    in[p->ws.pages[i] / 64] |= 1ull << (p->ws.pages[i] % 64);
  uint64_t before =
      __atomic_load_n(&s->shm->counters.prefetched_pages, __ATOMIC_RELAXED);
  figures_replay_start(s->shm, p->ws.n);
  struct share sh[REPLAY_THREADS];
  pthread_t th[REPLAY_THREADS];
  int started[REPLAY_THREADS] = {0};
  for (int t = 0; t < REPLAY_THREADS; t++) {
    sh[t] =
        (struct share){.p = p, .in = in, .part = t, .buf = t ? NULL : p->buf};
    if (t && posix_memalign(&sh[t].buf, 4096, MAX_RUN_BYTES) != 0)
      sh[t].buf = NULL;
    if (t && sh[t].buf)
      started[t] = pthread_create(&th[t], NULL, replay, &sh[t]) == 0;
  }
  replay(&sh[0]);
  for (int t = 1; t < REPLAY_THREADS; t++) {
    if (started[t])
      pthread_join(th[t], NULL);
    else
      replay(&(struct share){.p = p, .in = in, .part = t, .buf = p->buf});
    free(sh[t].buf); /* never p->buf: NULL or its own */
  }
  free(in);
  uint64_t installed =
      __atomic_load_n(&s->shm->counters.prefetched_pages, __ATOMIC_RELAXED) -
      before;
  figures_replay_end(s->shm, installed);
  log_info("session %llu: working set replayed (%zu pages listed, %llu "
           "installed ahead of the guest)",
           (unsigned long long)s->id, p->ws.n, (unsigned long long)installed);
}

/* Installs every page nobody asked for, in address order, giving way to
 * demand faults. */
static void fill(struct prefetch *p) {
  struct session *s = p->s;
  uint64_t max_pages = MAX_RUN_BYTES / s->ps ? MAX_RUN_BYTES / s->ps : 1;
  for (uint32_t ri = 0; ri < s->info.nregions && !stopping(s); ri++) {
    const struct ufk_region *r = &s->regions[ri];
    uint64_t a = r->base, end = r->base + r->size;
    while (a < end && !stopping(s)) {
      uint64_t idx = idx_of(s, (int)ri, a);
      if (busy(s, idx)) {
        a += s->ps;
        continue;
      }
      uint64_t n = 1;
      while (n < max_pages && a + (n << s->ps_shift) < end && !busy(s, idx + n))
        n++;
      int64_t done = install_run(p, p->buf, (int)ri, a,
                                 r->offset + (a - r->base), n << s->ps_shift);
      if (done < 0) return;
      wake_range(s, a, a + ((uint64_t)done << s->ps_shift));
      a += (uint64_t)done << s->ps_shift;
      /* Yield while the guest is faulting: its pages come first. */
      while (mono_ns() - __atomic_load_n(&s->demand_ns, __ATOMIC_RELAXED) <
                 2000000 &&
             !stopping(s))
        nanosleep(&(struct timespec){0, 500000}, NULL);
    }
  }
  if (!stopping(s))
    log_info("session %llu: background fill done", (unsigned long long)s->id);
}

static void *prefetch_main(void *arg) {
  struct prefetch *p = arg;
  /* Replay races the guest to its pages: normal priority.  Background
   * fill only uses what nobody else wants. */
  setpriority(PRIO_PROCESS, (id_t)gettid(), p->ws.n ? 0 : 19);
  if (p->ws.n) replay_all(p);
  if (p->fill) {
    setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
    fill(p);
  }
  return NULL;
}

/* ---- starting and stopping ---- */

static int load_for_replay(struct prefetch *p) {
  struct session *s = p->s;
  char err[512], id[1024];
  const char *path = p->conf->prefetch_path;
  if (wset_read(path, &p->ws, err, sizeof err) < 0) {
    if (p->conf->prefetch_mode == PREFETCH_REPLAY || access(path, F_OK) == 0)
      log_warn("session %llu: not replaying working set %s: %s",
               (unsigned long long)s->id, path, err);
    return -1;
  }
  stack_identity(s->wl->stack, id, sizeof id);
  const char *why = p->ws.page_size != s->ps ? "its page size differs"
                    : p->ws.source_size != (uint64_t)stack_size(s->wl->stack)
                        ? "its source size differs"
                    : strcmp(p->ws.identity, id)
                        ? "it was recorded from another source"
                        : NULL;
  if (why) {
    log_warn("session %llu: not replaying working set %s: %s (recorded for "
             "%s, serving %s)",
             (unsigned long long)s->id, path, why, p->ws.identity, id);
    wset_free(&p->ws);
    return -1;
  }
  return 0;
}

struct prefetch *prefetch_start(struct session *s) {
  const struct listener_conf *c = s->wl->conf;
  if (c->prefetch_mode == PREFETCH_OFF && !c->background_fill) return NULL;
  struct prefetch *p = calloc(1, sizeof *p);
  p->s = s;
  p->conf = c;
  p->fill = c->background_fill;
  pthread_mutex_init(&p->rec_lock, NULL);
  int replaying = 0;
  if (c->prefetch_mode == PREFETCH_REPLAY || c->prefetch_mode == PREFETCH_AUTO)
    replaying = load_for_replay(p) == 0;
  if (c->prefetch_mode == PREFETCH_RECORD ||
      (c->prefetch_mode == PREFETCH_AUTO && !replaying)) {
    p->recording = 1;
    p->record_until = c->record_for_ns ? mono_ns() + c->record_for_ns : 0;
    log_info("session %llu: recording its working set to %s",
             (unsigned long long)s->id, c->prefetch_path);
  }
  if (p->ws.n || p->fill) {
    if (posix_memalign(&p->buf, 4096, MAX_RUN_BYTES) == 0 &&
        pthread_create(&p->thread, NULL, prefetch_main, p) == 0)
      p->has_thread = 1;
  }
  return p;
}

static void write_recording(struct prefetch *p) {
  struct session *s = p->s;
  /* Keep the first touch of each page only. */
  uint64_t nsrc = (uint64_t)stack_size(s->wl->stack) / s->ps;
  uint64_t *seen = calloc(nsrc / 64 + 1, sizeof *seen);
  size_t n = 0;
  for (size_t i = 0; i < p->nrec; i++) {
    uint64_t pg = p->rec[i];
    if (pg < nsrc && !(seen[pg / 64] >> (pg % 64) & 1)) {
      seen[pg / 64] |= 1ull << (pg % 64);
      p->rec[n++] = pg;
    }
  }
  free(seen);
  struct wset w = {.page_size = s->ps,
                   .source_size = (uint64_t)stack_size(s->wl->stack),
                   .pages = p->rec,
                   .n = n};
  stack_identity(s->wl->stack, w.identity, sizeof w.identity);
  char err[512];
  if (wset_write(p->conf->prefetch_path, &w, err, sizeof err) < 0)
    log_error("session %llu: writing the working set: %s",
              (unsigned long long)s->id, err);
  else
    log_info("session %llu: recorded a working set of %zu pages to %s",
             (unsigned long long)s->id, n, p->conf->prefetch_path);
}

int prefetch_touch(struct prefetch *p, uint64_t off) {
  if (!p || !p->recording) return 0;
  if (p->record_until && mono_ns() >= p->record_until) {
    p->recording = 0;
    write_recording(p);
    return 0;
  }
  if (p->nrec == p->caprec) {
    p->caprec = p->caprec ? 2 * p->caprec : 4096;
    p->rec = realloc(p->rec, p->caprec * sizeof *p->rec);
  }
  p->rec[p->nrec++] = off >> p->s->ps_shift;
  return 1;
}

int prefetch_recording(const struct prefetch *p) {
  return p && p->recording;
}

void prefetch_stop(struct prefetch *p) {
  if (!p) return;
  if (p->has_thread) pthread_join(p->thread, NULL);
  if (p->recording && p->nrec) write_recording(p);
  free(p->rec);
  free(p->buf);
  wset_free(&p->ws);
  pthread_mutex_destroy(&p->rec_lock);
  free(p);
}
