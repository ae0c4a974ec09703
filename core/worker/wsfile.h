/* The working-set file: the pages a guest touched first, in order, behind
 * a header naming the source they were recorded from.
 *
 *   0   "UFKWSET1"
 *   8   u32 version (1)     12  u32 page size (4096 or 2 MiB)
 *   16  u64 source size     24  u64 number of entries
 *   32  u64 identity length, then the source's identity (no NUL)
 *   40+ entries: page indices, each the zigzag LEB128 varint of its
 *       difference from the one before (from 0), so runs cost a byte a page
 *
 * All integers little-endian.  A file is written to a temporary name and
 * renamed, so a reader never sees half of one. */
#ifndef UFFDKIT_CORE_WSFILE_H
#define UFFDKIT_CORE_WSFILE_H

#include <stddef.h>
#include <stdint.h>

struct wset {
  uint32_t page_size;
  uint64_t source_size;
  char identity[1024];
  uint64_t *pages; /* page indices in first-touch order */
  size_t n;
};

/* Returns 0, or -1 with the reason in err. */
int wset_write(const char *path, const struct wset *w, char *err,
               size_t errlen);
/* Reads and checks a file: every entry lies within the source.  Returns 0,
 * or -1 with the reason in err (and nothing to free). */
int wset_read(const char *path, struct wset *w, char *err, size_t errlen);
void wset_free(struct wset *w);

#endif
