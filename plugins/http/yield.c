/* Demand reads ahead of prefetches on the wire, not only at the connection
 * pool.  A fault's answer queues behind every byte already sent to us at
 * the path's bottleneck; prefetches that keep reading keep that queue
 * standing.  So while a demand read is waiting or in flight, and for
 * prefetch_pause after the last one ended, prefetch transfers stop reading
 * their sockets (their receive windows fill and close, and the bottleneck
 * drains) and new prefetch requests are not sent.  prefetch_window bounds
 * the receive window of the connections prefetches use, so a paused
 * transfer leaves little in flight.  Releases (yield_wait) keep replay
 * moving under a guest that faults without a break. */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "internal.h"

/* The host's clock: CLOCK_MONOTONIC, the clock of h->cond's waits. */
uint64_t yield_now_ns(void) {
  return host->now_ns();
}

/* 0 if prefetches may go on at t, else until when they are held (a demand
 * read under way holds them at least a pause from now).  Under h->lock. */
uint64_t yield_held_until(const struct http *h, uint64_t t) {
  if (!h->pause_ns) return 0;
  if (h->demand_busy || h->demand_waiting) return t + h->pause_ns;
  uint64_t end = h->demand_end_ns + h->pause_ns;
  return h->demand_end_ns && t < end ? end : 0;
}

/* Waits on h->cond (a CLOCK_MONOTONIC one) until t at most.  Under
 * h->lock. */
static void wait_until(struct http *h, uint64_t t) {
  struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
  int r = pthread_cond_timedwait(&h->cond, &h->lock, &ts);
  (void)r; /* a timeout or a wake-up: the caller looks again */
}

/* Whether a demand read from `start` to `end` (or still running) ran
 * while the last release was going out: it began before the release's
 * first half hold_max was over, and ended after the release. */
static int overlaps(const struct http *h, uint64_t start, uint64_t end) {
  uint64_t r = h->release_ns;
  return r && start < r + h->hold_max_ns / 2 && end > r;
}

/* Whether such a read took longer than demand reads usually do (their
 * mean and four mean deviations, as TCP bounds a round trip: an origin
 * whose answers vary by milliseconds does not make every release look
 * harmful) by more than a hundredth of hold_max. */
static int delayed(const struct http *h, uint64_t start, uint64_t end) {
  return overlaps(h, start, end) &&
         end - start > h->fault_ns + 4 * h->fault_dev_ns + h->hold_max_ns / 100;
}

/* What a release may let onto the wire, learned from the demand reads it
 * met (doubling, halving): its bytes queue ahead of them at the path's
 * bottleneck, and while releases come one per hold_max, a release that
 * keeps the wire busy for no more than a hundredth of that delays about
 * one fault in a hundred (the p99 stays the link's).  So a release that
 * delayed more than one in fifty of the demand reads it met (delayed(),
 * counting those still running) halves the next one; one that delayed
 * fewer doubles it.  On a fast link releases
 * grow until replay keeps ahead of the guest; on a slow one they stay at a
 * few KiB.  Under h->lock. */
static uint64_t next_release(struct http *h, uint64_t t) {
  for (unsigned i = 0; i < h->connections; i++) {
    const struct conn *c = &h->conns[i];
    if (!c->demand || !overlaps(h, c->started_ns, t)) continue;
    h->release_met++;
    h->release_hurt += (unsigned)delayed(h, c->started_ns, t);
  }
  /* More than one in fifty: an origin's own slow answers, which reads
   * beside a release get their share of, do not count against it. */
  if (h->release_ns) {
    if (h->release_hurt * 50 > h->release_met)
      h->release_size /= 2;
    else
      h->release_size *= 2;
  }
  if (h->release_size < RELEASE_MIN) h->release_size = RELEASE_MIN;
  if (h->release_size > RELEASE_MAX) h->release_size = RELEASE_MAX;
  h->release_hurt = h->release_met = 0;
  return h->release_size;
}

/* A prefetch waits while demand reads hold prefetches; 0 once they no
 * longer do.  A guest that faults without a break would stop replay for
 * good, so one held prefetch per hold_max goes on (a release), having
 * waited that long itself: it may take next_release() bytes (returned)
 * and then yields again. */
