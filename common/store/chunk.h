/* Chunks: compressed (zstd, LZ4) or raw, then sealed with AES-256-GCM when
 * the store is encrypted, and checked against their id when read. */
#ifndef UFFDKIT_STORE_CHUNK_H
#define UFFDKIT_STORE_CHUNK_H

#include "format.h"
#include "keys.h"

/* Most bytes ufk_store_chunk_encode writes for raw_len bytes. */
size_t ufk_store_encode_bound(uint32_t raw_len);

/* Levels: zstd 1 to 19; LZ4 1 (its fast mode) or 2 to 12 (LZ4HC, the same
 * block format, smaller and decoded as fast). */
#define UFK_STORE_ZSTD_LEVEL_MAX 19
#define UFK_STORE_LZ4_LEVEL_MAX 12

/* Encodes raw_len bytes (id already computed, and in a store with page
 * sums their sums when sums is not NULL, as ufk_store_chunk_id_sums left
 * them) with codec at level, keeping them raw when they do not compress;
 * fills e's id, lengths and codec.  out holds
 * ufk_store_encode_bound(raw_len) bytes.  Returns 0 or -1. */
int ufk_store_chunk_encode(const struct ufk_store_keys *k, int codec, int level,
                           const uint8_t id[UFK_STORE_ID], const uint8_t *sums,
                           const void *raw, uint32_t raw_len, uint8_t *out,
                           struct ufk_store_entry *e,
                           struct ufk_store_err *err);

/* Decodes e's stored bytes into out (e->raw_len bytes) and checks them:
 * all of them against e->id, or in a store with page sums, the sums
 * against e->id and then the pages covering out[from, from + len) against
 * their sums; *sums (when sums is not NULL) is then set to the sums, inside
 * stored, for checking the other pages later (ufk_store_pages_check), or to
 * NULL when the whole chunk was checked.  err's message does not name the
 * chunk (the caller, who knows where it is, prefixes that, on the failure
 * only).  stored may be changed (decrypted in place).  stored may equal out
 * for a raw chunk of a plain store without page sums: then nothing is
 * copied.  Returns 0, or -1 when the bytes are not the chunk's (out then
 * holds nothing to use). */
int ufk_store_chunk_decode_part(const struct ufk_store_keys *k,
                                const struct ufk_store_entry *e,
                                uint8_t *stored, void *out, uint64_t from,
                                uint64_t len, const uint8_t **sums,
                                struct ufk_store_err *err);
/* The same, checking the whole chunk. */
int ufk_store_chunk_decode(const struct ufk_store_keys *k,
                           const struct ufk_store_entry *e, uint8_t *stored,
                           void *out, struct ufk_store_err *err);

/* In a store with page sums: checks the GCM tag (encrypted) and the page
 * sums against e->id, and sets *sums to them and *body, *n to the bytes
 * after them (decrypted in place in stored): in a store with page blocks
 * the block table and the blocks of a compressed chunk, whose lengths are
 * checked to fill them exactly; else the codec's bytes.  Returns 0 or
 * -1. */
int ufk_store_chunk_open(const struct ufk_store_keys *k,
                         const struct ufk_store_entry *e, uint8_t *stored,
                         const uint8_t **sums, const uint8_t **body, size_t *n,
                         struct ufk_store_err *err);
/* In a store with page blocks: decodes bytes [from, from + len) of the
 * chunk whose blocks ufk_store_chunk_open gave (body, n bytes; a raw
 * chunk's bytes) into out, which receives exactly those bytes: each page
 * they cover is decoded alone and, when check is set, compared with its
 * sum before any byte of it is kept (a whole page straight into out).  n
 * may exceed the blocks (a buffer holding them).  Returns 0 or -1 (err
 * names the page). */
int ufk_store_blocks_read(const struct ufk_store_entry *e, const uint8_t *sums,
                          const uint8_t *body, size_t n, uint64_t from,
                          uint64_t len, void *out, int check,
                          struct ufk_store_err *err);

/* Checks the pages of a decoded chunk (data) that cover [from, from + len)
 * against their sums.  Returns 0 or -1 (err names the page). */
int ufk_store_pages_check(const uint8_t *sums, const uint8_t *data,
                          uint64_t from, uint64_t len,
                          struct ufk_store_err *err);

#endif
