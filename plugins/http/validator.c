#include "validator.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The header's value without the blanks and line end around it; one that
 * does not fit is dropped whole, never cut (a cut ETag would match
 * another cut one). */
static void take_value(char *out, const char *v, size_t n) {
  while (n && (*v == ' ' || *v == '\t'))
    v++, n--;
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' ||
               v[n - 1] == '\n'))
    n--;
  if (n >= VALIDATOR_MAX) n = 0;
  memcpy(out, v, n);
  out[n] = 0;
}

static int named(const char *line, size_t n, const char *name) {
  size_t k = strlen(name);
  return n > k && !strncasecmp(line, name, k) && line[k] == ':';
}

int validator_header(struct seen *s, const char *line, size_t n) {
  if (named(line, n, "etag")) {
    take_value(s->etag, line + 5, n - 5);
    return 1;
  }
  if (named(line, n, "last-modified")) {
    take_value(s->last_modified, line + 14, n - 14);
    return 1;
  }
  return 0;
}

static int strong_etag(const char *e) {
  size_t n = strlen(e);
  return n >= 2 && e[0] == '"' && e[n - 1] == '"';
}

void validator_pin(struct pin *p, const struct seen *s) {
  memset(p, 0, sizeof *p);
  if (strong_etag(s->etag)) {
    p->kind = PIN_ETAG;
    snprintf(p->value, sizeof p->value, "%s", s->etag);
  } else if (s->last_modified[0]) {
    p->kind = PIN_DATE;
    snprintf(p->value, sizeof p->value, "%s", s->last_modified);
  }
}

int validator_precondition(const struct pin *p, char *buf, size_t len) {
  if (p->kind == PIN_NONE) return 0;
  snprintf(buf, len, "%s: %s",
           p->kind == PIN_ETAG ? "If-Match" : "If-Unmodified-Since", p->value);
  return 1;
}

const char *validator_seen(const struct pin *p, const struct seen *s) {
  return p->kind == PIN_ETAG ? s->etag : s->last_modified;
}

int validator_matches(const struct pin *p, const struct seen *s) {
  const char *got = validator_seen(p, s);
  return p->kind == PIN_NONE || !got[0] || !strcmp(got, p->value);
}

void validator_describe(const struct pin *p, char *buf, size_t len) {
  if (p->kind == PIN_NONE)
    snprintf(buf, len, "no validator");
  else
    snprintf(buf, len, "%s %s", p->kind == PIN_ETAG ? "ETag" : "Last-Modified",
             p->value);
}
