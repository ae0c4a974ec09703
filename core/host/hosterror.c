#include "hosterror.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static __thread char tl_error[1024];
static __thread int tl_errno;

void host_error(int errnum, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tl_error, sizeof tl_error, fmt, ap);
  va_end(ap);
  tl_errno = errnum;
  errno = errnum ? errnum : EIO; /* what a layer above reads */
}

const char *host_last_error(void) {
  return tl_error[0] ? tl_error : "unknown error (the plugin gave no reason)";
}

int host_last_errno(void) {
  return tl_errno ? tl_errno : EIO;
}

void host_clear_error(void) {
  tl_error[0] = 0;
  tl_errno = 0;
}
