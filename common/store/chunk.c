#include <pthread.h>
#include <string.h>

#include <lz4.h>
#include <lz4hc.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <zstd.h>

#include "chunk.h"
#include "object.h"

/* One zstd context per thread, kept: making one per chunk costs more than
 * decoding a small chunk. */
static pthread_key_t dctx_key, cctx_key, hc_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void free_dctx(void *p) {
  ZSTD_freeDCtx(p);
}
static void free_cctx(void *p) {
  ZSTD_freeCCtx(p);
}
static void make_keys(void) {
  pthread_key_create(&dctx_key, free_dctx);
  pthread_key_create(&cctx_key, free_cctx);
  pthread_key_create(&hc_key, free);
}

/* LZ4HC's state, 256 KiB: LZ4_compress_HC allocates one per call, which
 * costs an import more than some of its chunks take to compress. */
static void *hc_state(void) {
  pthread_once(&ctx_once, make_keys);
  void *st = pthread_getspecific(hc_key);
  if (!st && (st = malloc((size_t)LZ4_sizeofStateHC())))
    pthread_setspecific(hc_key, st);
  return st;
}

static ZSTD_DCtx *dctx(void) {
  pthread_once(&ctx_once, make_keys);
  ZSTD_DCtx *c = pthread_getspecific(dctx_key);
  if (!c && (c = ZSTD_createDCtx())) pthread_setspecific(dctx_key, c);
  return c;
}

static ZSTD_CCtx *cctx(void) {
  pthread_once(&ctx_once, make_keys);
  ZSTD_CCtx *c = pthread_getspecific(cctx_key);
  if (!c && (c = ZSTD_createCCtx())) pthread_setspecific(cctx_key, c);
  return c;
}

size_t ufk_store_encode_bound(uint32_t raw_len) {
  size_t z = ZSTD_compressBound(raw_len);
  size_t l = (size_t)LZ4_compressBound((int)raw_len);
  size_t m = z > l ? z : l;
  return (m > raw_len ? m : raw_len) + UFK_STORE_SEAL +
         ufk_store_sums_len(UFK_STORE_F_PAGE_SUMS, raw_len);
}

_Static_assert(UFK_STORE_LZ4_LEVEL_MAX == LZ4HC_CLEVEL_MAX,
               "the LZ4 levels the importer takes");

/* Compressed length, or 0 when the codec failed or did not shrink them. */
static size_t compress(int codec, int level, const void *raw, uint32_t n,
                       uint8_t *out, size_t cap) {
  if (codec == UFK_CODEC_ZSTD) {
    ZSTD_CCtx *c = cctx();
    size_t r = c ? ZSTD_compressCCtx(c, out, cap, raw, n, level) : 0;
    return ZSTD_isError(r) || r >= n ? 0 : r;
  }
  if (codec == UFK_CODEC_LZ4) {
    /* Level 2 and up: LZ4HC, whose blocks decode as fast or faster and
     * hold a fifth less (docs/benchmark.md). */
    if (level > UFK_STORE_LZ4_LEVEL_MAX) level = UFK_STORE_LZ4_LEVEL_MAX;
    void *st = level > 1 ? hc_state() : NULL;
    if (level > 1 && !st) return 0;
    int r = level > 1
                ? LZ4_compress_HC_extStateHC(st, raw, (char *)out, (int)n,
                                             (int)cap, level)
                : LZ4_compress_default(raw, (char *)out, (int)n, (int)cap);
    return r <= 0 || (uint32_t)r >= n ? 0 : (size_t)r;
  }
  return 0;
}

/* Page blocks: a table of each page's block length (2 bytes; a length of
 * UFK_STORE_PAGE is the page kept raw), then the blocks.  Their length, or
 * 0 when they would not be shorter than the chunk raw. */
static size_t compress_blocks(int codec, int level, const uint8_t *raw,
                              uint32_t n, uint8_t *out, size_t cap) {
  uint32_t pages = n / UFK_STORE_PAGE;
  size_t at = (size_t)pages * 2;
  for (uint32_t j = 0; j < pages && at < n && at <= cap; j++) {
    const uint8_t *page = raw + (size_t)j * UFK_STORE_PAGE;
    size_t c = compress(codec, level, page, UFK_STORE_PAGE, out + at, cap - at);
    if (!c) {
      if (cap - at < UFK_STORE_PAGE) return 0;
      memcpy(out + at, page, UFK_STORE_PAGE);
      c = UFK_STORE_PAGE;
    }
    ufk_put16(out + 2 * j, (uint16_t)c);
    at += c;
  }
  return at < n ? at : 0;
}

