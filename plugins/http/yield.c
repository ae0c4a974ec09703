/* Demand reads ahead of prefetches on the wire, not only at the connection
 * pool.  A fault's answer queues behind every byte already sent to us at
 * the path's bottleneck; prefetches that keep reading keep that queue
 * standing.  So while a demand read is waiting or in flight, and for
 * prefetch_pause after the last one ended, prefetch transfers stop reading
 * their sockets (their receive windows fill and close, and the bottleneck
 * drains) and new prefetch requests are not sent.  prefetch_window bounds
 * the receive window of the connections prefetches use, so a paused
 * transfer leaves little in flight. */
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
void yield_wait_until(struct http *h, uint64_t t) {
  struct timespec ts = {(time_t)(t / 1000000000u), (long)(t % 1000000000u)};
  int r = pthread_cond_timedwait(&h->cond, &h->lock, &ts);
  (void)r; /* a timeout or a wake-up: the caller looks again */
}

/* Under h->lock; atomic stores for yield_prefetch_body's unlocked look. */
void yield_demand_started(struct http *h) {
  __atomic_fetch_add(&h->demand_busy, 1, __ATOMIC_RELAXED);
}

void yield_demand_ended(struct http *h) {
  __atomic_fetch_sub(&h->demand_busy, 1, __ATOMIC_RELAXED);
  __atomic_store_n(&h->demand_end_ns, yield_now_ns(), __ATOMIC_RELAXED);
}

/* A prefetch transfer about to take more bytes: waits while demand reads
 * hold prefetches, but no longer than *budget_ns in all (what is left of
 * it is kept): a guest that faults without a break slows replay down but
 * does not stop it. */
void yield_prefetch_body(struct http *h, uint64_t *budget_ns) {
  if (!h->pause_ns || !*budget_ns) return;
  /* Unlocked look first: nearly every call finds nothing to wait for. */
  if (!__atomic_load_n(&h->demand_busy, __ATOMIC_RELAXED) &&
      !__atomic_load_n(&h->demand_waiting, __ATOMIC_RELAXED) &&
      yield_now_ns() >=
          __atomic_load_n(&h->demand_end_ns, __ATOMIC_RELAXED) + h->pause_ns)
    return;
  uint64_t t0 = yield_now_ns(), t = t0, until;
  int paused = 0;
  pthread_mutex_lock(&h->lock);
  while ((until = yield_held_until(h, t)) && t - t0 < *budget_ns) {
    paused = 1;
    yield_wait_until(h, until < t0 + *budget_ns ? until : t0 + *budget_ns);
    t = yield_now_ns();
  }
  pthread_mutex_unlock(&h->lock);
  *budget_ns = t - t0 < *budget_ns ? *budget_ns - (t - t0) : 0;
  if (paused) __atomic_fetch_add(h->c_pauses, 1, __ATOMIC_RELAXED);
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
