/* Allocation in the worker.  The worker does not recover from running out
 * of memory: it logs and aborts, the supervisor starts another and every
 * session carries on in it (their state is in shared memory).  That is what
 * the process split is for; it keeps every path of the fault loop free of a
 * failure branch nobody tests.  The supervisor, which must not die, checks
 * every allocation itself and never calls these. */
#ifndef UFFDKIT_CORE_MEM_H
#define UFFDKIT_CORE_MEM_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n, size_t size);
/* Page-aligned (4096) memory for the kernel to copy from. */
void *xmemalign(size_t size);

#endif
