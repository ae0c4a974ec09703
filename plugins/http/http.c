/* http: guest memory served from one object on an HTTP(S) server, one range
 * request per read.  The object must answer byte ranges (206 with an exact
 * Content-Range) of the version seen at start; anything else is refused at
 * start or failed per read, never padded or truncated.  Retries live in the
 * retry layer. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "internal.h"
#include "redirect.h"

#define PROBE_TRIES 3

const struct ufk_host *host;
/* The last message this thread reported, so start() can add advice to it. */
static __thread char last_msg[1024];

int fail(int errnum, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(last_msg, sizeof last_msg, fmt, ap);
  va_end(ap);
  host->error(errnum, "%s", last_msg);
  errno = errnum;
  return -1;
}

static void http_destroy(void *inst);

static void *http_create(const struct ufk_config *cfg, struct ufk_next *below) {
  (void)below;
  struct http *h = calloc(1, sizeof *h);
  if (!h) {
    fail(ENOMEM, "out of memory");
    return NULL;
  }
  h->size = -1;
  pthread_mutex_init(&h->lock, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* yield.c's waits */
  pthread_cond_init(&h->cond, &ca);
  pthread_condattr_destroy(&ca);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_init(&h->share_lock[i], NULL);
  if (http_read_settings(cfg, h) < 0) {
    http_destroy(h);
    return NULL;
  }
  h->c_bytes = host->counter(cfg, "bytes_fetched", "body bytes received");
  h->c_requests = host->counter(cfg, "requests", "range requests sent");
  h->c_errors = host->counter(cfg, "errors", "failed range requests");
  h->c_pauses = host->counter(cfg, "prefetch_pauses",
                              "prefetch transfers paused for demand reads");
  h->c_releases =
      host->counter(cfg, "prefetch_releases",
                    "held prefetches let on by a release (prefetch_pause)");
  return h;
}

/* ---- connections ---- */

static void share_lock(CURL *e, curl_lock_data d, curl_lock_access a,
                       void *opaque) {
  (void)e;
  (void)a;
  pthread_mutex_lock(&((struct http *)opaque)->share_lock[d]);
}

static void share_unlock(CURL *e, curl_lock_data d, void *opaque) {
  (void)e;
  pthread_mutex_unlock(&((struct http *)opaque)->share_lock[d]);
}

/* Handles share DNS answers and TLS sessions; each keeps its own
 * connection alive between requests. */
static int make_share(struct http *h) {
  h->share = curl_share_init();
  if (!h->share ||
      curl_share_setopt(h->share, CURLSHOPT_LOCKFUNC, share_lock) ||
      curl_share_setopt(h->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
      curl_share_setopt(h->share, CURLSHOPT_USERDATA, h) ||
      curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) ||
      curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION))
    return fail(ENOMEM, "%s: cannot set up a curl share", h->shown_url);
  return 0;
}

