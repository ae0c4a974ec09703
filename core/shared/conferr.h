/* An error in configuration, found while loading it (the daemon's file, an
 * @include, a template, a plugin's settings, a plugin file): what is wrong
 * and where.  Every configuration-time path fills one; every caller prints
 * it one way, conf_err_text. */
#ifndef UFFDKIT_CORE_CONFERR_H
#define UFFDKIT_CORE_CONFERR_H

#include <stddef.h>

struct conf_err {
  char file[512]; /* "" when it is not about a file */
  int line;       /* 0 when no line is known */
  char msg[1024];
};

/* Sets e: flen bytes of file (flen < 0: all of it; file NULL: no file),
 * line, the message; returns -1, for `return conf_err_at(...)`. */
int conf_err_at(struct conf_err *e, const char *file, int flen, int line,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* An error about no file and no line. */
#define conf_err_set(e, ...) conf_err_at(e, NULL, -1, 0, __VA_ARGS__)

/* "FILE:LINE: MESSAGE" ("FILE: MESSAGE" without a line, "MESSAGE" without
 * a file) in buf; returns buf. */
const char *conf_err_text(const struct conf_err *e, char *buf, size_t len);
/* The same text, in a buffer of its own per thread until the next call. */
const char *conf_err_str(const struct conf_err *e);

#endif
