/* retry: tries a failed read again, for errors that may go away (timeouts,
 * refused or reset connections, 5xx, short bodies), with exponential backoff
 * and jitter.  Errors that another try cannot fix (4xx, bad ranges, wrong
 * settings) are returned at once.
 *
 * The layer below reports its errno through host->error and leaves it in
 * errno as it returns; that errno is what is classified here. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uffdkit/plugin.h>

#include "layer.h"

#define MAX_TRIES 100

static const struct ufk_host *host;

struct retry {
  struct ufk_next *below;
  int64_t tries;
  uint64_t delay_ns, max_delay_ns;
  uint64_t *c_retries, *c_gave_up;
};

#define fail(...) ufk_fail(host, __VA_ARGS__)

static int transient(int e) {
  switch (e) {
  case EIO:
  case ETIMEDOUT:
  case ECONNREFUSED:
  case ECONNRESET:
  case ECONNABORTED:
  case EAGAIN:
  case EPIPE:
  case EHOSTUNREACH:
  case ENETUNREACH:
  case ENETDOWN:
  case ENETRESET:
  case EHOSTDOWN:
  case EBUSY:
  case EINTR:
  case EPROTO:
    return 1;
  default:
    return 0; /* EACCES, ENOENT, EINVAL, ERANGE, ESTALE, ENOMEM, ... */
  }
}

static void *retry_create(const struct ufk_config *cfg,
                          struct ufk_next *below) {
  if (!below) {
    fail(EINVAL, "retry is a layer: it needs a source below it");
    return NULL;
  }
  struct retry *r = calloc(1, sizeof *r);
  if (!r) {
    fail(ENOMEM, "retry: out of memory");
    return NULL;
  }
  r->below = below;
  int bad = host->get_int(cfg, "tries", &r->tries) ||
            host->get_duration_ns(cfg, "delay", &r->delay_ns) ||
            host->get_duration_ns(cfg, "max_delay", &r->max_delay_ns);
  if (bad || r->tries < 1 || r->tries > MAX_TRIES)
    fail(EINVAL, "tries (%s): must be an integer in 1..%d",
         host->where(cfg, "tries"), MAX_TRIES);
  else if (r->max_delay_ns < r->delay_ns ||
           r->max_delay_ns > 3600ull * 1000000000ull)
    fail(EINVAL, "max_delay (%s): must be between delay and 1h",
         host->where(cfg, "max_delay"));
  else {
    r->c_retries = host->counter(cfg, "retries", "reads tried again");
    r->c_gave_up = host->counter(cfg, "gave_up", "reads failed after retries");
    return r;
  }
  free(r);
  return NULL;
}

static void retry_destroy(void *inst) {
  free(inst);
}

/* Equal jitter: half the delay fixed, half random, so clients that failed
 * together do not come back together. */
static uint64_t jittered(uint64_t d) {
  static __thread uint64_t x;
  if (!x) x = host->now_ns() | 1;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return d / 2 + (d / 2 ? x % (d / 2 + 1) : 0);
}

static void sleep_ns(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

static int retry_read(void *inst, void *buf, uint64_t len, uint64_t off,
                      uint32_t flags) {
  struct retry *r = inst;
  uint64_t delay = r->delay_ns;
  for (int64_t try = 1;; try++) {
    errno = 0;
    if (r->below->read(r->below->handle, buf, len, off, flags) == 0) return 0;
    int e = errno ? errno : EIO;
    /* A NOWAIT miss is an answer, not a failure. */
    if ((flags & UFK_READ_NOWAIT) || !transient(e)) return errno = e, -1;
    if (try >= r->tries) {
      __atomic_fetch_add(r->c_gave_up, 1, __ATOMIC_RELAXED);
      host->log(UFK_LOG_WARN,
                "retry: bytes %" PRIu64 "-%" PRIu64
                " still failing after %" PRId64 " tries (%s)",
                off, off + len - 1, try, strerror(e));
      /* The error recorded below names the URL and status: keep it. */
      return errno = e, -1;
    }
    uint64_t d = jittered(delay);
    host->log(UFK_LOG_WARN,
              "retry: bytes %" PRIu64 "-%" PRIu64 " failed (%s), try %" PRId64
              " of %" PRId64 " in %" PRIu64 " ms",
              off, off + len - 1, strerror(e), try + 1, r->tries, d / 1000000);
    __atomic_fetch_add(r->c_retries, 1, __ATOMIC_RELAXED);
    sleep_ns(d);
    delay = delay * 2 < r->max_delay_ns ? delay * 2 : r->max_delay_ns;
  }
}

static int64_t retry_get_size(void *inst) {
  struct ufk_next *b = ((struct retry *)inst)->below;
  return b->get_size(b->handle);
}

static int retry_load(const struct ufk_host *h) {
  host = h;
  return 0;
}

static const struct ufk_param params[] = {
    {"tries", UFK_T_INT, 0, "5", "attempts per read, the first included"},
    {"delay", UFK_T_DURATION, 0, "100ms", "wait before the first retry"},
    {"max_delay", UFK_T_DURATION, 0, "5s", "longest wait, as delays double"},
    {0},
};

static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,
    .flags = UFK_PLUGIN_LAYER,
    .thread_model = UFK_THREAD_PARALLEL,
    .name = "retry",
    .version = "1.0",
    .description = "retries transient read errors with backoff",
    .params = params,
    .load = retry_load,
    .create = retry_create,
    .destroy = retry_destroy,
    .get_size = retry_get_size,
    .read = retry_read,
};

UFFDKIT_PLUGIN(plugin)
