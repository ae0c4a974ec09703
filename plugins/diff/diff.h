/* Internals of the diff source shared by diff.c (headers, uncompressed
 * builds, the plugin table) and compressed.c (compressed builds). */
#ifndef UFFDKIT_DIFF_DIFF_H
#define UFFDKIT_DIFF_DIFF_H

#include <stdint.h>
#include <uffdkit/plugin.h>

#include "frames.h"
#include "snapheader.h"

extern const struct ufk_host *host;

struct build {
  struct ufk_snap_build info;
  struct ufk_snap_entry entry; /* how it is stored (ufk_snap_resolve) */
  int compressed;
  char *file;         /* local path or "store:<id>...", for messages */
  const uint8_t *map; /* for map(): the kernel copies out of it */
  size_t map_len;
  int fd; /* for read(): pread, so a truncated file is an error */
  struct ufk_next *src;
};

struct diff {
  const struct ufk_config *cfg;
  const char *header_path;
  const char *diffs; /* NULL when reading through the store */
  uint64_t frame_cache;
  struct ufk_snap_header h;
  struct build *builds;
  size_t nbuilds;
  uint32_t *build_of; /* per mapping: index into builds, or UFK_SNAP_NO_BUILD */
  int any_compressed;
  struct fcache cache;
  uint64_t *bytes_read;
  uint64_t *bytes_zero;
  uint64_t *reads;
};

/* The object of build id: the diffs template (or "store:ID") + suffix, e.g.
 * ".zstd" or ".header".  NULL after reporting an error. */
char *diff_object_name(struct diff *d, const uint8_t id[16],
                       const char *suffix);
/* The store source opened for build id with {suffix} set. */
struct ufk_next *diff_store_open(struct diff *d, const uint8_t id[16],
                                 const char *suffix);

/* Decides how build b is stored (its entry, or its own header's). */
int diff_resolve(struct diff *d, struct build *b);
/* Opens memfile.zstd / .lz4 of b and checks it holds every frame. */
int diff_open_compressed(struct diff *d, struct build *b);
/* Sizes the frame cache once every build is open. */
int diff_cache_start(struct diff *d);
/* Copies n bytes at byte `at` of b's uncompressed diff into buf. */
int diff_read_frames(struct diff *d, struct build *b, uint8_t *buf, uint64_t n,
                     uint64_t at, uint32_t flags);

#endif