/* Additional data of the seal: what the index says of the chunk. */
static void aad_of(const struct ufk_store_entry *e, uint8_t aad[40]) {
  memcpy(aad, e->id, UFK_STORE_ID);
  ufk_put32(aad + 32, e->raw_len);
  ufk_put32(aad + 36, e->codec);
}

static int gcm(int enc, const struct ufk_store_keys *k,
               const struct ufk_store_entry *e, const uint8_t *nonce,
               const uint8_t *in, int n, uint8_t *out, uint8_t *tag) {
  uint8_t aad[40];
  aad_of(e, aad);
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int len, ok = c && EVP_CipherInit_ex(c, ufk_store_gcm(), NULL, k->enc_key,
                                       nonce, enc) == 1;
  ok = ok && EVP_CipherUpdate(c, NULL, &len, aad, sizeof aad) == 1;
  ok = ok && EVP_CipherUpdate(c, out, &len, in, n) == 1;
  if (ok && !enc)
    ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, UFK_STORE_TAG, tag) == 1;
  ok = ok && EVP_CipherFinal_ex(c, out + len, &len) == 1;
  if (ok && enc)
    ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, UFK_STORE_TAG, tag) == 1;
  EVP_CIPHER_CTX_free(c);
  return ok ? 0 : -1;
}

int ufk_store_chunk_encode(const struct ufk_store_keys *k, int codec, int level,
                           const uint8_t id[UFK_STORE_ID], const uint8_t *sums,
                           const void *raw, uint32_t raw_len, uint8_t *out,
                           struct ufk_store_entry *e,
                           struct ufk_store_err *err) {
  size_t pre = k->encrypted ? UFK_STORE_NONCE : 0;
  size_t nsums =
      k->page_sums ? ufk_store_sums_len(UFK_STORE_F_PAGE_SUMS, raw_len) : 0;
  size_t cap = ufk_store_encode_bound(raw_len) - UFK_STORE_SEAL -
               ufk_store_sums_len(UFK_STORE_F_PAGE_SUMS, raw_len);
  memset(e, 0, sizeof *e);
  memcpy(e->id, id, UFK_STORE_ID);
  e->raw_len = raw_len;
  if (nsums && sums)
    memcpy(out + pre, sums, nsums);
  else if (nsums)
    ufk_store_page_sums(raw, raw_len, out + pre);
  uint8_t *body = out + pre + nsums;
  size_t n = k->page_blocks
                 ? compress_blocks(codec, level, raw, raw_len, body, cap)
                 : compress(codec, level, raw, raw_len, body, cap);
  e->codec = n ? (uint8_t)codec : UFK_CODEC_RAW;
  if (!n) {
    memcpy(body, raw, raw_len);
    n = raw_len;
  }
  n += nsums; /* what is sealed: the page sums and the codec's bytes */
  e->stored_len = (uint32_t)(n + (k->encrypted ? UFK_STORE_SEAL : 0));
  if (!k->encrypted) return 0;
  if (RAND_bytes(out, UFK_STORE_NONCE) != 1 ||
      gcm(1, k, e, out, out + pre, (int)n, out + pre, out + pre + n) < 0)
    return ufk_store_fail(err, "cannot encrypt a chunk (OpenSSL failed)");
  return 0;
}

static int expand(const struct ufk_store_entry *e, const uint8_t *src, size_t n,
                  void *out) {
  if (e->codec == UFK_CODEC_ZSTD) {
    ZSTD_DCtx *c = dctx();
    size_t r = c ? ZSTD_decompressDCtx(c, out, e->raw_len, src, n) : 0;
    return !ZSTD_isError(r) && r == e->raw_len ? 0 : -1;
  }
  if (e->codec == UFK_CODEC_LZ4)
    return LZ4_decompress_safe((const char *)src, out, (int)n,
                               (int)e->raw_len) == (int)e->raw_len
               ? 0
               : -1;
  if (n != e->raw_len) return -1; /* before copying: out holds raw_len */
  if (src != out) memcpy(out, src, n);
  return 0;
}

