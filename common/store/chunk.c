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
  size_t n = compress(codec, level, raw, raw_len, body, cap);
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

int ufk_store_pages_check(const uint8_t *sums, const uint8_t *data,
                          uint64_t from, uint64_t len,
                          struct ufk_store_err *err) {
  uint64_t first = from / UFK_STORE_PAGE,
           end = (from + len + UFK_STORE_PAGE - 1) / UFK_STORE_PAGE;
  for (uint64_t j = first; j < end; j++) {
    uint8_t sum[UFK_STORE_ID];
    ufk_store_sha256(data + j * UFK_STORE_PAGE, UFK_STORE_PAGE, sum);
    if (CRYPTO_memcmp(sum, sums + j * UFK_STORE_ID, UFK_STORE_ID))
      return ufk_store_fail(err,
                            "page %llu (bytes %llu+%u of the chunk) does not "
                            "hash to its page sum",
                            (unsigned long long)j,
                            (unsigned long long)(j * UFK_STORE_PAGE),
                            UFK_STORE_PAGE);
  }
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
