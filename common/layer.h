/* Helpers shared by the in-tree plugins (layers above all): reporting an
 * error so the layer above can judge it, and passing calls a layer does
 * not change on to the stack below. */
#ifndef UFFDKIT_COMMON_LAYER_H
#define UFFDKIT_COMMON_LAYER_H

#include <stdint.h>
#include <uffdkit/plugin.h>

/* host->error(errnum, fmt, ...) and errno = errnum; returns -1. */
int ufk_fail(const struct ufk_host *host, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The extents of the stack below, for a layer that keeps the data as it
 * is; -1 when the stack below reports none. */
int ufk_below_extents(struct ufk_next *below, uint64_t off, uint64_t len,
                      ufk_extent_fn fn, void *opaque);

#endif
