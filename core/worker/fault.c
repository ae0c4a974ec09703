#include "fault.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "busypoll.h"
#include "clock.h"
#include "figures.h"
#include "hosterror.h"
#include "install.h"
#include "ipc.h"
#include "log.h"
#include "pool.h"
#include "session.h"
#include "warm.h"

#define HUGE_2M (2ull << 20)

/* How many pages from idx (within region ri, up to max) are neither
 * installed, removed nor queued: the run fault-around may install at
 * once. */
static uint64_t free_run(struct session *s, int ri, uint64_t page,
                         uint64_t max) {
  const struct ufk_region *r = &s->regions[ri];
  uint64_t left = (r->base + r->size - page) >> s->ps_shift;
  uint64_t idx = session_page_index(s, ri, page), n = 1;
  if (max > left) max = left;
  while (n < max && !session_page_taken(s, idx + n))
    n++;
  return n;
}

/* Serves a page from a source that answers without blocking; sets *queue
 * when it would block after all (the pool takes the page). */
static enum install_result serve_inline(struct session *s, int ri,
                                        uint64_t page, uint64_t off,
                                        int *queue) {
  *queue = 0;
  uint64_t pages = 1 + (uint64_t)s->wl->conf->fault_around;
  if (warm_recording(s->warm))
    pages = 1; /* pages brought in around a fault would go unrecorded */
  if (pages > 1) pages = free_run(s, ri, page, pages);
  uint64_t len = pages << s->ps_shift;
  const void *src = stack_map(s->wl->stack, off, len);
  if (!src && len > s->ps) { /* not contiguous in the source: one page */
    len = s->ps;
    src = stack_map(s->wl->stack, off, len);
  }
  const void *mapped = src;
  if (!src) {
    if (len > s->ps) len = s->ps;
    uint32_t flags = UFK_READ_FAULT;
    if (!(stack_flags(s->wl->stack) & UFK_PLUGIN_FAST))
      flags |= UFK_READ_NOWAIT;
    host_clear_error();
    if (stack_read(s->wl->stack, s->buf, len, off, flags) < 0) {
      if ((flags & UFK_READ_NOWAIT) && host_last_errno() == EWOULDBLOCK)
        *queue = 1;
      else
        install_failed(s, page, off);
      return INSTALL_DONE;
    }
    src = s->buf;
  }
  enum install_result r = install_copy(s, page, src, len);
  if (mapped) stack_release(s->wl->stack, mapped, off, len);
  if (r == INSTALL_UNREADABLE) {
    install_failed(s, page, off);
    return INSTALL_DONE;
  }
  return r;
}

/* Whether page was woken as a stale fault lately; if not, it is
 * remembered now (a small ring: one entry per recent stale fault). */
static int recently_woken(struct session *s, uint64_t page) {
  for (int i = 0; i < STALE_RING; i++)
    if (s->stale[i] == page) {
      s->stale[i] = 0;
      return 1;
    }
  s->stale[s->stale_next++ % STALE_RING] = page;
  return 0;
}

