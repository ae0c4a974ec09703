/* Allocation in the worker and the plugin host it runs (also in the
 * one-shot commands that load plugins, such as --check-config).  The
 * worker does not recover from running out of memory: it logs and aborts,
 * the supervisor starts another and every session carries on in it (their
 * state is in shared memory).  That is what
 * the process split is for; it keeps every path of the fault loop free of a
 * failure branch nobody tests.  The supervisor, which must not die, checks
 * every allocation itself and never calls these (it cannot link the host;
 * tests/core/supervisor/test_nomem.c fails each of its allocations). */
#ifndef UFFDKIT_CORE_MEM_H
#define UFFDKIT_CORE_MEM_H

#include <stddef.h>
#include <stdio.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n, size_t size);
char *xstrdup(const char *s);
/* Page-aligned (4096) memory for the kernel to copy from. */
void *xmemalign(size_t size);

/* Closes m, an open_memstream writing *buf, for code the supervisor runs:
 * 0 if every byte written is in *buf; else -1 with *buf freed and NULL
 * (a write that ran out of memory would leave a shortened text). */
int memstream_done(FILE *m, char **buf);

#endif
