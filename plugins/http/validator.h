/* Which version of the object a response is of: the validator learned at
 * start (a strong ETag, else Last-Modified), sent as a precondition on
 * every range request and compared with what each response says. */
#ifndef UFFDKIT_HTTP_VALIDATOR_H
#define UFFDKIT_HTTP_VALIDATOR_H

#include <stddef.h>

#define VALIDATOR_MAX 256

/* What one response said about its version. */
struct seen {
  char etag[VALIDATOR_MAX];
  char last_modified[VALIDATOR_MAX];
};

enum pin_kind { PIN_NONE, PIN_ETAG, PIN_DATE };

/* The version a source instance serves, fixed at start. */
struct pin {
  enum pin_kind kind;
  char value[VALIDATOR_MAX];
};

/* Takes an ETag or Last-Modified header line into seen; 1 if it was one. */
int validator_header(struct seen *s, const char *line, size_t n);
/* Pins what the first response said: a strong ETag, else Last-Modified
 * (a weak ETag never satisfies If-Match), else nothing. */
void validator_pin(struct pin *p, const struct seen *s);
/* "If-Match: ..." or "If-Unmodified-Since: ..." into buf; 0 if p pins
 * nothing. */
int validator_precondition(const struct pin *p, char *buf, size_t len);
/* Whether a response is of the pinned version: it must not name another
 * one.  A response that names none is taken as the server's answer to the
 * precondition, which it was sent with. */
int validator_matches(const struct pin *p, const struct seen *s);
/* What the response named instead, for messages. */
const char *validator_seen(const struct pin *p, const struct seen *s);
/* "ETag \"...\"" or "Last-Modified ..." or "no validator", for messages
 * and identity(). */
void validator_describe(const struct pin *p, char *buf, size_t len);

#endif
