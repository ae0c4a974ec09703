/* E2B header versions 4 and 5 in uffdkit-snap: writing a generation with a
 * V4/V5 header and zstd / lz4 frames (e2b.c), reading compressed builds and
 * checking their SHA-256 (e2bread.c). */
#ifndef UFFDKIT_SNAP_E2B_H
#define UFFDKIT_SNAP_E2B_H

#include <getopt.h>
#include <stdint.h>

#include "snap.h"

struct e2b_opts {
  unsigned version; /* 0: inherit (diff) or 3 (create) */
  int codec;        /* -1: none unless set */
  uint64_t frame_size;
  int level;
  int no_ancestors; /* leave ancestor entries out (stores before 2026-08) */
};

#define E2B_OPT_VERSION 0x100
#define E2B_OPT_CODEC 0x101
#define E2B_OPT_FRAME 0x102
#define E2B_OPT_LEVEL 0x103
#define E2B_OPT_NO_ANCESTORS 0x104
#define E2B_LONG_OPTIONS                                                       \
  {"header-version", required_argument, 0, E2B_OPT_VERSION},                   \
      {"codec", required_argument, 0, E2B_OPT_CODEC},                          \
      {"frame-size", required_argument, 0, E2B_OPT_FRAME},                     \
      {"level", required_argument, 0, E2B_OPT_LEVEL}, {                        \
    "no-ancestor-entries", no_argument, 0, E2B_OPT_NO_ANCESTORS                \
  }

void e2b_opts_init(struct e2b_opts *o);
/* Handles option c of E2B_LONG_OPTIONS: 1 taken, 0 not ours, -1 bad. */
int e2b_opt(struct e2b_opts *o, int c, const char *arg);
/* Settles the version and codec for a generation of block size bs over a
 * parent of version parent (0 for none).  Returns 0 or -1 (usage). */
int e2b_settle(struct e2b_opts *o, uint64_t bs,
               const struct ufk_snap_header *parent);
/* Makes h a V4/V5 header when o asks for one: compresses the new build's
 * diff into frames (replacing out's memfile), records its size, SHA-256
 * and frame table, copies the ancestors' entries from parent, trims them.
 * Versions 1-3: sets the version only. */
int e2b_finish(struct snap_out *out, struct ufk_snap_header *h,
               const struct ufk_snap_header *parent, const struct e2b_opts *o);

/* Compressed data of a build in a snap_image. */
struct snap_frames {
  struct ufk_snap_entry e;
  long cached; /* frame decoded in buf, or -1 */
  uint8_t *buf;
};
/* Opens build i of im if it is stored compressed: 0 done, 1 not compressed
 * (open STORE/ID/memfile), -1 error. */
int e2b_open_build(struct snap_image *im, const char *store, size_t i);
int e2b_read(struct snap_image *im, uint32_t b, void *buf, uint64_t n,
             uint64_t at);
void e2b_close(struct snap_image *im);
/* Checks the SHA-256 a build's own header gives for it, reading its whole
 * diff.  Returns 0 (match or unknown), 1 (a problem, reported), -1 error. */
int e2b_verify_sha(const char *store, const uint8_t id[16],
                   const struct ufk_snap_header *own, const char *own_path);

#endif
