#include "warm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "figures.h"
#include "hosterror.h"
#include "install.h"
#include "log.h"
#include "mem.h"
#include "session.h"
#include "wplan.h"
#include "wsfile.h"

#define MAX_RUN_BYTES (2u << 20)

struct warm {
  struct session *s;
  const struct listener_conf *conf;
  int recording;
  uint64_t record_until; /* 0: until the session ends */
  uint64_t *rec;
  size_t nrec, caprec;
  struct wset ws; /* to replay, n == 0 if none */
  int fill;
  pthread_t thread;
  int has_thread;
  void *buf;
};

/* ---- installing ---- */

/* Installs the leading pages of [addr, addr+len) that are neither present,
 * removed nor in flight, without waking anyone.  The check and the copy
 * happen under one hold of rmlock, and again on every retry: a REMOVE
 * applied while we waited must never be undone by our copy.  Returns 0
 * (with the pages this call installed in *done), or -1 when the session is
 * over. */
static int copy_dontwake(struct session *s, int ri, uint64_t addr,
                         const void *src, uint64_t len, int zero,
                         uint64_t *done) {
  uint64_t idx = session_page_index(s, ri, addr), n = len >> s->ps_shift,
           got = 0;
  *done = 0;
  for (int tries = 0; tries < 1000; tries++) {
    pthread_rwlock_rdlock(&s->rmlock);
    uint64_t k = 0;
    while (k < n && !session_page_taken(s, idx + k))
      k++;
    enum install_result r =
        !k     ? INSTALL_DONE
        : zero ? install_zero_mode(s, addr, k << s->ps_shift,
                                   UFFDIO_ZEROPAGE_MODE_DONTWAKE, &got)
               : install_copy_mode(s, addr, src, k << s->ps_shift,
                                   UFFDIO_COPY_MODE_DONTWAKE, &got);
    pthread_rwlock_unlock(&s->rmlock);
    if (r != INSTALL_RETRY) {
      *done = got >> s->ps_shift;
      /* unreadable: a fault asks again and applies the policy */
      return r == INSTALL_GONE ? -1 : 0;
    }
    if (session_ending(s)) return -1;
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
static int64_t install_run(struct warm *p, void *buf, int ri, uint64_t addr,
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
      session_log(LOG_DEBUG, s, "reading %llu+%llu ahead failed: %s",
                  (unsigned long long)off, (unsigned long long)len,
                  host_last_error());
      return (int64_t)n;
    }
    if (!src) src = buf;
  }
  /* Between reading and installing, the range may have been removed or
   * installed: copy_dontwake checks again, under the lock. */
  uint64_t k;
  int r = copy_dontwake(s, ri, addr, src, len, zero, &k);
  if (src && src != buf) stack_release(s->wl->stack, src, off, len);
  if (r < 0) return -1;
  COUNT(s, prefetched_pages, k);
  if (k == n) return (int64_t)n;
  /* Stopped short: at a page that became busy (the caller skips it), or
   * for a reason retrying will not cure. */
  return k                                                        ? (int64_t)k
         : session_page_taken(s, session_page_index(s, ri, addr)) ? 1
                                                                  : (int64_t)n;
}

static void wake_range(struct session *s, uint64_t lo, uint64_t hi) {
  if (hi > lo) install_wake(s, lo, hi - lo);
}

/* ---- replay ----
 *
 * The working set is planned into source ranges (wplan.h) in first-touch
 * order; FETCH_THREADS threads take them in that order, each asking the
 * stack to prefetch its range (a cache or store below fetches it in
 * chunks, or in merged pack ranges) and then reading it in one call (one
 * ranged request when the source is http itself), and install its listed
 * pages.  So up to FETCH_THREADS transfers are in flight; demand faults go
 * on through the fault loop and the pool as UFK_READ_FAULT reads, for
 * which a level's concurrency limit (stack.c) and the http source's
 * connections keep room that prefetches may not take. */
#define FETCH_THREADS 4
#define FETCH_BLOCK (1u << 20)      /* largest range asked for at once */
#define FETCH_GAP_BYTES (64u << 10) /* unlisted bytes merged across */
/* Asked for at once while the guest faulted within GUEST_BUSY_NS. */
#define FETCH_BUSY_PIECE (256u << 10)
#define GUEST_BUSY_NS 2000000u

