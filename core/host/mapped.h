/* Copies out of file mappings that survive the file shrinking under them:
 * the host service copy_mapped (uffdkit-plugin(3)). */
#ifndef UFFDKIT_HOST_MAPPED_H
#define UFFDKIT_HOST_MAPPED_H

#include <stddef.h>

/* memcpy(dst, src, len) from a read-only file mapping; 0, or -1 with errno
 * EIO when part of src is no longer backed by the file (truncated since it
 * was mapped, or its storage failed): the SIGBUS that raises is caught on
 * this thread and the copy abandoned.  A SIGBUS anywhere else goes to the
 * handler that was there before (the default: the process dies). */
int host_copy_mapped(void *dst, const void *src, size_t len);

#endif