static const char *codec_name(uint8_t c) {
  return c == UFK_CODEC_ZSTD ? "zstd" : c == UFK_CODEC_LZ4 ? "lz4" : "raw";
}

/* Checks the GCM tag of a sealed chunk and decrypts it: in place, or
 * straight into out for a raw chunk without page sums (out holds raw_len
 * bytes and no more: GCM writes the plaintext before it checks the tag).
 * Sets *src and *n to the plaintext. */
static int unseal(const struct ufk_store_keys *k,
                  const struct ufk_store_entry *e, uint8_t *stored, void *out,
                  const uint8_t **src, size_t *n, struct ufk_store_err *err) {
  size_t sums =
      k->page_sums ? ufk_store_sums_len(UFK_STORE_F_PAGE_SUMS, e->raw_len) : 0;
  if (*n < UFK_STORE_SEAL)
    return ufk_store_fail(err, "%zu bytes, too short to be sealed", *n);
  *n -= UFK_STORE_SEAL;
  if ((e->codec == UFK_CODEC_RAW && *n != e->raw_len + sums) || *n > INT32_MAX)
    return ufk_store_fail(err,
                          "sealed %s data of %zu bytes cannot hold a "
                          "chunk of %u bytes",
                          codec_name(e->codec), *n, e->raw_len);
  uint8_t *plain =
      e->codec == UFK_CODEC_RAW && !sums ? out : stored + UFK_STORE_NONCE;
  if (gcm(0, k, e, stored, stored + UFK_STORE_NONCE, (int)*n, plain,
          stored + UFK_STORE_NONCE + *n) < 0)
    return ufk_store_fail(err, "AES-256-GCM tag does not match (a wrong key "
                               "or damaged bytes)");
  *src = plain;
  return 0;
}

/* got, the id of what was read (`what`: the bytes or their page sums),
 * must be the id the entry names. */
static int id_check(const struct ufk_store_entry *e,
                    const uint8_t got[UFK_STORE_ID], const char *what,
                    struct ufk_store_err *err) {
  if (!CRYPTO_memcmp(got, e->id, UFK_STORE_ID)) return 0;
  char want[2 * UFK_STORE_ID + 1];
  ufk_store_hex(e->id, UFK_STORE_ID, want);
  return ufk_store_fail(err, "the %s do not hash to the chunk id %s", what,
                        want);
}

/* With page sums: the sums at the start of the plaintext must give the
 * chunk's id; they are then the check of each page. */
static int take_sums(const struct ufk_store_keys *k,
                     const struct ufk_store_entry *e, const uint8_t **src,
                     size_t *n, const uint8_t **sums,
                     struct ufk_store_err *err) {
  size_t len = ufk_store_sums_len(UFK_STORE_F_PAGE_SUMS, e->raw_len);
  if (*n < len)
    return ufk_store_fail(err,
                          "%zu bytes, too short for the %zu bytes of "
                          "page sums of a chunk of %u bytes",
                          *n, len, e->raw_len);
  uint8_t id[UFK_STORE_ID];
  ufk_store_id_of_sums(k, *src, len, id);
  if (id_check(e, id, "page sums", err) < 0) return -1;
  *sums = *src;
  *src += len;
  *n -= len;
  return 0;
}

/* Page j (at page) against its sum. */
static int page_check(const uint8_t *sums, uint64_t j, const uint8_t *page,
                      struct ufk_store_err *err) {
  uint8_t sum[UFK_STORE_ID];
  ufk_store_sha256(page, UFK_STORE_PAGE, sum);
  if (!CRYPTO_memcmp(sum, sums + j * UFK_STORE_ID, UFK_STORE_ID)) return 0;
  return ufk_store_fail(err,
                        "page %llu (bytes %llu+%u of the chunk) does not "
                        "hash to its page sum",
                        (unsigned long long)j,
                        (unsigned long long)(j * UFK_STORE_PAGE),
                        UFK_STORE_PAGE);
}