/* Resolves one fault. */
static enum install_result serve(struct session *s, uint64_t addr) {
  int ri = session_region(s, addr);
  if (ri < 0) {
    session_log_limited(&s->lim_other, LOG_WARN, s,
                        "fault at 0x%llx outside every region",
                        (unsigned long long)addr);
    return INSTALL_DONE;
  }
  uint64_t page = addr & ~((uint64_t)s->ps - 1);
  uint64_t idx = session_page_index(s, ri, page);
  uint64_t off = session_offset(s, ri, page);
  if (bitmap_test(s->removed, idx)) return install_zero(s, page, s->ps);
  if (bitmap_test(s->inflight, idx))
    return INSTALL_DONE; /* the pool's copy will wake every waiter */
  if (bitmap_test(s->present, idx) && !recently_woken(s, page)) {
    /* Usually a message queued before our copy landed: wake the vCPU.  If
     * the page faults again while still remembered, it really is missing
     * (whatever else faults in between): install it again. */
    COUNT(s, stale_faults, 1);
    install_wake(s, page, s->ps);
    return INSTALL_DONE;
  }
  if (s->source_changed) { /* logged once when the worker took it over */
    install_refuse(s, page);
    return INSTALL_DONE;
  }
  warm_touch(s->warm, off);
  if (stack_is_zero(s->wl->stack, off, s->ps))
    return install_zero(s, page, s->ps);
  uint32_t fl = stack_flags(s->wl->stack);
  enum install_result r = INSTALL_DONE;
  int queue = 1;
  if (fl & (UFK_PLUGIN_FAST | UFK_PLUGIN_NOWAIT) || !s->wl->pool)
    r = serve_inline(s, ri, page, off, &queue);
  if (queue) {
    bitmap_set(s->inflight, idx, 1);
    pool_submit(s->wl->pool, s, page, off, idx, s->ps);
  }
  return r;
}

static void record_latency(struct session *s, uint64_t ns) {
  uint64_t us = ns / 1000;
  int b = 0;
  while (b < LAT_BUCKETS - 1 && us >= (4ull << b))
    b++;
  COUNT(s, lat_buckets[b], 1);
  COUNT(s, lat_count, 1);
  COUNT(s, lat_sum_ns, ns);
  figures_fault_served(s->shm);
}

/* Marks [start, end) removed in every region it touches. */
static void apply_remove(struct session *s, uint64_t start, uint64_t end) {
  COUNT(s, removes, 1);
  for (uint32_t i = 0; i < s->info.nregions; i++) {
    const struct ufk_region *r = &s->regions[i];
    uint64_t a = start > r->base ? start : r->base;
    uint64_t b = end < r->base + r->size ? end : r->base + r->size;
    if (a >= b) continue;
    /* Every page the range touches: on hugetlb a range may be unaligned. */
    uint64_t first = (a - r->base) >> s->ps_shift;
    uint64_t last = (b - r->base + s->ps - 1) >> s->ps_shift;
    uint64_t idx = s->shm->regions[i].first_page + first;
    bitmap_set(s->removed, idx, last - first);
    bitmap_clear(s->present, idx, last - first);
    COUNT(s, removed_pages, last - first);
  }
}

/* Applies every REMOVE in the shared message buffer and clears it.  Called
 * with rmlock held for writing. */
static void apply_removes(struct session *s, int n) {
  for (int i = 0; i < n; i++) {
    struct uffd_msg *m = &s->shm->evbuf[i];
    if (m->event == UFFD_EVENT_REMOVE || m->event == UFFD_EVENT_UNMAP)
      apply_remove(s, m->arg.remove.start, m->arg.remove.end);
    else if (m->event == UFFD_EVENT_REMAP)
      apply_remove(s, m->arg.remap.from, m->arg.remap.from + m->arg.remap.len);
  }
}

/* UFFD_EVENT_FORK puts a new descriptor (the child's userfaultfd) in
 * this process for every fork of a VMM that asked for fork events: it is
 * closed at once, or each fork would take a descriptor every other VM
 * needs.  The child is not served (its memory is not a restore). */
static void close_event_fds(struct session *s, int n) {
  for (int i = 0; i < n; i++) {
    struct uffd_msg *m = &s->shm->evbuf[i];
    if (m->event != UFFD_EVENT_FORK) continue;
    close((int)m->arg.fork.ufd);
    session_log_limited(&s->lim_fork, LOG_WARN, s,
                        "the VMM forked with fork events on; the child's "
                        "userfaultfd is closed, its memory not served");
  }
}

/* UNMAP and REMAP: the VMM gave up or moved part of guest memory.  What
 * was there is never served again as snapshot bytes (a fault there later
 * reads zeros); a moved range is not followed, since only the regions of
 * the handshake are served. */
