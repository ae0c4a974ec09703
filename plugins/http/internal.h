/* The http source's parts: settings (settings.c), response parsing
 * (response.c), the object's version (validator.c), requests (http.c). */
#ifndef UFFDKIT_HTTP_INTERNAL_H
#define UFFDKIT_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <curl/curl.h>

#include <uffdkit/plugin.h>

#include "validator.h"

/* Bodies of error responses are kept this far for the message, then the
 * transfer is cut so a server answering 200 with the whole object cannot
 * make us download it. */
#define ERROR_BODY_MAX 65536
/* More response header bytes than this are refused as such (libcurl's own
 * limit would end the transfer with an error that reads like a bad
 * Content-Range). */
#define HEADERS_MAX 65536
#define SNIPPET_MAX 160
#define MAX_CONNECTIONS 256
/* While demand reads hold prefetches, the source lets one prefetch go on
 * for a release every this many prefetch_pause (yield.c). */
#define HOLD_PAUSES 20
/* A release's fewest bytes, and the most a prefetch transfer reads from
 * its socket at once (its chunks count whole against a release). */
#define RELEASE_MIN 16384
#define RELEASE_MAX (64u << 20) /* past any prefetch: no limit */

extern const struct ufk_host *host;

/* State of one request, filled by curl's callbacks. */
struct xfer {
  char *buf;
  uint64_t off, want, got;
  int64_t size; /* expected object size, -1 while probing */
  long status;
  int have_range, total_known, bad_range, encoded;
  uint64_t r_first, r_last, r_total;
  int decided, accept, overflow;
  uint64_t discarded;
  char snippet[SNIPPET_MAX];
  size_t snip_len;
  struct seen seen;      /* the response's ETag and Last-Modified */
  const struct pin *pin; /* the version asked for; NULL while probing */
  int changed;           /* the response is of another version */
  int headers_end;       /* the blank line after this response's headers */
  uint64_t header_bytes; /* of all responses of this request */
  struct http *h;        /* for a prefetch: its source, to yield to demand */
  uint64_t release;      /* bytes a prefetch may take before it yields again */
  uint64_t yield_end_ns; /* it stops yielding then, ahead of its timeout */
};

struct conn {
  CURL *h;
  char errbuf[CURL_ERROR_SIZE];
  uint64_t release;    /* a prefetch request sent on a release: its bytes */
  uint64_t started_ns; /* when a demand read took it */
  int demand;          /* a demand read has it now */
};

struct http {
  char *url, *shown_url, *ca_file, *sigv4, *key_id, *secret;
  struct curl_slist *headers;
  int verify_tls;
  long connect_timeout_ms, timeout_ms;
  unsigned connections;
  int redirects;   /* most redirects one request may follow */
  int credentials; /* requests carry secrets: stay on the origin */
  int64_t size;
  struct pin pin; /* the object's version, learned at start */
  int stale;      /* it changed: nothing more is read */

  CURLSH *share;
  pthread_mutex_t share_lock[CURL_LOCK_DATA_LAST];
  struct conn *conns;
  unsigned *free_stack, nfree, demand_waiting;
  pthread_mutex_t lock;
  pthread_cond_t cond; /* on CLOCK_MONOTONIC */

  /* yield.c: prefetches give way to demand reads on the wire. */
  uint64_t prefetch_window; /* SO_RCVBUF of prefetch connections; 0: kernel's */
  uint64_t pause_ns;        /* prefetch_pause; 0: never paused */
  uint64_t hold_max_ns;     /* one release per this long while held */
  unsigned demand_busy;     /* demand reads holding a connection */
  uint64_t demand_end_ns;   /* when the last one ended (CLOCK_MONOTONIC) */
  uint64_t release_ns;      /* when a held prefetch last went on */
  uint64_t release_size;    /* bytes the last release could take */
  unsigned release_met;     /* demand reads that ran beside it (yield.c) */
  unsigned release_hurt;    /* and those it delayed */
  uint64_t fault_ns;        /* a demand read's usual time (yield.c) */
  uint64_t fault_dev_ns;    /* and its mean deviation */

  uint64_t *c_bytes, *c_requests, *c_errors, *c_pauses, *c_releases;
};

/* Records the error and leaves errnum in errno too: a layer above (retry)
 * tells transient from permanent failures by it.  Returns -1. */
__attribute__((format(printf, 2, 3))) int fail(int errnum, const char *fmt,
                                               ...);

/* Reads and checks every setting into h. */
int http_read_settings(const struct ufk_config *cfg, struct http *h);

/* libcurl callbacks filling a struct xfer; decide() once headers are in. */
size_t http_on_header(char *line, size_t size, size_t nitems, void *opaque);
size_t http_on_body(char *p, size_t size, size_t nmemb, void *opaque);
void http_decide(struct xfer *x);

/* yield.c.  held_until, wait, demand_started and demand_ended are called
 * under h->lock. */
uint64_t yield_held_until(const struct http *h, uint64_t t);
uint64_t yield_wait(struct http *h);
void yield_demand_started(struct http *h, struct conn *c);
void yield_demand_ended(struct http *h, struct conn *c);
void yield_prefetch_body(struct http *h, struct xfer *x, uint64_t n);
int yield_sockopt(void *opaque, curl_socket_t fd, curlsocktype purpose);
uint64_t yield_now_ns(void);

/* classify.c: 0, or -1 with the error set, for a transfer that ended with
 * rc; what names the request in messages. */
int check_response(const struct http *h, const struct conn *c,
                   const struct xfer *x, CURLcode rc, const char *what);

#endif