static CURLcode set_auth(const struct http *h, CURL *e) {
  CURLcode r = CURLE_OK;
  if (h->sigv4) {
    r = curl_easy_setopt(e, CURLOPT_AWS_SIGV4, h->sigv4);
    if (!r) r = curl_easy_setopt(e, CURLOPT_USERNAME, h->key_id);
    if (!r) r = curl_easy_setopt(e, CURLOPT_PASSWORD, h->secret);
  }
  if (!r && h->ca_file) r = curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
  if (!r && !h->verify_tls) {
    r = curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    if (!r) r = curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  return r;
}

#define SET(opt, val)                                                          \
  do {                                                                         \
    if (!r) r = curl_easy_setopt(e, opt, val);                                 \
  } while (0)

static CURLcode set_options(const struct http *h, struct conn *c) {
  CURL *e = c->h;
  CURLcode r = CURLE_OK;
  SET(CURLOPT_URL, h->url);
  SET(CURLOPT_PROTOCOLS_STR, "http,https");
  SET(CURLOPT_FOLLOWLOCATION, 0L); /* see next_hop() */
  SET(CURLOPT_NOSIGNAL, 1L);       /* many threads; no SIGALRM for timeouts */
  SET(CURLOPT_TCP_KEEPALIVE, 1L);
  SET(CURLOPT_TCP_KEEPIDLE, 30L);
  SET(CURLOPT_TCP_KEEPINTVL, 10L);
  SET(CURLOPT_TCP_NODELAY, 1L);
  SET(CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
  SET(CURLOPT_TIMEOUT_MS, h->timeout_ms);
  SET(CURLOPT_BUFFERSIZE, 256L * 1024);
  SET(CURLOPT_HTTPHEADER, h->headers);
  SET(CURLOPT_ERRORBUFFER, c->errbuf);
  SET(CURLOPT_WRITEFUNCTION, http_on_body);
  SET(CURLOPT_HEADERFUNCTION, http_on_header);
  SET(CURLOPT_SHARE, h->share);
  if (c != h->conns) { /* see conn_get() */
    SET(CURLOPT_SOCKOPTFUNCTION, yield_sockopt);
    SET(CURLOPT_SOCKOPTDATA, (void *)h);
    /* Every read from the socket opens the receive window by as much: a
     * release (yield.c) lets a chunk at least onto the wire. */
    if (h->pause_ns) SET(CURLOPT_BUFFERSIZE, (long)RELEASE_MIN);
  }
  if (!r) r = set_auth(h, e);
  return r;
}

static int make_pool(struct http *h) {
  h->conns = calloc(h->connections, sizeof *h->conns);
  h->free_stack = calloc(h->connections, sizeof *h->free_stack);
  if (!h->conns || !h->free_stack)
    return fail(ENOMEM, "%s: out of memory", h->shown_url);
  for (unsigned i = 0; i < h->connections; i++) {
    struct conn *c = &h->conns[i];
    c->h = curl_easy_init();
    CURLcode r = c->h ? set_options(h, c) : CURLE_OUT_OF_MEMORY;
    if (r)
      return fail(r == CURLE_OUT_OF_MEMORY ? ENOMEM : ENOTSUP,
                  "%s: libcurl refused an option: %s", h->shown_url,
                  curl_easy_strerror(r));
  }
  /* Slot 0 on top: the first read reuses the probe's connection. */
  for (unsigned i = h->connections; i-- > 0;)
    h->free_stack[h->nfree++] = i;
  return 0;
}

/* Prefetches leave one connection to demand reads and give way to any
 * demand read already waiting. */
static int can_take(const struct http *h, int prefetch) {
  if (!prefetch) return h->nfree > 0;
  unsigned reserve = h->connections > 1 ? 1 : 0;
  return h->nfree > reserve && h->demand_waiting == 0;
}

/* Pops free slot want if it is free (want < 0: any slot but 0, which
 * can_take() guarantees one of), else the top one. */
static unsigned pop_slot(struct http *h, int want) {
  unsigned k = h->nfree - 1;
  for (unsigned i = h->nfree; i-- > 0;)
    if (want < 0 ? h->free_stack[i] != 0 : h->free_stack[i] == (unsigned)want) {
      k = i;
      break;
    }
  unsigned slot = h->free_stack[k];
  h->free_stack[k] = h->free_stack[--h->nfree];
  return slot;
}

/* Slot 0 serves demand reads only (when there are others): its receive
 * window is the kernel's, the others' may be bounded by prefetch_window
 * (yield.c).  Demand reads take it when it is free.  A prefetch held for
 * demand reads may go on in a release: c->release is then the most bytes
 * its request may ask for. */
static struct conn *conn_get(struct http *h, int prefetch) {
  pthread_mutex_lock(&h->lock);
  __atomic_fetch_add(&h->demand_waiting, !prefetch, __ATOMIC_RELAXED);
  int held = 0;
  uint64_t release = 0;
  for (;;) {
    if (prefetch && !release && yield_held_until(h, yield_now_ns())) {
      held = 1;
      release = yield_wait(h);
    } else if (can_take(h, prefetch))
      break;
    else
      pthread_cond_wait(&h->cond, &h->lock);
  }
  __atomic_fetch_sub(&h->demand_waiting, !prefetch, __ATOMIC_RELAXED);
  if (held) __atomic_fetch_add(h->c_pauses, 1, __ATOMIC_RELAXED);
  int want = prefetch && h->connections > 1 ? -1 : 0;
  struct conn *c = &h->conns[pop_slot(h, want)];
  c->release = release;
  if (!prefetch) yield_demand_started(h, c);
  pthread_mutex_unlock(&h->lock);
  return c;
}

static void conn_put(struct http *h, struct conn *c, int prefetch) {
  pthread_mutex_lock(&h->lock);
  h->free_stack[h->nfree++] = (unsigned)(c - h->conns);
  if (!prefetch) yield_demand_ended(h, c);
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->lock);
}

static int is_redirect(long st) {
  return st == 301 || st == 302 || st == 303 || st == 307 || st == 308;
}

/* After a redirect answer to a request for url: 1 with *next the URL to
 * ask next (malloc'ed), or -1 if it may not be followed. */
static int next_hop(const struct http *h, struct conn *c, const char *url,
                    int hop, long status, const char *what, char **next) {
  char *loc = NULL, why[1024];
  curl_easy_getinfo(c->h, CURLINFO_REDIRECT_URL, &loc);
  if (h->redirects == 0 || hop >= h->redirects) {
    char *shown = loc ? redact_url(loc) : NULL;
    snprintf(
        why, sizeof why, "a redirect to %s; %s (see the redirects setting)",
        shown ? shown : "nowhere",
        h->redirects ? "too many redirects" : "redirects are not followed");
    free(shown);
    return fail(EINVAL, "%s %s: HTTP status %ld, %s", h->shown_url, what,
                status, why);
  }
  if (redirect_allowed(url, loc, h->credentials, why, sizeof why) < 0)
    return fail(EACCES, "%s %s: HTTP status %ld, refusing %s", h->shown_url,
                what, status, why);
  if (!(*next = strdup(loc))) return fail(ENOMEM, "out of memory");
  return 1;
}

/* One GET of bytes [off, off+len) of url into buf: 0 for an exact answer,
 * 1 with *next set for a redirect to follow, else -1. */
static int request(struct http *h, struct conn *c, const char *url, int hop,
                   void *buf, uint64_t len, uint64_t off, int prefetch,
                   long *status, char **next) {
  struct xfer x = {.buf = buf,
                   .off = off,
                   .want = len,
                   .size = h->size,
                   .pin = h->size < 0 ? NULL : &h->pin,
                   .h = prefetch ? h : NULL,
                   .release = c->release,
                   .yield_end_ns = yield_now_ns() + h->timeout_ms * 500000u};
  char range[64], what[96];
  snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64, off, off + len - 1);
  snprintf(what, sizeof what, "bytes %s", range);
  c->errbuf[0] = 0;
  curl_easy_setopt(c->h, CURLOPT_URL, url);
  curl_easy_setopt(c->h, CURLOPT_RANGE, range);
  curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(c->h, CURLOPT_HEADERDATA, &x);
  CURLcode rc = curl_easy_perform(c->h);
  *status = x.status;
  if (!x.decided) http_decide(&x);
  __atomic_fetch_add(h->c_requests, 1, __ATOMIC_RELAXED);
  __atomic_fetch_add(h->c_bytes, x.got, __ATOMIC_RELAXED);
  if (rc == CURLE_OK && is_redirect(x.status))
    return next_hop(h, c, url, hop, x.status, what, next);
  int r = check_response(h, c, &x, rc, what);
  if (r == 0 && h->size < 0) {
    h->size = (int64_t)x.r_total;
    validator_pin(&h->pin, &x.seen);
  }
  return r;
}