/* The blocks of a chunk's pages in its codec bytes (body, n bytes: the
 * lengths, then the blocks; or a raw chunk's bytes), read page by page. */
struct blocks {
  const uint8_t *body;
  size_t n, at; /* the next page's block starts at `at` */
  uint32_t pages, j;
  int raw;
};

/* Starts at page j.  -1 when the lengths do not fit. */
static int blocks_at(struct blocks *b, const struct ufk_store_entry *e,
                     const uint8_t *body, size_t n, uint32_t j) {
  *b = (struct blocks){.body = body,
                       .n = n,
                       .pages = e->raw_len / UFK_STORE_PAGE,
                       .j = j,
                       .raw = e->codec == UFK_CODEC_RAW};
  if (b->raw) {
    b->at = (size_t)j * UFK_STORE_PAGE;
    return n < e->raw_len ? -1 : 0;
  }
  b->at = (size_t)b->pages * 2;
  if (n < b->at) return -1;
  for (uint32_t q = 0; q < j; q++)
    b->at += ufk_le16(body + 2 * q);
  return 0;
}

/* The next page's block, or -1 when it lies outside the bytes. */
static int blocks_next(struct blocks *b, const uint8_t **src, size_t *len) {
  *len = b->raw ? UFK_STORE_PAGE : ufk_le16(b->body + 2 * b->j);
  if (b->j >= b->pages || *len == 0 || *len > UFK_STORE_PAGE || b->at > b->n ||
      *len > b->n - b->at)
    return -1;
  *src = b->body + b->at;
  b->at += *len;
  b->j++;
  return 0;
}

static int expand_block(uint8_t codec, const uint8_t *src, size_t n,
                        uint8_t *out) {
  if (n == UFK_STORE_PAGE) {
    memcpy(out, src, n);
    return 0;
  }
  if (codec == UFK_CODEC_ZSTD) {
    ZSTD_DCtx *c = dctx();
    size_t r = c ? ZSTD_decompressDCtx(c, out, UFK_STORE_PAGE, src, n) : 0;
    return !ZSTD_isError(r) && r == UFK_STORE_PAGE ? 0 : -1;
  }
  if (codec == UFK_CODEC_LZ4)
    return LZ4_decompress_safe((const char *)src, (char *)out, (int)n,
                               UFK_STORE_PAGE) == UFK_STORE_PAGE
               ? 0
               : -1;
  return -1;
}

/* The next page of the chunk into out (UFK_STORE_PAGE bytes), checked
 * against its sum when check is set. */
static int next_page(struct blocks *b, uint8_t codec, const uint8_t *sums,
                     uint8_t *out, int check, struct ufk_store_err *err) {
  const uint8_t *src;
  size_t len;
  uint32_t j = b->j;
  if (blocks_next(b, &src, &len) < 0)
    return ufk_store_fail(err,
                          "page %u: its block lies outside the chunk's %zu "
                          "bytes of blocks",
                          j, b->n);
  if (expand_block(codec, src, len, out) < 0)
    return ufk_store_fail(err,
                          "page %u: %s block of %zu bytes does not decode "
                          "to %u bytes",
                          j, codec_name(codec), len, UFK_STORE_PAGE);
  return check ? page_check(sums, j, out, err) : 0;
}

int ufk_store_blocks_read(const struct ufk_store_entry *e, const uint8_t *sums,
                          const uint8_t *body, size_t n, uint64_t from,
                          uint64_t len, void *out, int check,
                          struct ufk_store_err *err) {
  if (from > e->raw_len || len > e->raw_len - from)
    return ufk_store_fail(err, "bytes %llu+%llu are outside the chunk of %u",
                          (unsigned long long)from, (unsigned long long)len,
                          e->raw_len);
  struct blocks b;
  if (blocks_at(&b, e, body, n, (uint32_t)(from / UFK_STORE_PAGE)) < 0)
    return ufk_store_fail(err, "%zu bytes cannot hold the chunk's blocks", n);
  uint8_t *dst = out, page[UFK_STORE_PAGE];
  for (uint64_t at = from, end = from + len; at < end;) {
    uint64_t in = at % UFK_STORE_PAGE, take = UFK_STORE_PAGE - in;
    if (take > end - at) take = end - at;
    /* A whole page goes straight to its place; a part, through page. */
    int whole = take == UFK_STORE_PAGE;
    if (next_page(&b, e->codec, sums, whole ? dst : page, check, err) < 0)
      return -1;
    if (!whole) memcpy(dst, page + in, take);
    dst += take;
    at += take;
  }
  return 0;
}