static void moved_or_unmapped(struct session *s, const struct uffd_msg *m) {
  if (m->event == UFFD_EVENT_UNMAP) {
    session_log_limited(&s->lim_unmap, LOG_INFO, s,
                        "the VMM unmapped [0x%llx, 0x%llx) of guest memory",
                        (unsigned long long)m->arg.remove.start,
                        (unsigned long long)m->arg.remove.end);
    return;
  }
  session_log_limited(&s->lim_unmap, LOG_WARN, s,
                      "the VMM moved guest memory [0x%llx, +%llu) to 0x%llx "
                      "(mremap); faults at the new address are outside "
                      "every region and not served",
                      (unsigned long long)m->arg.remap.from,
                      (unsigned long long)m->arg.remap.len,
                      (unsigned long long)m->arg.remap.to);
}

/* Reads every pending message.  Returns how many, 0 if none, -1 if the
 * uffd is unusable. */
static int read_events(struct session *s) {
  pthread_rwlock_wrlock(&s->rmlock);
  ssize_t r = read(s->uffd, s->shm->evbuf, sizeof s->shm->evbuf);
  int n = r > 0 ? (int)(r / (ssize_t)sizeof(struct uffd_msg)) : 0;
  close_event_fds(s, n);
  apply_removes(s, n);
  pthread_rwlock_unlock(&s->rmlock);
  if (r < 0 && errno != EAGAIN && errno != EINTR) {
    session_log(LOG_ERROR, s, "reading the userfaultfd failed: %s",
                strerror(errno));
    return -1;
  }
  return n;
}

static void defer(struct session *s, uint64_t addr) {
  for (int i = 0; i < s->ndefer; i++)
    if (s->defer[i] == addr) return;
  if (s->ndefer < (int)(sizeof s->defer / sizeof *s->defer))
    s->defer[s->ndefer++] = addr;
}

/* A 2 MiB copy takes a few hundred microseconds, far more than a hand-off:
 * a page another vCPU waits on meanwhile, or the next page of a sequential
 * run, is copied by the pool beside the fault loop instead of after it.
 * Returns 1 if page went to the pool. */
static int hand_off(struct session *s, uint64_t page) {
  if (s->ps != HUGE_2M || !s->wl->pool || s->source_changed ||
      !(stack_flags(s->wl->stack) & UFK_PLUGIN_FAST))
    return 0;
  int ri = session_region(s, page);
  if (ri < 0) return 0;
  uint64_t idx = session_page_index(s, ri, page);
  uint64_t off = session_offset(s, ri, page);
  if (session_page_taken(s, idx) || stack_is_zero(s->wl->stack, off, s->ps) ||
      warm_recording(s->warm))
    return 0;
  bitmap_set(s->inflight, idx, 1);
  pool_submit(s->wl->pool, s, page, off, idx, s->ps);
  return 1;
}

/* After a fault at page, the next page of a sequential run goes ahead. */
static void fault_ahead(struct session *s, uint64_t page) {
  if (s->ps != HUGE_2M) return;
  if (s->last_fault + s->ps == page && session_region(s, page + s->ps) >= 0)
    hand_off(s, page + s->ps);
  s->last_fault = page;
}

/* Serves one batch of faults (already read into evbuf) and the deferred
 * ones.  Returns -1 when the VM is gone. */
