/* Reports the holes of a sparse file as zero extents (SEEK_DATA/SEEK_HOLE),
 * shared by the sources that read plain files. */
#ifndef UFFDKIT_COMMON_HOLES_H
#define UFFDKIT_COMMON_HOLES_H

#include <stdint.h>
#include <uffdkit/plugin.h>

/* Calls fn(opaque, off, len, UFK_EXTENT_ZERO) for each hole inside
 * [off, off+len) of fd, in order.  Returns 0, or -1 with errno set. */
int ufk_file_holes(int fd, uint64_t off, uint64_t len, ufk_extent_fn fn,
                   void *opaque);

#endif