struct lane {
  struct warm *p;
  const uint64_t *in; /* bit per source page: in the working set */
  const struct wrange *r;
  size_t n, next;         /* next: the next range to take (atomic) */
  uint64_t ranges, bytes; /* asked for (atomic) */
};

/* Whether source page pg is listed, lies in guest memory and is still
 * missing; its region and guest address then in *ri and *addr. */
static int wanted(struct session *s, const uint64_t *in, uint64_t pg, int *ri,
                  uint64_t *addr) {
  if (!bitmap_test(in, pg)) return 0;
  *addr = session_guest_addr(s, pg << s->ps_shift, ri);
  return *addr && !session_page_taken(s, session_page_index(s, *ri, *addr));
}

/* Installs the listed pages of [a, b) from src (the bytes of page a on;
 * NULL: zeros), in runs bridging at most max_gap unlisted pages, one wake
 * per run.  -1 when the session is over. */
static int install_listed(struct warm *p, const uint64_t *in, uint64_t a,
                          uint64_t b, const uint8_t *src) {
  struct session *s = p->s;
  uint64_t gap = (uint64_t)p->conf->replay_max_gap;
  for (uint64_t pg = a; pg < b && !session_ending(s);) {
    int ri;
    uint64_t addr;
    if (!wanted(s, in, pg, &ri, &addr)) {
      pg++;
      continue;
    }
    const struct ufk_region *r = &s->regions[ri];
    uint64_t left = (r->base + r->size - addr) >> s->ps_shift;
    uint64_t idx = session_page_index(s, ri, addr), n = 1, last = 0, k;
    while (n < left && pg + n < b && n - last <= gap + 1 &&
           !session_page_taken(s, idx + n)) {
      if (bitmap_test(in, pg + n)) last = n;
      n++;
    }
    n = last + 1;
    const uint8_t *from = src ? src + ((pg - a) << s->ps_shift) : NULL;
    if (copy_dontwake(s, ri, addr, from, n << s->ps_shift, !src, &k) < 0)
      return -1;
    COUNT(s, prefetched_pages, k);
    wake_range(s, addr, addr + (k << s->ps_shift));
    pg += k ? k : n;
  }
  return 0;
}

/* Whether the guest faulted within the last 2 ms: its pages come first. */
static int guest_faulting(struct session *s) {
  return clock_mono_ns() - __atomic_load_n(&s->demand_ns, __ATOMIC_RELAXED) <
         GUEST_BUSY_NS;
}

/* Fetches [a, b) (source pages, the first and last listed and missing) and
 * installs its listed pages still missing.  -1 when the session is
 * over. */
