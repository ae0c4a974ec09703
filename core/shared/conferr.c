#include "conferr.h"

#include <stdarg.h>
#include <stdio.h>

int conf_err_at(struct conf_err *e, const char *file, int flen, int line,
                const char *fmt, ...) {
  if (!file) file = "";
  if (flen < 0) flen = (int)sizeof e->file;
  snprintf(e->file, sizeof e->file, "%.*s", flen, file);
  e->line = line;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->msg, sizeof e->msg, fmt, ap);
  va_end(ap);
  return -1;
}

const char *conf_err_text(const struct conf_err *e, char *buf, size_t len) {
  if (e->file[0] && e->line > 0)
    snprintf(buf, len, "%s:%d: %s", e->file, e->line, e->msg);
  else if (e->file[0])
    snprintf(buf, len, "%s: %s", e->file, e->msg);
  else
    snprintf(buf, len, "%s", e->msg);
  return buf;
}

const char *conf_err_str(const struct conf_err *e) {
  static _Thread_local char buf[sizeof e->file + sizeof e->msg + 16];
  return conf_err_text(e, buf, sizeof buf);
}
