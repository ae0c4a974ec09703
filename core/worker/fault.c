/* The fault loop of one session: every uffd event Firecracker can send,
 * handled explicitly. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "busypoll.h"
#include "figures.h"
#include "hosterror.h"
#include "ipc.h"
#include "log.h"
#include "peer.h"
#include "pool.h"
#include "prefetch.h"
#include "session.h"

#ifndef UFFDIO_POISON
/* Linux 6.6; Debian 12's headers predate it. */
struct uffdio_poison {
  struct uffdio_range range;
  uint64_t mode;
  int64_t updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, 0x08, struct uffdio_poison)
#endif

#define HUGE_2M (2ull << 20)

static void *zero_2m;
static pthread_once_t zero_once = PTHREAD_ONCE_INIT;

static void zero_init(void) {
  /* Never written: every page reads the kernel's shared zero page. */
  zero_2m = mmap(NULL, HUGE_2M, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static const void *zero_buffer(void) {
  pthread_once(&zero_once, zero_init);
  return zero_2m;
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bits_set(uint64_t *b, uint64_t first, uint64_t n) {
  for (uint64_t i = first; i < first + n;) {
    uint64_t w = i / 64, lo = i % 64, k = 64 - lo;
    if (k > first + n - i) k = first + n - i;
    uint64_t mask = (k == 64 ? ~0ull : ((1ull << k) - 1)) << lo;
    __atomic_fetch_or(&b[w], mask, __ATOMIC_RELAXED);
    i += k;
  }
}

void bits_clear(uint64_t *b, uint64_t first, uint64_t n) {
  for (uint64_t i = first; i < first + n;) {
    uint64_t w = i / 64, lo = i % 64, k = 64 - lo;
    if (k > first + n - i) k = first + n - i;
    uint64_t mask = (k == 64 ? ~0ull : ((1ull << k) - 1)) << lo;
    __atomic_fetch_and(&b[w], ~mask, __ATOMIC_RELAXED);
    i += k;
  }
}

/* Region index of addr, trying the last one first (faults cluster). */
static int find_region(struct session *s, uint64_t addr) {
  int last = __atomic_load_n(&s->last_region, __ATOMIC_RELAXED);
  const struct ufk_region *r = &s->regions[last];
  if (addr - r->base < r->size) return last;
  for (uint32_t i = 0; i < s->info.nregions; i++)
    if (addr - s->regions[i].base < s->regions[i].size) {
      __atomic_store_n(&s->last_region, (int)i, __ATOMIC_RELAXED);
      return (int)i;
    }
  return -1;
}

static uint64_t page_index(struct session *s, int ri, uint64_t page) {
  return s->shm->regions[ri].first_page +
         ((page - s->regions[ri].base) >> s->ps_shift);
}

static void mark_present(struct session *s, uint64_t dst, uint64_t len) {
  int ri = find_region(s, dst);
  if (ri >= 0) bits_set(s->present, page_index(s, ri, dst), len >> s->ps_shift);
}

static void wake(struct session *s, uint64_t addr, uint64_t len) {
  struct uffdio_range r = {.start = addr, .len = len};
  ioctl(s->uffd, UFFDIO_WAKE, &r);
}

/* Common handling of COPY/ZEROPAGE results; done = bytes the kernel
 * reports installed (negative errno on failure).  Returns as
 * session_install_*, or 3 when the source bytes could not be read; *got
 * (if not NULL) is the bytes this call installed. */
static int install_result(struct session *s, int rc, int64_t done, uint64_t dst,
                          uint64_t len, int zero, uint64_t *got) {
  if (got) *got = 0;
  if (rc == 0 || done > 0) {
    /* Partial: the first pages (the faulting one among them) went in and
     * were woken; the rest of the run was not asked for by anyone. */
    uint64_t n = rc == 0 ? len : (uint64_t)done;
    mark_present(s, dst, n);
    if (zero)
      COUNT(s, zero_pages, n >> s->ps_shift);
    else {
      COUNT(s, pages_copied, n >> s->ps_shift);
      COUNT(s, bytes_copied, n);
    }
    if (got) *got = n;
    return 0;
  }
  int e = errno;
  switch (e) {
  case EEXIST: /* another vCPU or a prefetch got there first */
    mark_present(s, dst, s->ps);
    wake(s, dst, s->ps);
    return 0;
  case EAGAIN: /* a REMOVE is pending: read events, then retry */
    COUNT(s, eagain, 1);
    return 1;
  case ESRCH: /* Firecracker's mm is gone */
    return -1;
  case ENOENT: /* the range is no longer mapped */
    log_debug("session %llu: 0x%llx no longer mapped",
              (unsigned long long)s->id, (unsigned long long)dst);
    return 0;
  case EFAULT: /* our source bytes were unreadable (a truncated file) */
    if (!zero) {
      host_error(EFAULT, "the source's memory at this offset "
                         "cannot be read (file truncated?)");
      return 3;
    }
    /* fall through */
  default:
    log_error("session %llu: installing 0x%llx+%llu failed: %s",
              (unsigned long long)s->id, (unsigned long long)dst,
              (unsigned long long)len, strerror(e));
    return 0;
  }
}

int session_install_copy_mode(struct session *s, uint64_t dst, const void *src,
                              uint64_t len, uint64_t mode, uint64_t *got) {
  struct uffdio_copy c = {
      .dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len, .mode = mode};
  int rc = ioctl(s->uffd, UFFDIO_COPY, &c);
  return install_result(s, rc, c.copy, dst, len, 0, got);
}

int session_install_copy(struct session *s, uint64_t dst, const void *src,
                         uint64_t len) {
  return session_install_copy_mode(s, dst, src, len, 0, NULL);
}

int session_install_zero_mode(struct session *s, uint64_t dst, uint64_t len,
                              uint64_t mode, uint64_t *got) {
  if (s->ps == HUGE_2M) { /* hugetlb has no ZEROPAGE */
    int r = 0;
    uint64_t all = 0, one = 0;
    /* Page by page, stopping at the first one someone else installed, as
     * one ZEROPAGE of the run would. */
    for (uint64_t o = 0; o < len && r == 0 && all == o; o += HUGE_2M) {
      struct uffdio_copy c = {.dst = dst + o,
                              .src = (uint64_t)(uintptr_t)zero_buffer(),
                              .len = HUGE_2M,
                              .mode = mode ? UFFDIO_COPY_MODE_DONTWAKE : 0};
      int rc = ioctl(s->uffd, UFFDIO_COPY, &c);
      r = install_result(s, rc, c.copy, dst + o, HUGE_2M, 1, &one);
      all += one;
    }
    if (got) *got = all;
    return r;
  }
  struct uffdio_zeropage z = {.range = {.start = dst, .len = len},
                              .mode = mode};
  int rc = ioctl(s->uffd, UFFDIO_ZEROPAGE, &z);
  return install_result(s, rc, z.zeropage, dst, len, 1, got);
}

int session_install_zero(struct session *s, uint64_t dst, uint64_t len) {
  return session_install_zero_mode(s, dst, len, 0, NULL);
}

/* Kills the VM; -1 if its process cannot be identified (then nothing
 * is signalled: kill(0) would hit our own process group). */
static int kill_vm(struct session *s) {
  if (!peer_can_signal(s->info.pid, s->pidfd)) return -1;
  /* Several failed reads of one VM may race here: kill it once. */
  if (__atomic_exchange_n(&s->killed, 1, __ATOMIC_ACQ_REL)) return 0;
  COUNT(s, vms_killed, 1);
  if (peer_signal(s->pidfd, s->info.pid, SIGKILL) < 0 && errno != ESRCH)
    log_error("session %llu: could not kill pid %d: %s",
              (unsigned long long)s->id, s->info.pid, strerror(errno));
  return 0;
}

static const char *const policy_names[] = {
    "killing the VM", "poisoning the page", "leaving the vCPU blocked"};

/* on_source_error for the page at addr. */
static void apply_policy(struct session *s, uint64_t addr) {
  int policy = s->wl->conf->on_source_error;
  if (policy == ON_ERROR_HANG || (policy == ON_ERROR_KILL && !kill_vm(s)))
    return;
  /* sigbus, or kill of a VM whose process cannot be identified */
  struct uffdio_poison p = {.range = {.start = addr, .len = s->ps}};
  if (ioctl(s->uffd, UFFDIO_POISON, &p) == 0) return;
  int e = errno;
  if (policy == ON_ERROR_SIGBUS && !kill_vm(s)) {
    log_error("session %llu: UFFDIO_POISON failed (%s); killed the VM",
              (unsigned long long)s->id, strerror(e));
    return;
  }
  log_error("session %llu: UFFDIO_POISON failed (%s) and the VM's process "
            "cannot be identified to kill it; its vCPU stays blocked",
            (unsigned long long)s->id, strerror(e));
}

void session_source_failed(struct session *s, uint64_t addr, uint64_t off) {
  COUNT(s, source_errors, 1);
  log_error("session %llu (pid %d): source %s could not deliver offset %llu "
            "for 0x%llx: %s; %s (on_source_error)",
            (unsigned long long)s->id, s->info.pid, stack_name(s->wl->stack),
            (unsigned long long)off, (unsigned long long)addr,
            host_last_error(), policy_names[s->wl->conf->on_source_error]);
  apply_policy(s, addr);
}

void session_pin_source(struct session *s) {
  char id[sizeof s->shm->source_identity];
  stack_identity(s->wl->stack, id, sizeof id);
  if (!s->shm->source_identity[0]) {
    memcpy(s->shm->source_identity, id, sizeof id);
    return;
  }
  if (!strncmp(id, s->shm->source_identity, sizeof id)) return;
  s->source_changed = 1;
  log_error("session %llu (pid %d) on %s: the source is not the data the "
            "session started on (was %.*s, now %s); %s (on_source_error)",
            (unsigned long long)s->id, s->info.pid, s->wl->conf->name,
            (int)sizeof id, s->shm->source_identity, id,
            s->wl->conf->on_source_error == ON_ERROR_SIGBUS
                ? "poisoning every page it faults"
                : policy_names[s->wl->conf->on_source_error]);
  if (s->wl->conf->on_source_error == ON_ERROR_KILL) kill_vm(s);
}

/* How many pages from idx (within region ri, up to max) are neither
 * installed nor removed: the run fault-around may install at once. */
static uint64_t free_run(struct session *s, int ri, uint64_t page,
                         uint64_t max) {
  const struct ufk_region *r = &s->regions[ri];
  uint64_t left = (r->base + r->size - page) >> s->ps_shift;
  uint64_t idx = page_index(s, ri, page), n = 1;
  if (max > left) max = left;
  while (n < max && !bit_test(s->present, idx + n) &&
         !bit_test(s->removed, idx + n) && !bit_test(s->inflight, idx + n))
    n++;
  return n;
}

/* Serves a page from a source that answers without blocking. */
static int serve_inline(struct session *s, int ri, uint64_t page,
                        uint64_t off) {
  uint64_t pages = 1 + (uint64_t)s->wl->conf->fault_around;
  if (prefetch_recording(s->pf))
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
        return 2; /* hand it to the pool */
      session_source_failed(s, page, off);
      return 0;
    }
    src = s->buf;
  }
  int r = session_install_copy(s, page, src, len);
  if (mapped) stack_release(s->wl->stack, mapped, off, len);
  if (r == 3) {
    session_source_failed(s, page, off);
    return 0;
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

/* Resolves one fault.  Returns like session_install_*. */
static int serve(struct session *s, uint64_t addr) {
  int ri = find_region(s, addr);
  if (ri < 0) {
    log_limited(&s->lim_other, LOG_WARN,
                "session %llu: fault at 0x%llx outside every region",
                (unsigned long long)s->id, (unsigned long long)addr);
    return 0;
  }
  uint64_t page = addr & ~((uint64_t)s->ps - 1);
  uint64_t idx = page_index(s, ri, page);
  uint64_t off = s->regions[ri].offset + (page - s->regions[ri].base);
  if (bit_test(s->removed, idx)) return session_install_zero(s, page, s->ps);
  if (bit_test(s->inflight, idx))
    return 0; /* the pool's copy will wake every waiter */
  if (bit_test(s->present, idx) && !recently_woken(s, page)) {
    /* Usually a message queued before our copy landed: wake the vCPU.  If
     * the page faults again while still remembered, it really is missing
     * (whatever else faults in between): install it again. */
    COUNT(s, stale_faults, 1);
    wake(s, page, s->ps);
    return 0;
  }
  if (s->source_changed) { /* logged once when the worker took it over */
    COUNT(s, source_errors, 1);
    apply_policy(s, page);
    return 0;
  }
  prefetch_touch(s->pf, off);
  if (stack_is_zero(s->wl->stack, off, s->ps))
    return session_install_zero(s, page, s->ps);
  uint32_t fl = stack_flags(s->wl->stack);
  int r = 2;
  if (fl & (UFK_PLUGIN_FAST | UFK_PLUGIN_NOWAIT) || !s->wl->pool)
    r = serve_inline(s, ri, page, off);
  if (r == 2) {
    bits_set(s->inflight, idx, 1);
    pool_submit(s->wl->pool, s, page, off, idx, s->ps);
    return 0;
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
    bits_set(s->removed, idx, last - first);
    bits_clear(s->present, idx, last - first);
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
    log_limited(&s->lim_fork, LOG_WARN,
                "session %llu: the VMM forked with fork events on; the "
                "child's userfaultfd is closed, its memory not served",
                (unsigned long long)s->id);
  }
}

/* UNMAP and REMAP: the VMM gave up or moved part of guest memory.  What
 * was there is never served again as snapshot bytes (a fault there later
 * reads zeros); a moved range is not followed, since only the regions of
 * the handshake are served. */
static void moved_or_unmapped(struct session *s, const struct uffd_msg *m) {
  if (m->event == UFFD_EVENT_UNMAP) {
    log_limited(&s->lim_unmap, LOG_INFO,
                "session %llu: the VMM unmapped [0x%llx, 0x%llx) of guest "
                "memory",
                (unsigned long long)s->id,
                (unsigned long long)m->arg.remove.start,
                (unsigned long long)m->arg.remove.end);
    return;
  }
  log_limited(&s->lim_unmap, LOG_WARN,
              "session %llu: the VMM moved guest memory [0x%llx, +%llu) to "
              "0x%llx (mremap); faults at the new address are outside every "
              "region and not served",
              (unsigned long long)s->id, (unsigned long long)m->arg.remap.from,
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
    log_error("session %llu: reading the userfaultfd failed: %s",
              (unsigned long long)s->id, strerror(errno));
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
  int ri = find_region(s, page);
  if (ri < 0) return 0;
  uint64_t idx = page_index(s, ri, page);
  uint64_t off = s->regions[ri].offset + (page - s->regions[ri].base);
  if (bit_test(s->removed, idx) || bit_test(s->present, idx) ||
      bit_test(s->inflight, idx) || stack_is_zero(s->wl->stack, off, s->ps) ||
      prefetch_recording(s->pf))
    return 0;
  bits_set(s->inflight, idx, 1);
  pool_submit(s->wl->pool, s, page, off, idx, s->ps);
  return 1;
}

/* After a fault at page, the next page of a sequential run goes ahead. */
static void fault_ahead(struct session *s, uint64_t page) {
  if (s->ps != HUGE_2M) return;
  if (s->last_fault + s->ps == page && find_region(s, page + s->ps) >= 0)
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
      log_limited(&s->lim_other, LOG_WARN,
                  "session %llu: ignoring unexpected uffd event %u",
                  (unsigned long long)s->id, m->event);
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
    int r = serve(s, p);
    pthread_rwlock_unlock(&s->rmlock);
    if (r < 0) return -1;
    if (r == 1)
      defer(s, p);
    else if (i >= ndef) {
      record_latency(s, now_ns() - t0);
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
    wake(s, s->regions[i].base, s->regions[i].size);
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

/* While faults keep coming, look for the next one for a short while
 * instead of sleeping in poll(): a wake-up costs more than the fault.  The
 * window restarts with every fault, so a restore stays hot and an idle VM
 * costs nothing; when to look at all is busypoll's.  Returns -1 when the
 * VM is gone. */
static int spin(struct session *s) {
  uint64_t window = busypoll_begin(&s->poll, spin_window(s));
  if (!window) return 0;
  uint64_t last = now_ns();
  for (;;) {
    sched_yield(); /* let a vCPU sharing this CPU run into its next fault */
    uint64_t t0 = now_ns();
    if (t0 - last > window) {
      busypoll_missed(&s->poll);
      return 0;
    }
    if (!busypoll_go_on(&s->poll, t0)) return 0;
    /* A 2 MiB copy in the pool needs this CPU more than we need to look. */
    if (s->ps == HUGE_2M && __atomic_load_n(&s->pool_jobs, __ATOMIC_RELAXED))
      return 0;
    /* Look without the REMOVE lock: read_events holds it exclusively, and
     * taking it on every turn would stall the prefetcher's copies. */
    struct pollfd p = {.fd = s->uffd, .events = POLLIN};
    int n = poll(&p, 1, 0) > 0 ? read_events(s) : 0;
    if (n < 0 || ((n > 0 || s->ndefer) && serve_batch(s, n, t0) < 0) ||
        session_failed(s))
      return -1;
    if (n > 0) {
      last = t0;
      busypoll_caught(&s->poll);
    }
  }
}

void *session_main(void *arg) {
  struct session *s = arg;
  recover(s);
  s->pf = s->source_changed ? NULL : prefetch_start(s);
  struct pollfd pf[4] = {
      {.fd = s->uffd, .events = POLLIN},
      {.fd = s->pidfd, .events = POLLIN},
      {.fd = s->conn_open ? s->conn : -1, .events = POLLIN | POLLRDHUP},
      {.fd = s->stopfd, .events = POLLIN},
  };
  s->end_reason = END_EXITED;
  s->poll.adaptive = s->wl->conf->spin_ns == DURATION_AUTO;
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
    uint64_t t0 = now_ns();
    int n = read_events(s);
    if (n < 0 || serve_batch(s, n, t0) < 0 || session_failed(s)) break;
    if (n > 0 && spin(s) < 0) break;
  }
  if (s->end_reason != END_SHUTDOWN && session_failed(s))
    s->end_reason = END_FAILED;
  __atomic_store_n(&s->ending, 1, __ATOMIC_RELEASE);
  busypoll_log(&s->poll, s->id, s->wl->conf->name);
  prefetch_stop(s->pf);
  s->pf = NULL;
  return s;
}