int ufk_store_chunk_open(const struct ufk_store_keys *k,
                         const struct ufk_store_entry *e, uint8_t *stored,
                         const uint8_t **sums, const uint8_t **body, size_t *n,
                         struct ufk_store_err *err) {
  *body = stored;
  *n = e->stored_len;
  if (!k->page_sums)
    return ufk_store_fail(err, "a chunk of a store without page sums");
  if (k->encrypted && unseal(k, e, stored, NULL, body, n, err) < 0) return -1;
  if (take_sums(k, e, body, n, sums, err) < 0) return -1;
  /* The table and the blocks must fill the bytes exactly: what a reader
   * keeps is then what the importer wrote, and no more. */
  if (e->codec == UFK_CODEC_RAW ? *n != e->raw_len : *n >= e->raw_len)
    return ufk_store_fail(err, "%s data of %zu bytes cannot hold a chunk of %u",
                          codec_name(e->codec), *n, e->raw_len);
  if (e->codec == UFK_CODEC_RAW || !k->page_blocks) return 0;
  struct blocks b;
  const uint8_t *src;
  size_t last;
  if (blocks_at(&b, e, *body, *n, e->raw_len / UFK_STORE_PAGE - 1) < 0 ||
      blocks_next(&b, &src, &last) < 0 || b.at != *n)
    return ufk_store_fail(err,
                          "the block lengths do not add up to the chunk's %zu "
                          "bytes of blocks",
                          *n);
  return 0;
}

int ufk_store_pages_check(const uint8_t *sums, const uint8_t *data,
                          uint64_t from, uint64_t len,
                          struct ufk_store_err *err) {
  uint64_t first = from / UFK_STORE_PAGE,
           end = (from + len + UFK_STORE_PAGE - 1) / UFK_STORE_PAGE;
  for (uint64_t j = first; j < end; j++)
    if (page_check(sums, j, data + j * UFK_STORE_PAGE, err) < 0) return -1;
  return 0;
}

int ufk_store_chunk_decode_part(const struct ufk_store_keys *k,
                                const struct ufk_store_entry *e,
                                uint8_t *stored, void *out, uint64_t from,
                                uint64_t len, const uint8_t **sums,
                                struct ufk_store_err *err) {
  const uint8_t *src = stored, *page_sums = NULL;
  size_t n = e->stored_len;
  if (from > e->raw_len || len > e->raw_len - from)
    return ufk_store_fail(err, "bytes %llu+%llu are outside the chunk of %u",
                          (unsigned long long)from, (unsigned long long)len,
                          e->raw_len);
  if (k->page_blocks) {
    if (ufk_store_chunk_open(k, e, stored, &page_sums, &src, &n, err) < 0 ||
        ufk_store_blocks_read(e, page_sums, src, n, from, len,
                              (uint8_t *)out + from, 1, err) < 0)
      return -1;
    if (sums) *sums = page_sums;
    return 0;
  }
  if (k->encrypted && unseal(k, e, stored, out, &src, &n, err) < 0) return -1;
  if (k->page_sums && take_sums(k, e, &src, &n, &page_sums, err) < 0) return -1;
  if (expand(e, src, n, out) < 0)
    return ufk_store_fail(err,
                          "%s data of %zu bytes does not decode to "
                          "%u bytes",
                          codec_name(e->codec), n, e->raw_len);
  if (sums) *sums = page_sums;
  if (page_sums) return ufk_store_pages_check(page_sums, out, from, len, err);
  uint8_t id[UFK_STORE_ID];
  ufk_store_chunk_id(k, out, e->raw_len, id);
  return id_check(e, id, "bytes", err);
}

int ufk_store_chunk_decode(const struct ufk_store_keys *k,
                           const struct ufk_store_entry *e, uint8_t *stored,
                           void *out, struct ufk_store_err *err) {
  return ufk_store_chunk_decode_part(k, e, stored, out, 0, e->raw_len, NULL,
                                     err);
}