/* A read, following the redirects allowed; 0 only for an exact answer. */
static int fetch(struct http *h, struct conn *c, void *buf, uint64_t len,
                 uint64_t off, int prefetch, long *status) {
  char *url = NULL, *next = NULL;
  int r, e = 0;
  for (int hop = 0;; hop++) {
    r = request(h, c, url ? url : h->url, hop, buf, len, off, prefetch, status,
                &next);
    e = errno;
    free(url);
    url = next;
    next = NULL;
    if (r != 1) break;
  }
  free(url);
  if (r < 0) {
    __atomic_fetch_add(h->c_errors, 1, __ATOMIC_RELAXED);
    /* Sessions on the old object must never get bytes of the new one. */
    if (e == ESTALE && h->size >= 0)
      __atomic_store_n(&h->stale, 1, __ATOMIC_RELAXED);
    errno = e;
  }
  return r;
}

/* Two bytes tell the size and whether ranges are honoured exactly; a
 * server that answers 200 to a range would make every read a full download.
 * (Not bytes=0-0: some S3 emulators take an end of 0 as "to the end".) */
static int probe_once(struct http *h, long *status) {
  char two[2];
  return fetch(h, &h->conns[0], two, 2, 0, 0, status);
}

static int transient(int e) {
  return e == EIO || e == ETIMEDOUT || e == ECONNREFUSED || e == ECONNRESET ||
         e == EAGAIN || e == EPIPE;
}

/* start() is not behind the retry layer, and one 503 while the daemon
 * starts should not take a listener down: a few quick tries. */
