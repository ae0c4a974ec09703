/* The busy-polling policy of the fault loops (busypoll.h). */
#include "busypoll.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

/* After k misses in a row, sleep through 2^k - 1 batches, at most this. */
#define SKIP_MAX 255
#define MISSES_MAX 8
/* How old the runnable-thread count may be: reading it costs a few
 * microseconds, far more than a turn of the loop. */
#define BUSY_TTL_NS 1000000ull

/* A nap shorter than this saves less than the timer wake-up ending it
 * costs. */
#define NAP_MIN_NS 20000ull
/* What a nap leaves to look before the fault is due, as gaps vary; how
 * late the timer wakes the thread is learnt (late_ns). */
#define NAP_LEAD_NS 10000ull

static int loadavg_fd = -1;
static long ncpus = 1;
static pthread_once_t busy_once = PTHREAD_ONCE_INIT;
static uint64_t busy_at_ns; /* when busy_now was read (atomic) */
static int busy_now;        /* atomic */

static void busy_init(void) {
  loadavg_fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
  ncpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpus < 1) ncpus = 1;
}

/* Threads runnable host-wide, the numerator of /proc/loadavg's fourth
 * field ("3/512"); -1 if unknown. */
static long runnable(void) {
  char buf[128];
  ssize_t n = pread(loadavg_fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return -1;
  buf[n] = 0;
  char *p = buf;
  for (int field = 0; field < 3; field++) {
    while (*p && *p != ' ')
      p++;
    while (*p == ' ')
      p++;
  }
  char *end;
  long r = strtol(p, &end, 10);
  return end == p || *end != '/' ? -1 : r;
}

/* Whether more threads are runnable than there are CPUs: then a poller
 * takes the CPU from a thread that has work, likely a vCPU.  Read at most
 * once per BUSY_TTL_NS, shared by every session. */
static int cpus_busy(uint64_t now_ns) {
  pthread_once(&busy_once, busy_init);
  if (loadavg_fd < 0) return 0;
  uint64_t at = __atomic_load_n(&busy_at_ns, __ATOMIC_RELAXED);
  if (now_ns - at < BUSY_TTL_NS ||
      !__atomic_compare_exchange_n(&busy_at_ns, &at, now_ns, 0,
                                   __ATOMIC_RELAXED, __ATOMIC_RELAXED))
    return __atomic_load_n(&busy_now, __ATOMIC_RELAXED);
  int busy = runnable() > ncpus; /* the count includes this thread */
  __atomic_store_n(&busy_now, busy, __ATOMIC_RELAXED);
  return busy;
}

uint64_t busypoll_begin(struct busypoll *b, uint64_t window) {
  if (!window || !b->adaptive || !b->skip) return window;
  b->skip--;
  b->slept_backoff++;
  return 0;
}

int busypoll_go_on(struct busypoll *b, uint64_t now_ns) {
  if (!b->adaptive || !cpus_busy(now_ns)) return 1;
  b->slept_busy++;
  return 0;
}

void busypoll_yield(struct busypoll *b) {
  b->yields++;
  sched_yield();
}

/* A gap worth a nap but for the timer's lateness wears that lateness down
 * an eighth: else one nap that ran long (the thread preempted) would end
 * napping for the session, as only naps tell how late the timer is. */
uint64_t busypoll_nap(struct busypoll *b) {
  if (!b->adaptive || b->nap_ns < NAP_MIN_NS) return 0;
  if (b->nap_ns < b->late_ns + NAP_MIN_NS) {
    b->late_ns -= b->late_ns / 8;
    return 0;
  }
  b->naps++;
  return b->nap_ns - b->late_ns;
}

void busypoll_slept(struct busypoll *b, uint64_t asked_ns, uint64_t slept_ns) {
  uint64_t late = slept_ns > asked_ns ? slept_ns - asked_ns : 0;
  b->late_ns = b->late_ns ? (3 * b->late_ns + late) / 4 : late;
}

/* Grows the nap slowly towards the gap less the lead, and halves it when a
 * fault came during one: that fault paid the wake-up polling is for. */
void busypoll_gap(struct busypoll *b, uint64_t gap_ns, int woken) {
  if (!b->adaptive) return;
  uint64_t goal = gap_ns > NAP_LEAD_NS ? gap_ns - NAP_LEAD_NS : 0;
  if (woken) b->nap_woken++;
  if (goal < NAP_MIN_NS)
    b->nap_ns = 0;
  else if (woken)
    b->nap_ns = goal < b->nap_ns / 2 ? goal : b->nap_ns / 2;
  else if (goal > b->nap_ns)
    b->nap_ns += (goal - b->nap_ns) / 4;
  else
    b->nap_ns = goal;
}

void busypoll_caught(struct busypoll *b) {
  b->caught++;
  b->misses = 0;
}

void busypoll_missed(struct busypoll *b) {
  b->missed++;
  if (!b->adaptive) return;
  if (b->misses < MISSES_MAX) b->misses++;
  uint32_t skip = (1u << b->misses) - 1;
  b->skip = skip > SKIP_MAX ? SKIP_MAX : skip;
}

void busypoll_log(const struct busypoll *b, uint64_t session_id,
                  const char *listener) {
  log_debug("session %llu on %s: polling for faults: %llu caught, %llu "
            "windows without one, slept %llu times as the CPUs were busy "
            "and %llu times after misses, yielded %llu times, napped %llu "
            "times (%llu ended by a fault)",
            (unsigned long long)session_id, listener,
            (unsigned long long)b->caught, (unsigned long long)b->missed,
            (unsigned long long)b->slept_busy,
            (unsigned long long)b->slept_backoff, (unsigned long long)b->yields,
            (unsigned long long)b->naps, (unsigned long long)b->nap_woken);
}
