/* Helpers shared by the in-tree plugins (layers above all): reporting an
 * error so the layer above can judge it.  Calls a layer does not change
 * need no helper: callbacks a layer leaves NULL pass through (ABI 1.2). */
#ifndef UFFDKIT_COMMON_LAYER_H
#define UFFDKIT_COMMON_LAYER_H

#include <stdint.h>
#include <uffdkit/plugin.h>

/* host->error(errnum, fmt, ...) and errno = errnum; returns -1. */
int ufk_fail(const struct ufk_host *host, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
