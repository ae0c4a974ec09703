/* Snapshot memory header, versions 1-5 (the E2B / Wrenn memfile.header).
 *
 * Little-endian, no magic: 64 bytes of metadata, then for versions 1-3 N
 * 40-byte mappings, so such a file is exactly 64 + 40 N bytes long.
 * Versions 4 and 5 follow the metadata with a flags byte, the inner block's
 * length and the inner block as one LZ4 frame: build entries (size, SHA-256,
 * codec and frame table of each build's diff) and the mappings (V4: 40-byte
 * records; V5: varint columns in 4 KiB pages).  Each mapping sends a range
 * of guest memory to a range of one build's (uncompressed) diff, or to zeros
 * when its build id is nil.  The header of a generation is flattened: it
 * alone resolves every offset, whatever ancestor the bytes live in.
 *
 * The code is split by concern: snapheader.c (metadata, v1-3 layout,
 * validation, lookup), snapmerge.c (building generations), snapv4.c (the
 * V4/V5 container and build entries), snapv5.c (varint mappings) and
 * snapframe.c (frame tables and the zstd / lz4 codecs).
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
#define UFK_SNAP_VERSION_MAX 5u
#define UFK_SNAP_VERSION_WRITE 3u
/* Metadata, flags byte and the inner block's length. */
#define UFK_SNAP_V4_PREFIX 69u
/* Largest inner block (E2B's cap since 2026-05-28). */
#define UFK_SNAP_INNER_MAX (256u << 20)
/* Unit of V4/V5 mappings, whatever the block size (E2B header.PageSize). */
#define UFK_SNAP_PAGE 4096u
#define UFK_SNAP_MAX_FRAMES 1048576u
#define UFK_SNAP_V5_MAX_BUILDS 65535u
#define UFK_SNAP_V5_MAX_ENTRIES 8388608u
/* Flag bit 0: IncompletePendingUpload, the data is not in storage yet. */
#define UFK_SNAP_FLAG_INCOMPLETE 1u

enum ufk_snap_codec {
  UFK_SNAP_CODEC_NONE = 0,
  UFK_SNAP_CODEC_ZSTD = 1,
  UFK_SNAP_CODEC_LZ4 = 2,
};
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

/* One frame of a compressed diff: bytes [start_u, start_u + size_u) of the
 * uncompressed diff ("U space") are one codec frame at [start_c, start_c +
 * size_c) of the compressed object ("C space"). */
struct ufk_snap_frame {
  uint64_t start_u;
  uint64_t start_c;
  uint32_t size_u; /* > 0, below 2^31 */
  uint32_t size_c;
};

/* A V4/V5 BuildEntry.  codec 0 or no frames: the build is stored
 * uncompressed.  Size 0 and an all-zero checksum mean unknown. */
struct ufk_snap_entry {
  uint8_t build_id[16];
  uint64_t size;        /* bytes of the uncompressed diff */
  uint8_t checksum[32]; /* SHA-256 of those bytes */
  uint32_t codec;
  size_t nframes;
  struct ufk_snap_frame *frames; /* owned, ascending in both spaces */
};

struct ufk_snap_header {
  uint64_t version; /* the format is version & 0xFFFF from 4 on */
  uint64_t block_size;
  uint64_t size;
  uint64_t generation;
  uint8_t build_id[16];
  uint8_t base_build_id[16];
  size_t nmappings;
  struct ufk_snap_mapping *mappings; /* owned, free with ufk_snap_free */
  /* V4/V5 only. */
  uint8_t flags;
  size_t nentries;
  struct ufk_snap_entry *entries; /* owned, unique build ids */
};

/* One build a header reads from, with the diff length it needs. */
struct ufk_snap_build {
  uint8_t id[16];
  uint64_t need;      /* bytes of its diff file the mappings reach */
  size_t need_entry;  /* index of the mapping that reaches furthest */
  uint64_t bytes;     /* guest bytes it serves */
  size_t first_entry; /* index of its first mapping */
};

