/* Internals of uffdkit-snap shared by its commands. */
#ifndef UFFDKIT_SNAP_H
#define UFFDKIT_SNAP_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "bitmap.h"
#include "snapheader.h"

/* Exit codes. */
#define SNAP_EXIT_OK 0
#define SNAP_EXIT_FAIL 1  /* an error, or verify found a problem */
#define SNAP_EXIT_USAGE 2 /* bad command line */

/* Bytes moved per read or write; a multiple of both block sizes. */
#define SNAP_CHUNK (2u << 20)

#define SNAP_MEMFILE "memfile"
#define SNAP_HEADER "memfile.header"

extern volatile sig_atomic_t snap_interrupted;

__attribute__((format(printf, 1, 2))) void snap_error(const char *fmt, ...);
/* Fails with a message if a signal asked to stop. */
int snap_check_interrupt(void);

char *snap_path(const char *dir, const char *id, const char *file);
/* Checks that s is a build id (a UUID) and stores it in id. */
int snap_parse_id(const char *s, uint8_t id[16]);

int snap_pread(int fd, void *buf, size_t len, uint64_t off, const char *name);
int snap_write(int fd, const void *buf, size_t len, const char *name);
int snap_is_zero(const void *buf, size_t len);

/* A progress bar on stderr, drawn only when stderr is a terminal. */
struct progress {
  int on;
  int shown; /* last percentage drawn */
  uint64_t total;
  const char *what;
};
void progress_start(struct progress *p, const char *what, uint64_t total);
void progress_set(struct progress *p, uint64_t done);
void progress_end(struct progress *p);

/* A new build folder, written as STORE/.tmp-ID and renamed to STORE/ID once
 * complete, so a failed command leaves nothing behind. */
struct snap_out {
  uint8_t id[16];
  char ids[UFK_SNAP_UUID_STR];
  char *store;
  char *tmpdir;
  char *memfile;
  int fd;
  int made_store;
  uint64_t written;
};
int out_begin(struct snap_out *o, const char *store);
/* Appends a block of the new build's diff. */
int out_block(struct snap_out *o, const void *buf, size_t len);
int out_commit(struct snap_out *o, const struct ufk_snap_header *h);
/* Removes whatever out_begin and out_block made. */
void out_abort(struct snap_out *o);

struct snap_frames;

/* A generation of a store, with its builds' diff files open. */
struct snap_image {
  struct ufk_snap_header h;
  char *header_path;
  struct ufk_snap_build *builds;
  size_t nbuilds;
  int *fds;
  char **files;
  uint32_t *build_of;
  struct snap_frames *frames; /* compressed builds (e2b.h), or NULL */
};
/* Loads STORE/BUILD/memfile.header strictly and opens every referenced
 * build's diff, checking it is long enough. */
int image_open(struct snap_image *im, const char *store, const char *build);
int image_read(struct snap_image *im, void *buf, uint64_t len, uint64_t off);
void image_close(struct snap_image *im);

/* Bitmaps of blocks (common/bitmap.h); NULL, with a message, when out of
 * memory. */
uint64_t *bitmap_new(uint64_t nblocks);

int cmd_create(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_flatten(int argc, char **argv);
int cmd_verify(int argc, char **argv);

#endif
