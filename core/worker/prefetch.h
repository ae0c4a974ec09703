/* Working-set record and replay, and background fill, for one session.
 *
 * Recording keeps the order in which the guest first touched each page and
 * writes it (page indices, delta-varint coded, behind a header naming the
 * source's identity and the page size) when the session ends or record_for
 * runs out.  Replay installs those pages from a low-priority thread in
 * contiguous runs (UFFDIO_COPY_MODE_DONTWAKE, then one wake), skipping any
 * page already present, in flight or removed; demand faults keep going on
 * the fault loop meanwhile.  Background fill then installs the rest. */
#ifndef UFFDKIT_CORE_PREFETCH_H
#define UFFDKIT_CORE_PREFETCH_H

#include <stddef.h>
#include <stdint.h>

struct session;
struct prefetch;

/* Starts what the listener's settings ask for; NULL if nothing. */
struct prefetch *prefetch_start(struct session *s);
/* The fault loop reports each first touch (source offset) while recording;
 * returns 1 while recording, so the loop can keep fault-around off. */
int prefetch_touch(struct prefetch *p, uint64_t off);
int prefetch_recording(const struct prefetch *p);
/* Stops the thread and writes any recording. */
void prefetch_stop(struct prefetch *p);

/* The working-set file format, exposed for tests and tools. */
struct wset {
  uint32_t page_size;
  uint64_t source_size;
  char identity[1024];
  uint64_t *pages; /* page indices in first-touch order */
  size_t n;
};
int wset_write(const char *path, const struct wset *w, char *err,
               size_t errlen);
/* Reads and checks a file; returns 0, or -1 with the reason in err. */
int wset_read(const char *path, struct wset *w, char *err, size_t errlen);
void wset_free(struct wset *w);

#endif
