/* What a finished transfer means: an errno for libcurl's result, the HTTP
 * status and the response's range, so every read classifies alike. */
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
#include "validator.h"

static int curl_errno(CURLcode rc) {
  switch (rc) {
  case CURLE_OPERATION_TIMEDOUT:
    return ETIMEDOUT;
  case CURLE_COULDNT_CONNECT:
    return ECONNREFUSED;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY:
    return EAGAIN;
  case CURLE_SEND_ERROR:
    return EPIPE;
  case CURLE_RECV_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_SSL_CONNECT_ERROR:
    return ECONNRESET;
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_LOGIN_DENIED:
  case CURLE_AUTH_ERROR:
    return EACCES;
  case CURLE_URL_MALFORMAT:
  case CURLE_UNSUPPORTED_PROTOCOL:
  case CURLE_TOO_MANY_REDIRECTS:
  case CURLE_BAD_CONTENT_ENCODING:
    return EINVAL;
  case CURLE_OUT_OF_MEMORY:
    return ENOMEM;
  default:
    return EIO; /* partial file, weird reply, ...: worth another try */
  }
}

/* 408 and 429 are client codes that say "try again later", so they are
 * transient; every other 4xx is permanent. */
static int status_errno(long st) {
  switch (st) {
  case 401:
  case 403:
    return EACCES;
  case 404:
  case 410:
    return ENOENT;
  case 416:
    return ERANGE;
  case 408:
    return ETIMEDOUT;
  case 429:
  case 503:
    return EAGAIN;
  default:
    return st >= 500 && st <= 599 ? EIO : EINVAL;
  }
}

static int range_error(const struct http *h, const struct xfer *x,
                       const char *what) {
  char was[VALIDATOR_MAX + 32];
  validator_describe(&h->pin, was, sizeof was);
  if (x->changed)
    return fail(ESTALE,
                "%s %s: the object changed since this source started (%s, "
                "now %s)",
                h->shown_url, what, was, validator_seen(&h->pin, &x->seen));
  if (x->encoded)
    return fail(EINVAL,
                "%s %s: response has a Content-Encoding; an "
                "identity body is required",
                h->shown_url, what);
  if (!x->have_range || x->bad_range)
    return fail(EINVAL, "%s %s: 206 response without a valid Content-Range",
                h->shown_url, what);
  if (x->size >= 0 && x->total_known && x->r_total != (uint64_t)x->size)
    return fail(ESTALE,
                "%s %s: object size changed from %" PRId64 " to %" PRIu64,
                h->shown_url, what, x->size, x->r_total);
  if (!x->total_known)
    return fail(EINVAL, "%s %s: Content-Range gives no object size",
                h->shown_url, what);
  return fail(EIO,
              "%s %s: server answered bytes %" PRIu64 "-%" PRIu64 " instead",
              h->shown_url, what, x->r_first, x->r_last);
}

int check_response(const struct http *h, const struct conn *c,
                   const struct xfer *x, CURLcode rc, const char *what) {
  if (x->header_bytes > HEADERS_MAX)
    return fail(EINVAL,
                "%s %s: response headers larger than %d bytes; refusing them",
                h->shown_url, what, HEADERS_MAX);
  /* Cut inside the headers: say so, rather than blame a Content-Range
   * that never came.  libcurl reports a header over its limit as "out of
   * memory". */
  if (rc == CURLE_OUT_OF_MEMORY && x->status && !x->headers_end)
    return fail(EINVAL,
                "%s %s: a response header is larger than %d bytes; refusing "
                "it",
                h->shown_url, what, CURL_MAX_HTTP_HEADER);
  if (rc != CURLE_OK && x->status && !x->headers_end)
    return fail(curl_errno(rc), "%s %s: the response headers were cut: %s",
                h->shown_url, what,
                c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
  if (rc != CURLE_OK && x->status == 0)
    return fail(curl_errno(rc), "%s %s: %s", h->shown_url, what,
                c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
  if (x->status == 412) {
    char was[VALIDATOR_MAX + 32];
    validator_describe(&h->pin, was, sizeof was);
    return fail(ESTALE,
                "%s %s: HTTP status 412: the object changed since this source "
                "started (%s)",
                h->shown_url, what, was);
  }
  if (x->status != 206)
    return fail(status_errno(x->status), "%s %s: HTTP status %ld%s%s%s",
                h->shown_url, what, x->status,
                x->status == 200 ? " (range ignored)" : "",
                x->snip_len ? ": " : "", x->snippet);
  if (!x->accept) return range_error(h, x, what);
  if (x->overflow)
    return fail(EIO, "%s %s: body longer than the %" PRIu64 " bytes asked",
                h->shown_url, what, x->want);
  if (rc != CURLE_OK)
    return fail(
        curl_errno(rc), "%s %s: %s after %" PRIu64 " of %" PRIu64 " bytes",
        h->shown_url, what, c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc),
        x->got, x->want);
  if (x->got != x->want)
    return fail(EIO, "%s %s: short body, %" PRIu64 " of %" PRIu64 " bytes",
                h->shown_url, what, x->got, x->want);
  return 0;
}
