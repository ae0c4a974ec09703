#include "install.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "hosterror.h"
#include "peer.h"

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

static void mark_present(struct session *s, uint64_t dst, uint64_t len) {
  int ri = session_region(s, dst);
  if (ri >= 0)
    bitmap_set(s->present, session_page_index(s, ri, dst), len >> s->ps_shift);
}

void install_wake(struct session *s, uint64_t addr, uint64_t len) {
  if (!len) return;
  struct uffdio_range r = {.start = addr, .len = len};
  ioctl(s->uffd, UFFDIO_WAKE, &r);
}

/* Common handling of COPY/ZEROPAGE results; done = bytes the kernel
 * reports installed (negative errno on failure); *got (if not NULL) is the
 * bytes this call installed. */
static enum install_result result(struct session *s, int rc, int64_t done,
                                  uint64_t dst, uint64_t len, int zero,
                                  uint64_t *got) {
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
    return INSTALL_DONE;
  }
  int e = errno;
  switch (e) {
  case EEXIST: /* another vCPU or the warmer got there first */
    mark_present(s, dst, s->ps);
    install_wake(s, dst, s->ps);
    return INSTALL_DONE;
  case EAGAIN: /* a REMOVE is pending: read events, then retry */
    COUNT(s, eagain, 1);
    return INSTALL_RETRY;
  case ESRCH: /* Firecracker's mm is gone */
    return INSTALL_GONE;
  case ENOENT: /* the range is no longer mapped */
    session_log(LOG_DEBUG, s, "0x%llx no longer mapped",
                (unsigned long long)dst);
    return INSTALL_DONE;
  case EFAULT: /* our source bytes were unreadable (a truncated file) */
    if (!zero) {
      host_error(EFAULT, "the source's memory at this offset "
                         "cannot be read (file truncated?)");
      return INSTALL_UNREADABLE;
    }
    /* fall through */
  default:
    session_log(LOG_ERROR, s, "installing 0x%llx+%llu failed: %s",
                (unsigned long long)dst, (unsigned long long)len, strerror(e));
    return INSTALL_DONE;
  }
}

enum install_result install_copy_mode(struct session *s, uint64_t dst,
                                      const void *src, uint64_t len,
                                      uint64_t mode, uint64_t *got) {
  struct uffdio_copy c = {
      .dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len, .mode = mode};
  int rc = ioctl(s->uffd, UFFDIO_COPY, &c);
  return result(s, rc, c.copy, dst, len, 0, got);
}

enum install_result install_copy(struct session *s, uint64_t dst,
                                 const void *src, uint64_t len) {
  return install_copy_mode(s, dst, src, len, 0, NULL);
}

enum install_result install_zero_mode(struct session *s, uint64_t dst,
                                      uint64_t len, uint64_t mode,
                                      uint64_t *got) {
  if (s->ps == HUGE_2M) { /* hugetlb has no ZEROPAGE */
    enum install_result r = INSTALL_DONE;
    uint64_t all = 0, one = 0;
    /* Page by page, stopping at the first one someone else installed, as
     * one ZEROPAGE of the run would. */
    for (uint64_t o = 0; o < len && r == INSTALL_DONE && all == o;
         o += HUGE_2M) {
      struct uffdio_copy c = {.dst = dst + o,
                              .src = (uint64_t)(uintptr_t)zero_buffer(),
                              .len = HUGE_2M,
                              .mode = mode ? UFFDIO_COPY_MODE_DONTWAKE : 0};
      int rc = ioctl(s->uffd, UFFDIO_COPY, &c);
      r = result(s, rc, c.copy, dst + o, HUGE_2M, 1, &one);
      all += one;
    }
    if (got) *got = all;
    return r;
  }
  struct uffdio_zeropage z = {.range = {.start = dst, .len = len},
                              .mode = mode};
  int rc = ioctl(s->uffd, UFFDIO_ZEROPAGE, &z);
  return result(s, rc, z.zeropage, dst, len, 1, got);
}

enum install_result install_zero(struct session *s, uint64_t dst,
                                 uint64_t len) {
  return install_zero_mode(s, dst, len, 0, NULL);
}

/* Kills the VM; -1 if its process cannot be identified (then nothing
 * is signalled: kill(0) would hit our own process group). */
static int kill_vm(struct session *s) {
  if (!peer_can_signal(s->info.pid, s->pidfd)) return -1;
  /* Several failed reads of one VM may race here: kill it once. */
  if (__atomic_exchange_n(&s->killed, 1, __ATOMIC_ACQ_REL)) return 0;
  COUNT(s, vms_killed, 1);
  if (peer_signal(s->pidfd, s->info.pid, SIGKILL) < 0 && errno != ESRCH)
    session_log(LOG_ERROR, s, "could not kill pid %d: %s", s->info.pid,
                strerror(errno));
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
  /* The VM's memory is gone (it exited, e.g. on an earlier SIGBUS): no
   * vCPU waits on this page, and there is nothing to kill. */
  if (e == ESRCH) return;
  if (policy == ON_ERROR_SIGBUS && !kill_vm(s)) {
    session_log(LOG_ERROR, s, "UFFDIO_POISON failed (%s); killed the VM",
                strerror(e));
    return;
  }
  session_log(LOG_ERROR, s,
              "UFFDIO_POISON failed (%s) and the VM's process cannot be "
              "identified to kill it; its vCPU stays blocked",
              strerror(e));
}

static install_error_fn told;

void install_on_error(install_error_fn fn) {
  told = fn;
}

static void tell(struct session *s, const char *why) {
  if (told && !__atomic_exchange_n(&s->error_told, 1, __ATOMIC_ACQ_REL))
    told(s, why);
}

void install_failed(struct session *s, uint64_t addr, uint64_t off) {
  COUNT(s, source_errors, 1);
  log_error("session %llu (pid %d): source %s could not deliver offset %llu "
            "for 0x%llx: %s; %s (on_source_error)",
            (unsigned long long)s->id, s->info.pid, stack_name(s->wl->stack),
            (unsigned long long)off, (unsigned long long)addr,
            host_last_error(), policy_names[s->wl->conf->on_source_error]);
  char why[1024];
  snprintf(why, sizeof why, "source %s could not deliver offset %llu: %s",
           stack_name(s->wl->stack), (unsigned long long)off,
           host_last_error());
  tell(s, why);
  apply_policy(s, addr);
}

void install_refuse(struct session *s, uint64_t addr) {
  COUNT(s, source_errors, 1);
  tell(s, "the source is not the data the session started on");
  apply_policy(s, addr);
}

void install_pin_source(struct session *s) {
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