static int probe_with_retries(struct http *h, long *status) {
  for (int try = 1;; try++) {
    int r = probe_once(h, status);
    if (r == 0 || try == PROBE_TRIES || !transient(errno)) return r;
    int e = errno;
    host->log(UFK_LOG_WARN, "%s; trying again (%d of %d)", last_msg, try + 1,
              PROBE_TRIES);
    struct timespec ts = {0, 200000000L * try};
    nanosleep(&ts, NULL);
    errno = e;
  }
}

static int probe(struct http *h) {
  long status = 0;
  int r = probe_with_retries(h, &status);
  if (r == 0 && h->size <= INT64_MAX / 2) return 0;
  if (r == 0)
    return fail(EINVAL, "%s: object size %" PRId64 " is not usable",
                h->shown_url, h->size);
  int e = errno;
  if ((status != 206 && e != EINVAL && e != ERANGE) || is_redirect(status))
    return -1;
  char why[sizeof last_msg];
  snprintf(why, sizeof why, "%s", last_msg);
  return fail(e == EIO ? EINVAL : e,
              "%s; refusing this server: exact range requests are required "
              "('Range: bytes=0-1' must get 206 and 'Content-Range: bytes "
              "0-1/SIZE', SIZE >= 2)",
              why);
}

/* From now on every request asks for the version the probe saw. */
static int require_version(struct http *h) {
  char line[VALIDATOR_MAX + 32], was[VALIDATOR_MAX + 32];
  if (!validator_precondition(&h->pin, line, sizeof line)) {
    host->log(UFK_LOG_WARN,
              "%s: the server sends no ETag or Last-Modified, so a change of "
              "the object cannot be noticed",
              h->shown_url);
    return 0;
  }
  struct curl_slist *l = curl_slist_append(h->headers, line);
  if (!l) return fail(ENOMEM, "%s: out of memory", h->shown_url);
  h->headers = l;
  for (unsigned i = 0; i < h->connections; i++)
    if (curl_easy_setopt(h->conns[i].h, CURLOPT_HTTPHEADER, h->headers))
      return fail(ENOMEM, "%s: out of memory", h->shown_url);
  validator_describe(&h->pin, was, sizeof was);
  host->log(UFK_LOG_DEBUG, "%s: serving the object of %s", h->shown_url, was);
  return 0;
}

static int http_start(void *inst) {
  struct http *h = inst;
  if (make_share(h) < 0 || make_pool(h) < 0) return -1;
  h->size = -1;
  return probe(h) < 0 ? -1 : require_version(h);
}

static void http_destroy(void *inst) {
  struct http *h = inst;
  if (!h) return;
  for (unsigned i = 0; h->conns && i < h->connections; i++)
    if (h->conns[i].h) curl_easy_cleanup(h->conns[i].h);
  if (h->share) curl_share_cleanup(h->share);
  curl_slist_free_all(h->headers);
  free(h->conns);
  free(h->free_stack);
  free(h->url);
  free(h->shown_url);
  free(h->ca_file);
  free(h->sigv4);
  free(h->key_id);
  free(h->secret);
  for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
    pthread_mutex_destroy(&h->share_lock[i]);
  pthread_cond_destroy(&h->cond);
  pthread_mutex_destroy(&h->lock);
  free(h);
}

/* ---- data ---- */

static int64_t http_get_size(void *inst) {
  return ((struct http *)inst)->size;
}

static int http_read(void *inst, void *buf, uint64_t len, uint64_t off,
                     uint32_t flags) {
  struct http *h = inst;
  if (flags & UFK_READ_NOWAIT)
    return fail(EWOULDBLOCK, "%s: bytes at %" PRIu64 " need a request",
                h->shown_url, off);
  if (__atomic_load_n(&h->stale, __ATOMIC_RELAXED)) {
    char was[VALIDATOR_MAX + 32];
    validator_describe(&h->pin, was, sizeof was);
    return fail(ESTALE,
                "%s: the object changed since this source started (%s); "
                "bytes at %" PRIu64 " of the old one cannot be had",
                h->shown_url, was, off);
  }
  if (len == 0 || off > (uint64_t)h->size || len > (uint64_t)h->size - off)
    return fail(EINVAL,
                "%s: read of %" PRIu64 " bytes at %" PRIu64
                " is outside the object (%" PRId64 " bytes)",
                h->shown_url, len, off, h->size);
  int prefetch = !!(flags & UFK_READ_PREFETCH);
  int r = 0;
  /* A prefetch sent on a release asks for that many bytes only: the
   * server would send a whole receive window at once. */
  while (r == 0 && len) {
    struct conn *c = conn_get(h, prefetch);
    uint64_t n = c->release && c->release < len ? c->release : len;
    long status;
    r = fetch(h, c, buf, n, off, prefetch, &status);
    int e = errno;
    conn_put(h, c, prefetch);
    errno = e;
    buf = (char *)buf + n;
    off += n;
    len -= n;
  }
  return r;
}