static int serve_batch(struct session *s, int n, uint64_t t0) {
  uint64_t pages[SHM_EVBUF];
  int np = 0;
  for (int i = 0; i < n; i++) {
    struct uffd_msg *m = &s->shm->evbuf[i];
    if (m->event == UFFD_EVENT_PAGEFAULT) {
      uint64_t p = m->arg.pagefault.address & ~((uint64_t)s->ps - 1);
      int dup = 0;
      for (int k = 0; k < np && !dup; k++)
        dup = pages[k] == p;
      if (!dup) pages[np++] = p;
      COUNT(s, faults, 1);
    } else if (m->event == UFFD_EVENT_UNMAP || m->event == UFFD_EVENT_REMAP) {
      moved_or_unmapped(s, m);
    } else if (m->event != UFFD_EVENT_REMOVE && m->event != UFFD_EVENT_FORK) {
      session_log_limited(&s->lim_other, LOG_WARN, s,
                          "ignoring unexpected uffd event %u", m->event);
    }
  }
  memset(s->shm->evbuf, 0, (size_t)n * sizeof(struct uffd_msg));
  int ndef = s->ndefer;
  s->ndefer = 0;
  if (np) __atomic_store_n(&s->demand_ns, t0, __ATOMIC_RELAXED);
  /* Every new fault but the first may go to the pool, so the copies run
   * side by side; what went is marked 0 (no region starts at address 0). */
  for (int k = 1; k < np; k++)
    if (hand_off(s, pages[k])) pages[k] = 0;
  for (int i = 0; i < ndef + np; i++) {
    uint64_t p = i < ndef ? s->defer[i] : pages[i - ndef];
    if (!p) continue;
    pthread_rwlock_rdlock(&s->rmlock);
    enum install_result r = serve(s, p);
    pthread_rwlock_unlock(&s->rmlock);
    if (r == INSTALL_GONE) return -1;
    if (r == INSTALL_RETRY)
      defer(s, p);
    else if (i >= ndef) {
      record_latency(s, clock_mono_ns() - t0);
      fault_ahead(s, p);
    }
  }
  return 0;
}

/* The previous worker may have died between reading messages and applying
 * them, or with faults in flight: apply what it left, then wake every
 * region so any vCPU still waiting faults again. */
static void recover(struct session *s) {
  pthread_rwlock_wrlock(&s->rmlock);
  apply_removes(s, SHM_EVBUF);
  memset(s->shm->evbuf, 0, sizeof s->shm->evbuf);
  pthread_rwlock_unlock(&s->rmlock);
  for (uint32_t i = 0; i < s->info.nregions; i++)
    install_wake(s, s->regions[i].base, s->regions[i].size);
}

/* 1 if Firecracker is gone (process exited, or hung up where that means
 * it exited). */
static int peer_gone(struct session *s, struct pollfd *pf) {
  if (pf[1].revents & POLLIN) return 1;
  if (s->conn_open && (pf[2].revents & (POLLIN | POLLHUP | POLLRDHUP))) {
    char buf[4096];
    ssize_t r = recv(s->conn, buf, sizeof buf, MSG_DONTWAIT);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) return 1;
    /* Later Firecracker builds may talk on this socket; we do not yet. */
  }
  return 0;
}

/* The busy-poll window: "auto" must outlast what a guest does between
 * faults, which on a fresh 2 MiB page (reading it) takes far longer than
 * on 4 KiB. */
static uint64_t spin_window(const struct session *s) {
  uint64_t w = s->wl->conf->spin_ns;
  if (w != DURATION_AUTO) return w;
  return s->ps == HUGE_2M ? 500000 : 50000;
}

/* Sleeps through the nap the gaps between faults have taught, if any,
 * waking early for a fault.  Returns the faults read (*t0: when), 0 if none
 * came, -1 on error. */
static int nap(struct session *s, uint64_t *t0) {
  if (s->ndefer) return 0; /* deferred faults are retried every turn */
  uint64_t ns = busypoll_nap(&s->poll);
  if (!ns) return 0;
  struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u),
                        .tv_nsec = (long)(ns % 1000000000u)};
  struct pollfd p = {.fd = s->uffd, .events = POLLIN};
  uint64_t start = clock_mono_ns();
  int r = ppoll(&p, 1, &ts, NULL);
  *t0 = clock_mono_ns();
  if (r > 0) return read_events(s);
  if (r == 0) busypoll_slept(&s->poll, ns, *t0 - start);
  return 0;
}

/* Looks for the next fault until one comes (returns how many were read,
 * *t0: when), the window since last ends or looking stops paying (0), or
 * the VM is gone (-1). */
