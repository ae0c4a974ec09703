#include "layer.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

int ufk_fail(const struct ufk_host *host, int errnum, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  host->error(errnum, "%s", msg);
  errno = errnum; /* a host need not set it; the layer above reads it */
  return -1;
}