static int replay_piece(struct lane *l, uint64_t a, uint64_t b, void *buf) {
  struct warm *p = l->p;
  struct session *s = p->s;
  struct stack *st = s->wl->stack;
  uint64_t off = a << s->ps_shift, len = (b - a) << s->ps_shift;
  __atomic_fetch_add(&l->ranges, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(&l->bytes, len, __ATOMIC_RELAXED);
  if (stack_is_zero(st, off, len)) return install_listed(p, l->in, a, b, NULL);
  if (stack_prefetch(st, off, len) < 0)
    session_log(LOG_DEBUG, s, "prefetching %llu+%llu failed: %s",
                (unsigned long long)off, (unsigned long long)len,
                host_last_error());
  host_clear_error();
  const void *src = stack_map(st, off, len);
  if (!src && stack_read(st, buf, len, off, UFK_READ_PREFETCH) < 0) {
    /* a fault asks again and applies the policy */
    session_log(LOG_DEBUG, s, "reading %llu+%llu ahead failed: %s",
                (unsigned long long)off, (unsigned long long)len,
                host_last_error());
    return 0;
  }
  int rc = install_listed(p, l->in, a, b, src ? src : buf);
  if (src) stack_release(st, src, off, len);
  return rc;
}

/* Fetches range r and installs its listed pages, asking each time only
 * from the first listed page still missing to the last.  While the guest
 * faults, its demand reads go first and a read of replay's may wait long
 * enough for the guest to get past pages it asked for, fetching them
 * itself: so then the range goes in pieces of FETCH_BUSY_PIECE, each
 * trimmed when it is asked for.  -1 when the session is over. */
static int replay_range(struct lane *l, const struct wrange *r, void *buf) {
  struct session *s = l->p->s;
  uint64_t a = r->first, b = r->first + r->n, u;
  uint64_t piece = FETCH_BUSY_PIECE / s->ps ? FETCH_BUSY_PIECE / s->ps : 1;
  int ri;
  for (;;) {
    while (a < b && !wanted(s, l->in, a, &ri, &u))
      a++;
    if (a == b) return 0;
    uint64_t e = guest_faulting(s) && b - a > piece ? a + piece : b;
    while (!wanted(s, l->in, e - 1, &ri, &u)) /* a is wanted */
      e--;
    if (replay_piece(l, a, e, buf) < 0) return -1;
    a = e;
  }
}

static void *lane_main(void *arg) {
  struct lane *l = arg;
  void *buf = xmemalign(MAX_RUN_BYTES);
  for (;;) {
    size_t k = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);
    if (k >= l->n || session_ending(l->p->s) ||
        replay_range(l, &l->r[k], buf) < 0)
      break;
  }
  free(buf);
  return NULL;
}

static void replay_all(struct warm *p) {
  struct session *s = p->s;
  uint64_t nsrc = p->ws.source_size / s->ps;
  uint64_t block = FETCH_BLOCK / s->ps ? FETCH_BLOCK / s->ps : 1;
  uint64_t gap = FETCH_GAP_BYTES / s->ps;
  if (gap < (uint64_t)p->conf->replay_max_gap)
    gap = (uint64_t)p->conf->replay_max_gap;
  struct lane l = {.p = p};
  struct wrange *r;
  l.n = wplan_build(p->ws.pages, p->ws.n, nsrc, gap, block, &r);
  l.r = r;
  uint64_t *in = xcalloc(bitmap_words(nsrc), sizeof *in);
  for (size_t i = 0; i < p->ws.n; i++)
    if (p->ws.pages[i] < nsrc) bitmap_set(in, p->ws.pages[i], 1);
  l.in = in;
  uint64_t before =
      __atomic_load_n(&s->shm->counters.prefetched_pages, __ATOMIC_RELAXED);
  figures_replay_start(s->shm, p->ws.n);
  pthread_t th[FETCH_THREADS];
  int started[FETCH_THREADS] = {0};
  for (int t = 1; t < FETCH_THREADS; t++)
    started[t] = pthread_create(&th[t], NULL, lane_main, &l) == 0;
  lane_main(&l);
  for (int t = 1; t < FETCH_THREADS; t++)
    if (started[t]) pthread_join(th[t], NULL);
  free(in);
  free(r);
  uint64_t installed =
      __atomic_load_n(&s->shm->counters.prefetched_pages, __ATOMIC_RELAXED) -
      before;
  figures_replay_end(s->shm, installed);
  session_log(LOG_INFO, s,
              "working set replayed (%zu pages listed, %llu installed ahead "
              "of the guest; %llu ranges, %llu bytes asked for)",
              p->ws.n, (unsigned long long)installed,
              (unsigned long long)l.ranges, (unsigned long long)l.bytes);
}

/* Installs every page nobody asked for, in address order, giving way to
 * demand faults. */
static void fill(struct warm *p) {
  struct session *s = p->s;
  uint64_t max_pages = MAX_RUN_BYTES / s->ps ? MAX_RUN_BYTES / s->ps : 1;
  for (uint32_t ri = 0; ri < s->info.nregions && !session_ending(s); ri++) {
    const struct ufk_region *r = &s->regions[ri];
    uint64_t a = r->base, end = r->base + r->size;
    while (a < end && !session_ending(s)) {
      uint64_t idx = session_page_index(s, (int)ri, a);
      if (session_page_taken(s, idx)) {
        a += s->ps;
        continue;
      }
      uint64_t n = 1;
      while (n < max_pages && a + (n << s->ps_shift) < end &&
             !session_page_taken(s, idx + n))
        n++;
      int64_t done = install_run(p, p->buf, (int)ri, a,
                                 r->offset + (a - r->base), n << s->ps_shift);
      if (done < 0) return;
      wake_range(s, a, a + ((uint64_t)done << s->ps_shift));
      a += (uint64_t)done << s->ps_shift;
      /* Yield while the guest is faulting: its pages come first. */
      while (guest_faulting(s) && !session_ending(s))
        nanosleep(&(struct timespec){0, 500000}, NULL);
    }
  }
  if (!session_ending(s)) session_log(LOG_INFO, s, "background fill done");
}

