/* The store format (docs/store-format.md): content-addressed, compressed,
 * optionally encrypted chunks of memory images, packed into pack objects
 * with an index, and manifests mapping an image's offsets to chunk ids.
 *
 * Every object starts with an 8-byte magic, a 32-bit version and 32-bit
 * flags, all little-endian.  Metadata objects (store, manifest, index) end
 * with the SHA-256 of every byte before it; manifests and indexes (version
 * 2) have a MAC before it.  Every parser checks each field
 * against the length it was given and reports what was wrong and where
 * (object name, byte offset, field) in a struct ufk_store_err.
 */
#ifndef UFFDKIT_STORE_FORMAT_H
#define UFFDKIT_STORE_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define UFK_STORE_VERSION 1u /* the store object and packs */
/* Manifests and indexes: version 2 carries a MAC (an HMAC-SHA-256 under
 * the store's key when it is encrypted, zeros when not) before the
 * checksum.  Version 1 (no MAC) is read only in a plain store. */
#define UFK_STORE_META_VERSION 2u
#define UFK_STORE_ID 32u  /* bytes of a chunk id, a pack id, a checksum */
#define UFK_STORE_HDR 16u /* magic, version, flags */
#define UFK_STORE_NONCE 12u
#define UFK_STORE_TAG 16u
#define UFK_STORE_SEAL (UFK_STORE_NONCE + UFK_STORE_TAG)
#define UFK_STORE_CHUNK_MIN 4096u
#define UFK_STORE_CHUNK_MAX (4u << 20)
#define UFK_STORE_NO_PACK 0xFFFFFFFFu /* manifest: an all-zero chunk */
/* The largest manifest or index: a reader loads each whole, and refuses
 * more; the importer cuts packs and refuses snapshots to stay within it.
 * A manifest takes 36 bytes a chunk, so this bounds an image to about
 * 57 GiB in 4 KiB chunks, 228 GiB in 16 KiB, 3.6 TiB in 256 KiB. */
#ifndef UFK_STORE_META_MAX /* a test build sets a small one */
#define UFK_STORE_META_MAX ((uint64_t)512 << 20)
#endif

#define UFK_STORE_F_ENCRYPTED (1u << 0)
/* Chunk ids are made over the SHA-256 of each 4 KiB page, and those page
 * sums are stored with each chunk, so a read checks only the pages it
 * serves (docs/store-format.md, "Page sums"). */
#define UFK_STORE_F_PAGE_SUMS (1u << 1)
/* With page sums: each page of a compressed chunk is compressed on its own,
 * so a read decodes only the pages it serves (docs/store-format.md, "Page
 * blocks"). */
#define UFK_STORE_F_PAGE_BLOCKS (1u << 2)
#define UFK_STORE_F_KNOWN                                                      \
  (UFK_STORE_F_ENCRYPTED | UFK_STORE_F_PAGE_SUMS | UFK_STORE_F_PAGE_BLOCKS)
#define UFK_STORE_PAGE 4096u

enum ufk_store_codec {
  UFK_CODEC_RAW = 0,
  UFK_CODEC_ZSTD = 1,
  UFK_CODEC_LZ4 = 2,
};

#define UFK_STORE_MAGIC_STORE "UFKSTORE"
#define UFK_STORE_MAGIC_MANIFEST "UFKSMANI"
#define UFK_STORE_MAGIC_INDEX "UFKSINDX"
#define UFK_STORE_MAGIC_PACK "UFKSPACK"

/* Fixed sizes of the serialised parts. */
#define UFK_STORE_INFO_SIZE (UFK_STORE_HDR + 8u + UFK_STORE_ID + UFK_STORE_ID)
#define UFK_STORE_MANIFEST_HEAD 48u
#define UFK_STORE_REF_SIZE (4u + UFK_STORE_ID)
#define UFK_STORE_INDEX_HEAD 64u
#define UFK_STORE_ENTRY_SIZE 56u
#define UFK_STORE_PACK_HEAD 64u

struct ufk_store_err {
  char msg[512];
};

/* The object "store" at the root: settings every import must share. */
struct ufk_store_info {
  uint32_t flags;
  uint32_t chunk_size;
  uint8_t key_check[UFK_STORE_ID]; /* zero unless encrypted */
};

/* One chunk of a manifest: the pack it is read from (an index into the
 * manifest's pack list) and its id, or UFK_STORE_NO_PACK and a zero id. */
struct ufk_store_ref {
  uint32_t pack;
  uint8_t id[UFK_STORE_ID];
};

struct ufk_store_manifest {
  uint32_t version; /* as read; written: UFK_STORE_META_VERSION */
  uint32_t flags;
  uint32_t chunk_size;
  uint64_t image_size;
  uint64_t nchunks; /* ceil(image_size / chunk_size) */
  uint32_t npacks;
  uint8_t (*packs)[UFK_STORE_ID]; /* owned */
  struct ufk_store_ref *refs;     /* owned, nchunks */
};

/* Where a chunk is in its pack and how it is stored. */
struct ufk_store_entry {
  uint8_t id[UFK_STORE_ID];
  uint64_t offset; /* of its stored bytes in the pack file */
  uint32_t stored_len;
  uint32_t raw_len;
  uint8_t codec;
};

struct ufk_store_index {
  uint32_t version; /* as read; written: UFK_STORE_META_VERSION */
  uint32_t flags;
  uint32_t chunk_size;
  uint8_t pack[UFK_STORE_ID];
  uint64_t pack_bytes; /* size of the pack file */
  uint32_t nentries;
  struct ufk_store_entry *entries; /* owned, sorted by id, unique */
};

struct ufk_store_pack_head {
  uint32_t flags;
  uint8_t pack[UFK_STORE_ID];
  uint32_t nchunks;
  uint64_t pack_bytes;
};

/* Little-endian fields. */
static inline uint16_t ufk_le16(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}
static inline void ufk_put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline uint32_t ufk_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
         (uint32_t)p[3] << 24;
}
static inline uint64_t ufk_le64(const uint8_t *p) {
  return (uint64_t)ufk_le32(p) | (uint64_t)ufk_le32(p + 4) << 32;
}
static inline void ufk_put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline void ufk_put64(uint8_t *p, uint64_t v) {
  ufk_put32(p, (uint32_t)v);
  ufk_put32(p + 4, (uint32_t)(v >> 32));
}

/* Bytes of page sums stored with a chunk of raw_len bytes (a multiple of
 * UFK_STORE_PAGE) in a store with these flags. */
static inline uint32_t ufk_store_sums_len(uint32_t flags, uint32_t raw_len) {
  return flags & UFK_STORE_F_PAGE_SUMS ? raw_len / UFK_STORE_PAGE * UFK_STORE_ID
                                       : 0;
}

int ufk_store_is_zero(const void *buf, size_t len);
/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void ufk_store_hex(const uint8_t *b, size_t n, char *out);
/* Parses exactly 2n hex digits.  Returns 0 or -1. */
int ufk_store_unhex(const char *s, uint8_t *out, size_t n);
/* A chunk size the format accepts: a power of two in 4 KiB..4 MiB. */
int ufk_store_chunk_size_ok(uint64_t v);
/* A snapshot name: [A-Za-z0-9._-], 1 to 128 characters, not starting with
 * a dot. */
int ufk_store_name_ok(const char *name);

#endif
