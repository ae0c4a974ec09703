/* Parsing one response: status, Content-Range, encoding and version
 * headers, and the body straight into the caller's buffer. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static int parse_u64(const char **p, uint64_t *out) {
  if (!isdigit((unsigned char)**p)) return -1;
  char *end;
  errno = 0;
  unsigned long long v = strtoull(*p, &end, 10);
  if (errno) return -1;
  *p = end;
  *out = v;
  return 0;
}

/* "bytes FIRST-LAST/TOTAL" (TOTAL may be "*"), surrounding blanks allowed. */
static int parse_content_range(const char *v, size_t n, struct xfer *x) {
  char tmp[128];
  if (n >= sizeof tmp) return -1;
  memcpy(tmp, v, n);
  tmp[n] = 0;
  const char *p = tmp;
  while (*p == ' ' || *p == '\t')
    p++;
  if (strncasecmp(p, "bytes", 5)) return -1;
  p += 5;
  while (*p == ' ' || *p == '\t')
    p++;
  if (parse_u64(&p, &x->r_first) || *p++ != '-' || parse_u64(&p, &x->r_last) ||
      *p++ != '/')
    return -1;
  x->total_known = *p != '*';
  if (x->total_known ? parse_u64(&p, &x->r_total) : (p++, 0)) return -1;
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
    p++;
  return *p || x->r_last < x->r_first ? -1 : 0;
}

static int header_is(const char *line, size_t n, const char *name,
                     const char **value, size_t *vlen) {
  size_t k = strlen(name);
  if (n <= k || strncasecmp(line, name, k) || line[k] != ':') return 0;
  *value = line + k + 1;
  *vlen = n - k - 1;
  return 1;
}

static void parse_status_line(struct xfer *x, const char *line, size_t n) {
  /* A new response (redirect, 100-continue) replaces the previous one. */
  long st = 0;
  const char *sp = memchr(line, ' ', n);
  for (size_t i = sp ? (size_t)(sp - line) + 1 : n; i < n; i++) {
    if (!isdigit((unsigned char)line[i])) break;
    st = st * 10 + (line[i] - '0');
    if (st > 999) break;
  }
  x->status = st;
  x->have_range = x->bad_range = x->encoded = 0;
  x->decided = x->accept = x->headers_end = 0;
  x->discarded = x->snip_len = 0;
  x->snippet[0] = 0;
  memset(&x->seen, 0, sizeof x->seen);
}

static int value_is_identity(const char *v, size_t n) {
  while (n && (*v == ' ' || *v == '\t'))
    v++, n--;
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\r' || v[n - 1] == '\n'))
    n--;
  return n == 8 && !strncasecmp(v, "identity", 8);
}

size_t http_on_header(char *line, size_t size, size_t nitems, void *opaque) {
  struct xfer *x = opaque;
  size_t n = size * nitems;
  const char *v;
  size_t vlen;
  x->header_bytes += n;
  if (x->header_bytes > HEADERS_MAX) return 0;
  if ((n == 2 && line[0] == '\r') || (n == 1 && line[0] == '\n'))
    x->headers_end = 1;
  else if (n >= 5 && !strncmp(line, "HTTP/", 5))
    parse_status_line(x, line, n);
  else if (header_is(line, n, "content-range", &v, &vlen)) {
    x->have_range = 1;
    x->bad_range = parse_content_range(v, vlen, x) < 0;
  } else if (header_is(line, n, "content-encoding", &v, &vlen))
    x->encoded = !value_is_identity(v, vlen);
  else
    validator_header(&x->seen, line, n);
  return n;
}

/* Whether the body is the range asked for, decided once all headers are in. */
void http_decide(struct xfer *x) {
  x->decided = 1;
  x->changed = x->pin && !validator_matches(x->pin, &x->seen);
  x->accept = !x->changed && x->status == 206 && x->have_range &&
              !x->bad_range && !x->encoded && x->r_first == x->off &&
              x->r_last == x->off + x->want - 1 && x->total_known &&
              (x->size < 0 || x->r_total == (uint64_t)x->size);
}

static void keep_snippet(struct xfer *x, const char *p, size_t n) {
  for (size_t i = 0; i < n && x->snip_len < sizeof x->snippet - 1; i++) {
    unsigned char ch = (unsigned char)p[i];
    if (isspace(ch)) {
      if (x->snip_len && x->snippet[x->snip_len - 1] != ' ')
        x->snippet[x->snip_len++] = ' ';
    } else if (isprint(ch))
      x->snippet[x->snip_len++] = (char)ch;
  }
  x->snippet[x->snip_len] = 0;
}

/* The body goes straight into the caller's buffer; one byte too many fails
 * the request rather than being dropped. */
size_t http_on_body(char *p, size_t size, size_t nmemb, void *opaque) {
  struct xfer *x = opaque;
  size_t n = size * nmemb;
  if (!x->decided) http_decide(x);
  if (!x->accept) {
    keep_snippet(x, p, n);
    x->discarded += n;
    return x->discarded > ERROR_BODY_MAX ? 0 : n;
  }
  if (n > x->want - x->got) {
    x->overflow = 1;
    return 0;
  }
  memcpy(x->buf + x->got, p, n);
  x->got += n;
  if (x->h) yield_prefetch_body(x->h, x, n);
  return n;
}