uint64_t yield_wait(struct http *h) {
  uint64_t t0 = yield_now_ns(), t = t0, until;
  while ((until = yield_held_until(h, t))) {
    uint64_t at = (t0 > h->release_ns ? t0 : h->release_ns) + h->hold_max_ns;
    if (t >= at) {
      uint64_t n = next_release(h, t);
      h->release_ns = t;
      __atomic_fetch_add(h->c_releases, 1, __ATOMIC_RELAXED);
      return n;
    }
    wait_until(h, until < at ? until : at);
    t = yield_now_ns();
  }
  return 0;
}

/* Under h->lock; atomic stores for yield_prefetch_body's unlocked look. */
void yield_demand_started(struct http *h, struct conn *c) {
  c->started_ns = yield_now_ns();
  c->demand = 1;
  __atomic_fetch_add(&h->demand_busy, 1, __ATOMIC_RELAXED);
}

/* A demand read's usual time and its spread, from the reads no release
 * went out beside (those are what a release is judged against). */
static void learn(struct http *h, uint64_t d) {
  if (!h->fault_ns) {
    h->fault_ns = d;
    h->fault_dev_ns = d / 2;
    return;
  }
  uint64_t err = d > h->fault_ns ? d - h->fault_ns : h->fault_ns - d;
  h->fault_ns = d > h->fault_ns ? h->fault_ns + (d - h->fault_ns) / 8
                                : h->fault_ns - (h->fault_ns - d) / 8;
  h->fault_dev_ns = err > h->fault_dev_ns
                        ? h->fault_dev_ns + (err - h->fault_dev_ns) / 4
                        : h->fault_dev_ns - (h->fault_dev_ns - err) / 4;
}

void yield_demand_ended(struct http *h, struct conn *c) {
  uint64_t t = yield_now_ns(), d = t - c->started_ns;
  c->demand = 0;
  if (overlaps(h, c->started_ns, t)) {
    h->release_met++;
    h->release_hurt += (unsigned)delayed(h, c->started_ns, t);
  } else {
    learn(h, d);
  }
  __atomic_fetch_sub(&h->demand_busy, 1, __ATOMIC_RELAXED);
  __atomic_store_n(&h->demand_end_ns, t, __ATOMIC_RELAXED);
}

static int held(const struct http *h, uint64_t t) {
  return __atomic_load_n(&h->demand_busy, __ATOMIC_RELAXED) ||
         __atomic_load_n(&h->demand_waiting, __ATOMIC_RELAXED) ||
         t < __atomic_load_n(&h->demand_end_ns, __ATOMIC_RELAXED) + h->pause_ns;
}

/* A prefetch transfer took n more bytes: before it takes more, it waits
 * while demand reads hold prefetches, unless it is in a release (see
 * yield_wait) or has run for half its timeout. */
void yield_prefetch_body(struct http *h, struct xfer *x, uint64_t n) {
  if (!h->pause_ns) return;
  uint64_t t = yield_now_ns();
  if (x->release) {
    x->release = n < x->release ? x->release - n : 0;
    if (x->release) return;
  }
  /* Unlocked look first: nearly every call finds nothing to wait for.  A
   * transfer with all its bytes would only waste a release. */
  if (!held(h, t) || t >= x->yield_end_ns || x->got >= x->want) return;
  pthread_mutex_lock(&h->lock);
  x->release = yield_wait(h);
  pthread_mutex_unlock(&h->lock);
  __atomic_fetch_add(h->c_pauses, 1, __ATOMIC_RELAXED);
}

/* CURLOPT_SOCKOPTFUNCTION of the connections prefetches may use. */
int yield_sockopt(void *opaque, curl_socket_t fd, curlsocktype purpose) {
  const struct http *h = opaque;
  int v = (int)h->prefetch_window;
  if (purpose != CURLSOCKTYPE_IPCXN || !h->prefetch_window)
    return CURL_SOCKOPT_OK;
  /* Past net.core.rmem_max only with CAP_NET_ADMIN; else the kernel caps
   * it there. */
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof v) < 0 &&
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof v) < 0)
    host->log(UFK_LOG_WARN, "%s: SO_RCVBUF %d: %s", h->shown_url, v,
              strerror(errno));
  return CURL_SOCKOPT_OK;
}