/* The object and its version: a recorded working set of another version
 * is not replayed, and the cache's dir entries of another version are
 * never read. */
static int http_identity(void *inst, char *buf, size_t len) {
  const struct http *h = inst;
  char v[VALIDATOR_MAX + 32];
  if (h->pin.kind == PIN_NONE) return -1; /* it cannot tell versions apart */
  validator_describe(&h->pin, v, sizeof v);
  int n = snprintf(buf, len, "http %s size %" PRId64 " %s", h->shown_url,
                   h->size, v);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void http_caps(void *inst, struct ufk_caps *out) {
  out->flags = 0; /* every read is a network round trip: not FAST */
  out->max_concurrency = ((struct http *)inst)->connections;
  out->max_io = 0;
}

static int http_load(const struct ufk_host *h) {
  host = h;
  CURLcode r = curl_global_init(CURL_GLOBAL_DEFAULT);
  if (r) {
    h->error(EIO, "curl_global_init: %s", curl_easy_strerror(r));
    return -1;
  }
  /* CURLOPT_PROTOCOLS_STR needs 7.85. */
  if (curl_version_info(CURLVERSION_NOW)->version_num < 0x075500) {
    h->error(ENOTSUP, "libcurl %s is too old: 7.85 or newer is needed",
             curl_version_info(CURLVERSION_NOW)->version);
    curl_global_cleanup();
    return -1;
  }
  return 0;
}

static void http_unload(void) {
  curl_global_cleanup();
}

static const struct ufk_param params[] = {
    {"url", UFK_T_STRING, UFK_PARAM_REQUIRED, NULL,
     "http:// or https:// URL of the memory object"},
    {"headers", UFK_T_STRING_LIST, UFK_PARAM_SECRET, NULL,
     "extra request headers, 'Name: value'"},
    {"ca_file", UFK_T_STRING, 0, NULL, "CA bundle to verify the server with"},
    {"verify_tls", UFK_T_BOOL, 0, "true", "verify the server certificate"},
    {"connect_timeout", UFK_T_DURATION, 0, "5s", "connection set-up limit"},
    {"timeout", UFK_T_DURATION, 0, "30s", "limit for one whole request"},
    {"connections", UFK_T_INT, 0, "8", "most requests in flight"},
    {"prefetch_pause", UFK_T_DURATION, 0, "5ms",
     "prefetches stop while demand reads wait or run and this long after; "
     "0 never"},
    {"prefetch_window", UFK_T_SIZE, 0, "256K",
     "receive buffer (SO_RCVBUF) of the connections prefetches use; 0 the "
     "kernel's"},
    {"redirects", UFK_T_INT, 0, "0",
     "most redirects followed per request, 0 to 10; never https to http, "
     "never off the origin with credentials"},
    {"aws_sigv4", UFK_T_STRING, 0, NULL,
     "sign requests with AWS SigV4, e.g. aws:amz:us-east-1:s3"},
    {"aws_access_key_id", UFK_T_STRING, UFK_PARAM_SECRET, NULL,
     "default: $AWS_ACCESS_KEY_ID"},
    {"aws_secret_access_key", UFK_T_STRING, UFK_PARAM_SECRET, NULL,
     "default: $AWS_SECRET_ACCESS_KEY"},
    {"aws_session_token", UFK_T_STRING, UFK_PARAM_SECRET, NULL,
     "default: $AWS_SESSION_TOKEN"},
    {0},
};

static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,
    .flags = 0,
    .thread_model = UFK_THREAD_PARALLEL,
    .name = "http",
    .version = "1.0",
    .description = "memory object on an HTTP(S) server or S3, read by range",
    .params = params,
    .load = http_load,
    .unload = http_unload,
    .create = http_create,
    .start = http_start,
    .destroy = http_destroy,
    .get_size = http_get_size,
    .read = http_read,
    .caps = http_caps,
    .identity = http_identity,
};

UFFDKIT_PLUGIN(plugin)
