/* Snapshot memory header, versions 1-3 (the E2B / Wrenn memfile.header).
 *
 * Little-endian, no magic: 64 bytes of metadata, then N 40-byte mappings,
 * so a valid file is exactly 64 + 40 N bytes long.  Each mapping sends a
 * range of guest memory to a range of one build's diff file, or to zeros
 * when its build id is nil.  The header of a generation is flattened: it
 * alone resolves every offset, whatever ancestor the bytes live in.
 *
 * Every function reporting an error writes a message naming the file and the
 * entry (index, field, offset) into a caller's struct ufk_snap_err.
 */
#ifndef UFFDKIT_COMMON_SNAPHEADER_H
#define UFFDKIT_COMMON_SNAPHEADER_H

#include <stddef.h>
#include <stdint.h>

#define UFK_SNAP_META_SIZE 64u
#define UFK_SNAP_MAPPING_SIZE 40u
#define UFK_SNAP_VERSION_MIN 1u
#define UFK_SNAP_VERSION_MAX 3u
#define UFK_SNAP_VERSION_WRITE 3u
#define UFK_SNAP_BLOCK_4K 4096u
#define UFK_SNAP_BLOCK_2M (2u << 20)
/* Storage offsets must keep reads page-aligned. */
#define UFK_SNAP_STORAGE_ALIGN 4096u
#define UFK_SNAP_UUID_STR 37 /* 36 characters and the NUL */
#define UFK_SNAP_BUILD_ID_VAR "{build_id}"

struct ufk_snap_err {
  char msg[512];
};

struct ufk_snap_mapping {
  uint64_t offset;         /* in guest memory */
  uint64_t length;         /* bytes */
  uint8_t build_id[16];    /* nil: reads as zeros */
  uint64_t storage_offset; /* in that build's diff file */
};

struct ufk_snap_header {
  uint64_t version;
  uint64_t block_size;
  uint64_t size;
  uint64_t generation;
  uint8_t build_id[16];
  uint8_t base_build_id[16];
  size_t nmappings;
  struct ufk_snap_mapping *mappings; /* owned, free with ufk_snap_free */
};

/* One build a header reads from, with the diff length it needs. */
struct ufk_snap_build {
  uint8_t id[16];
  uint64_t need;      /* bytes of its diff file the mappings reach */
  size_t need_entry;  /* index of the mapping that reaches furthest */
  uint64_t bytes;     /* guest bytes it serves */
  size_t first_entry; /* index of its first mapping */
};

int ufk_snap_is_nil(const uint8_t id[16]);
void ufk_snap_id_str(const uint8_t id[16], char out[UFK_SNAP_UUID_STR]);

/* Parses and validates buf (len bytes); name is the file, for messages.
 * Returns 0, or -1 with err set (h left empty). */
int ufk_snap_parse(const void *buf, size_t len, const char *name,
                   struct ufk_snap_header *h, struct ufk_snap_err *err);
/* Reads and parses the file at path. */
int ufk_snap_load(const char *path, struct ufk_snap_header *h,
                  struct ufk_snap_err *err);
/* The same from an open descriptor (read with pread from offset 0, so it
 * may share its offset); path names it in messages.  fd stays open. */
int ufk_snap_load_fd(int fd, const char *path, struct ufk_snap_header *h,
                     struct ufk_snap_err *err);
/* Checks every invariant of a header built in memory. */
int ufk_snap_validate(const struct ufk_snap_header *h, const char *name,
                      struct ufk_snap_err *err);
void ufk_snap_free(struct ufk_snap_header *h);

/* Bytes of the serialised header. */
size_t ufk_snap_serial_size(const struct ufk_snap_header *h);
/* Writes ufk_snap_serial_size(h) bytes to out. */
void ufk_snap_serialise(const struct ufk_snap_header *h, uint8_t *out);
/* Writes the header to fd; name is for messages.  Returns 0 or -1. */
int ufk_snap_write_fd(const struct ufk_snap_header *h, int fd, const char *name,
                      struct ufk_snap_err *err);

/* Index of the mapping holding off, or -1 if off is outside [0, size). */
long ufk_snap_find(const struct ufk_snap_header *h, uint64_t off);

/* The distinct non-nil builds of h, in order of first use.  *out is
 * malloc'd.  Returns 0, or -1 on allocation failure. */
int ufk_snap_builds(const struct ufk_snap_header *h,
                    struct ufk_snap_build **out, size_t *n);
/* For each mapping of h, the index of its build in b (as returned by
 * ufk_snap_builds for h), or UFK_SNAP_NO_BUILD for a nil mapping. */
#define UFK_SNAP_NO_BUILD UINT32_MAX
void ufk_snap_build_index(const struct ufk_snap_header *h,
                          const struct ufk_snap_build *b, size_t nb,
                          uint32_t *out);
/* Checks that a diff file of `have` bytes is long enough for build b of the
 * header `name`; `file` names the diff file. */
int ufk_snap_check_build_size(const struct ufk_snap_header *h,
                              const struct ufk_snap_build *b, uint64_t have,
                              const char *name, const char *file,
                              struct ufk_snap_err *err);
/* Replaces every {build_id} in tmpl with the id's string.  Returns a malloc'd
 * string, or NULL on allocation failure. */
char *ufk_snap_expand(const char *tmpl, const uint8_t id[16]);

/* E2B's MergeMappings: a two-pointer sweep in which diff entries win over
 * base entries wherever they overlap.  *out is malloc'd.  Returns 0 or -1
 * on allocation failure. */
int ufk_snap_merge(const struct ufk_snap_mapping *base, size_t nbase,
                   const struct ufk_snap_mapping *diff, size_t ndiff,
                   struct ufk_snap_mapping **out, size_t *nout);
/* Joins neighbours of one build whose storage is contiguous too (any nil
 * neighbours).  In place; returns the new count. */
size_t ufk_snap_normalize(struct ufk_snap_mapping *m, size_t n);

/* Runs of set bits of a block bitmap (bit i of word i/64 is block i) as
 * mappings of build id, storage packed in ascending block order. */
int ufk_snap_runs(const uint64_t *bits, uint64_t nblocks, uint64_t block_size,
                  const uint8_t id[16], struct ufk_snap_mapping **out,
                  size_t *n);

/* Builds generation N+1 of parent for build new_id: blocks in `empty` read
 * as zeros (empty wins over dirty), blocks in `dirty` come from the new
 * build's diff, which holds exactly the blocks of dirty & ~empty in
 * ascending order; the rest is inherited.  Either bitmap may be NULL. */
int ufk_snap_next(const struct ufk_snap_header *parent,
                  const uint8_t new_id[16], const uint64_t *dirty,
                  const uint64_t *empty, struct ufk_snap_header *out,
                  struct ufk_snap_err *err);

/* A generation 0 header of `size` bytes for build id: all zeros except the
 * blocks in `dirty`, stored in ascending order. */
int ufk_snap_first(uint64_t size, uint64_t block_size, const uint8_t id[16],
                   const uint64_t *dirty, struct ufk_snap_header *out,
                   struct ufk_snap_err *err);

#endif
