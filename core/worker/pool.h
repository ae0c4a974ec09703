/* Threads that read from sources which may block (network, slow disks), so
 * a slow read never stalls the fault loop of its session. */
#ifndef UFFDKIT_CORE_POOL_H
#define UFFDKIT_CORE_POOL_H

#include <stdint.h>

struct session;
struct pool;

/* A pool of up to threads threads, started as jobs come. */
struct pool *pool_new(const char *name, int threads);
/* How many threads it has started. */
int pool_threads(struct pool *p);
void pool_free(struct pool *p);
/* Queues the install of len bytes at guest address addr (source offset
 * off, first page index idx).  Takes a reference on s. */
void pool_submit(struct pool *p, struct session *s, uint64_t addr, uint64_t off,
                 uint64_t idx, uint64_t len);

#endif