static void *warm_main(void *arg) {
  struct warm *p = arg;
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

static int load_for_replay(struct warm *p) {
  struct session *s = p->s;
  char err[512], id[1024];
  const char *path = p->conf->wset_path;
  if (wset_read(path, &p->ws, err, sizeof err) < 0) {
    if (p->conf->wset_mode == WSET_REPLAY || access(path, F_OK) == 0)
      session_log(LOG_WARN, s, "not replaying working set %s: %s", path, err);
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
    session_log(LOG_WARN, s,
                "not replaying working set %s: %s (recorded for %s, serving "
                "%s)",
                path, why, p->ws.identity, id);
    wset_free(&p->ws);
    return -1;
  }
  return 0;
}

struct warm *warm_start(struct session *s) {
  const struct listener_conf *c = s->wl->conf;
  if (c->wset_mode == WSET_OFF && !c->background_fill) return NULL;
  struct warm *p = xcalloc(1, sizeof *p);
  p->s = s;
  p->conf = c;
  p->fill = c->background_fill;
  int replaying = 0;
  if (c->wset_mode == WSET_REPLAY || c->wset_mode == WSET_AUTO)
    replaying = load_for_replay(p) == 0;
  if (c->wset_mode == WSET_RECORD ||
      (c->wset_mode == WSET_AUTO && !replaying)) {
    p->recording = 1;
    p->record_until = c->record_for_ns ? clock_mono_ns() + c->record_for_ns : 0;
    session_log(LOG_INFO, s, "recording its working set to %s", c->wset_path);
  }
  if (p->ws.n || p->fill) {
    p->buf = xmemalign(MAX_RUN_BYTES);
    p->has_thread = pthread_create(&p->thread, NULL, warm_main, p) == 0;
  }
  return p;
}

static void write_recording(struct warm *p) {
  struct session *s = p->s;
  /* Keep the first touch of each page only. */
  uint64_t nsrc = (uint64_t)stack_size(s->wl->stack) / s->ps;
  uint64_t *seen = xcalloc(bitmap_words(nsrc), sizeof *seen);
  size_t n = 0;
  for (size_t i = 0; i < p->nrec; i++) {
    uint64_t pg = p->rec[i];
    if (pg < nsrc && !bitmap_test(seen, pg)) {
      bitmap_set(seen, pg, 1);
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
  if (wset_write(p->conf->wset_path, &w, err, sizeof err) < 0)
    session_log(LOG_ERROR, s, "writing the working set: %s", err);
  else
    session_log(LOG_INFO, s, "recorded a working set of %zu pages to %s", n,
                p->conf->wset_path);
}

void warm_touch(struct warm *p, uint64_t off) {
  if (!p || !p->recording) return;
  if (p->record_until && clock_mono_ns() >= p->record_until) {
    p->recording = 0;
    write_recording(p);
    return;
  }
  if (p->nrec == p->caprec) {
    p->caprec = p->caprec ? 2 * p->caprec : 4096;
    p->rec = xrealloc(p->rec, p->caprec, sizeof *p->rec);
  }
  p->rec[p->nrec++] = off >> p->s->ps_shift;
}

int warm_recording(const struct warm *p) {
  return p && p->recording;
}

void warm_stop(struct warm *p) {
  if (!p) return;
  if (p->has_thread) pthread_join(p->thread, NULL);
  if (p->recording && p->nrec) write_recording(p);
  free(p->rec);
  free(p->buf);
  wset_free(&p->ws);
  free(p);
}