static int look(struct session *s, uint64_t last, uint64_t window,
                uint64_t *t0) {
  for (;;) {
    /* Asked before the yield, not after: with every CPU busy a yield hands
     * the CPU to another process and the next fault waits for its slice. */
    if (!busypoll_go_on(&s->poll, *t0)) return 0;
    /* A 2 MiB copy in the pool needs this CPU more than we need to look. */
    if (s->ps == HUGE_2M && __atomic_load_n(&s->pool_jobs, __ATOMIC_RELAXED))
      return 0;
    busypoll_yield(&s->poll);
    *t0 = clock_mono_ns();
    if (*t0 - last > window) {
      busypoll_missed(&s->poll);
      return 0;
    }
    /* Look without the REMOVE lock: read_events holds it exclusively, and
     * taking it on every turn would stall the warmer's copies. */
    struct pollfd p = {.fd = s->uffd, .events = POLLIN};
    int n = poll(&p, 1, 0) > 0 ? read_events(s) : 0;
    if (n) return n;
    if ((s->ndefer && serve_batch(s, 0, *t0) < 0) || session_failed(s))
      return -1;
  }
}

/* While faults keep coming, look for the next one for a short while
 * instead of sleeping in poll(): a wake-up costs more than the fault.  The
 * window restarts with every fault, so a restore stays hot and an idle VM
 * costs nothing; when to look at all, and how long to nap first, is
 * busypoll's.  Returns -1 when the VM is gone. */
static int spin(struct session *s) {
  uint64_t window = busypoll_begin(&s->poll, spin_window(s));
  if (!window) return 0;
  uint64_t served = clock_mono_ns(), last = served, t0 = served;
  for (;;) {
    int n = nap(s, &t0), woken = n > 0;
    if (!n) n = look(s, last, window, &t0);
    if (n <= 0) return n;
    if (serve_batch(s, n, t0) < 0 || session_failed(s)) return -1;
    busypoll_gap(&s->poll, t0 - served, woken);
    busypoll_caught(&s->poll);
    last = t0;
    served = clock_mono_ns();
  }
}

void fault_loop(struct session *s) {
  recover(s);
  s->warm = s->source_changed ? NULL : warm_start(s);
  struct pollfd pf[4] = {
      {.fd = s->uffd, .events = POLLIN},
      {.fd = s->pidfd, .events = POLLIN},
      {.fd = s->conn_open ? s->conn : -1, .events = POLLIN | POLLRDHUP},
      {.fd = s->stopfd, .events = POLLIN},
  };
  s->end_reason = END_EXITED;
  s->poll.adaptive = s->wl->conf->spin_ns == DURATION_AUTO;
  /* A nap must end when asked, not up to 50 us later (the default slack):
   * this thread's timers only, and only where it may nap. */
  if (s->poll.adaptive) prctl(PR_SET_TIMERSLACK, 1000ul);
  for (;;) {
    int timeout = s->ndefer ? 1 : -1;
    int pr = poll(pf, 4, timeout);
    if (pr < 0 && errno != EINTR) break;
    if (pf[3].revents & POLLIN) {
      s->end_reason = END_SHUTDOWN;
      break;
    }
    if (peer_gone(s, pf)) break;
    if (pf[0].revents & (POLLERR | POLLHUP)) break;
    uint64_t t0 = clock_mono_ns();
    int n = read_events(s);
    if (n < 0 || serve_batch(s, n, t0) < 0 || session_failed(s)) break;
    if (n > 0 && spin(s) < 0) break;
  }
  if (s->end_reason != END_SHUTDOWN && session_failed(s))
    s->end_reason = END_FAILED;
  __atomic_store_n(&s->ending, 1, __ATOMIC_RELEASE);
  busypoll_log(&s->poll, s->id, s->wl->conf->name);
  warm_stop(s->warm);
  s->warm = NULL;
}