/* Writes the message into err; returns -1. */
int ufk_snap_fail(struct ufk_snap_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

int ufk_snap_is_nil(const uint8_t id[16]);
void ufk_snap_id_str(const uint8_t id[16], char out[UFK_SNAP_UUID_STR]);

/* The layout number: 1-3, 4 or 5 (Version & 0xFFFF from 4 on). */
unsigned ufk_snap_format(const struct ufk_snap_header *h);
/* Alignment of mapping offsets and lengths: the block size for versions 1-3,
 * 4 KiB for V4/V5, whose mappings are page-granular. */
uint64_t ufk_snap_granule(const struct ufk_snap_header *h);

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

/* Bytes of the serialised header in the layout of versions 1-3. */
size_t ufk_snap_serial_size(const struct ufk_snap_header *h);
/* Writes ufk_snap_serial_size(h) bytes to out (versions 1-3 only). */
void ufk_snap_serialise(const struct ufk_snap_header *h, uint8_t *out);
/* The serialised header of any version (V4/V5: LZ4-compressed inner block,
 * V5 mappings as varints) in a malloc'd *out of *len bytes. */
int ufk_snap_encode(const struct ufk_snap_header *h, uint8_t **out, size_t *len,
                    struct ufk_snap_err *err);
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

/* ---- V4/V5 build entries and frames (snapframe.c) ---- */

/* h's entry for build id, or NULL. */
const struct ufk_snap_entry *ufk_snap_entry_of(const struct ufk_snap_header *h,
                                               const uint8_t id[16]);
/* Whether the build of e is stored compressed (a codec and frames). */
int ufk_snap_compressed(const struct ufk_snap_entry *e);
/* Index of the frame of e holding byte u of the diff, or -1 (past the
 * table, or in a gap of a trimmed table). */
long ufk_snap_frame_find(const struct ufk_snap_entry *e, uint64_t u);
/* 1 if frames of e hold every byte of [u, u + len), else 0 and *gap is the
 * first byte not held. */
int ufk_snap_frames_cover(const struct ufk_snap_entry *e, uint64_t u,
                          uint64_t len, uint64_t *gap);
/* Checks the parse rules of entry i (codec, frame count and order); base is
 * its byte offset in the inner block, for messages. */
int ufk_snap_check_entry(const struct ufk_snap_entry *e, size_t i, size_t base,
                         const char *name, struct ufk_snap_err *err);
/* Object name suffix of a codec: "", ".zstd" or ".lz4" ("memfile.zstd"). */
const char *ufk_snap_codec_suffix(uint32_t codec);
const char *ufk_snap_codec_name(uint32_t codec);
/* Decodes one codec frame of srclen bytes into exactly dstlen bytes: the
 * frame must end exactly at srclen, its checksum (zstd content checksum,
 * lz4 block/content checksums) must hold and it must decode to dstlen bytes,
 * no more, no less.  Returns 0, or -1 with the reason in why. */
int ufk_snap_decode_frame(uint32_t codec, const void *src, size_t srclen,
                          void *dst, size_t dstlen, char *why, size_t whylen);
/* Compresses len bytes as one frame like E2B's writer (zstd: content size
 * and checksum; lz4: independent blocks with block checksums).  *out is
 * malloc'd.  Returns 0 or -1 (allocation or codec failure). */
int ufk_snap_encode_frame(uint32_t codec, int level, const void *src,
                          size_t len, void **out, size_t *outlen);
/* Keeps in each entry only the frames a mapping of its build reaches, drops
 * entries of builds no mapping references except h's own (E2B's
 * TrimToRanges).  Returns 0, or -1 on allocation failure. */
int ufk_snap_trim(struct ufk_snap_header *h);
/* Deep copy of an entry into *out.  Returns 0 or -1. */
int ufk_snap_entry_copy(const struct ufk_snap_entry *e,
                        struct ufk_snap_entry *out);
void ufk_snap_entry_free(struct ufk_snap_entry *e);

/* ---- which entry a build is read with (snapresolve.c) ---- */

/* 1 if e's frames hold every range of its build that h's mappings read (or
 * e is uncompressed); else 0 with the mapping and the first byte missing. */
int ufk_snap_entry_covers(const struct ufk_snap_header *h,
                          const struct ufk_snap_entry *e, size_t *bad,
                          uint64_t *gap);
/* Loads build id's own header into *own: returns 0, 1 if the build has no
 * header (a legacy uncompressed build), or -1 with err set. */
typedef int (*ufk_snap_own_header_fn)(void *opaque, const uint8_t id[16],
                                      struct ufk_snap_header *own,
                                      struct ufk_snap_err *err);
/* The entry to read build id of h with, as a copy in *out (free it with
 * ufk_snap_entry_free): h's own entry when its frames hold all h reads; no
 * entry for h's own build means uncompressed; a missing or gapped ancestor
 * entry is taken from the build's own header through own_header (v1-3 or no
 * header: uncompressed; V4/V5: its entry for itself).  Versions 1-3: always
 * uncompressed.  name is h's file, for messages. */
int ufk_snap_resolve(const struct ufk_snap_header *h, const uint8_t id[16],
                     ufk_snap_own_header_fn own_header, void *opaque,
                     const char *name, struct ufk_snap_entry *out,
                     struct ufk_snap_err *err);

/* E2B's rescue when an entry without frames proves false (the build has no
 * uncompressed diff): the build's own header's entry for itself, which must
 * be compressed and hold all h reads.  Returns 0 with *out, or -1. */
int ufk_snap_rescue(const struct ufk_snap_header *h, const uint8_t id[16],
                    ufk_snap_own_header_fn own_header, void *opaque,
                    const char *name, struct ufk_snap_entry *out,
                    struct ufk_snap_err *err);

#endif
