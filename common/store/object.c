#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "keys.h"
#include "object.h"

int ufk_store_fail(struct ufk_store_err *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return -1;
}

static int check_flags(uint32_t flags, const char *name,
                       struct ufk_store_err *err) {
  if (flags & ~UFK_STORE_F_KNOWN)
    return ufk_store_fail(err, "%s: byte 12 (flags): unknown flags 0x%x", name,
                          flags & ~UFK_STORE_F_KNOWN);
  return 0;
}

int ufk_store_head_parse(const uint8_t *buf, size_t len, const char *magic,
                         const char *name, uint32_t *flags,
                         struct ufk_store_err *err) {
  if (len < UFK_STORE_HDR)
    return ufk_store_fail(err,
                          "%s: %zu bytes is too short for the %u-byte header "
                          "of a %s object",
                          name, len, UFK_STORE_HDR, magic);
  if (memcmp(buf, magic, 8))
    return ufk_store_fail(err, "%s: byte 0 (magic): not a %.8s object", name,
                          magic);
  uint32_t v = ufk_le32(buf + 8);
  if (v != UFK_STORE_VERSION)
    return ufk_store_fail(err,
                          "%s: byte 8 (version): %u is not a version this "
                          "build reads (%u)",
                          name, v, UFK_STORE_VERSION);
  *flags = ufk_le32(buf + 12);
  return check_flags(*flags, name, err);
}

int ufk_store_meta_head_parse(const uint8_t *buf, size_t len, const char *magic,
                              const char *name, uint32_t *version,
                              uint32_t *flags, struct ufk_store_err *err) {
  if (len < UFK_STORE_HDR)
    return ufk_store_fail(err,
                          "%s: %zu bytes is too short for the %u-byte header "
                          "of a %s object",
                          name, len, UFK_STORE_HDR, magic);
  if (memcmp(buf, magic, 8))
    return ufk_store_fail(err, "%s: byte 0 (magic): not a %.8s object", name,
                          magic);
  *version = ufk_le32(buf + 8);
  if (*version < 1 || *version > UFK_STORE_META_VERSION)
    return ufk_store_fail(err,
                          "%s: byte 8 (version): %u is not a version this "
                          "build reads (1, %u)",
                          name, *version, UFK_STORE_META_VERSION);
  *flags = ufk_le32(buf + 12);
  return check_flags(*flags, name, err);
}

void ufk_store_meta_head_put(uint8_t *buf, const char *magic, uint32_t flags) {
  memcpy(buf, magic, 8);
  ufk_put32(buf + 8, UFK_STORE_META_VERSION);
  ufk_put32(buf + 12, flags);
}

static void mac(const struct ufk_store_keys *k, const uint8_t *buf, size_t len,
                uint8_t out[UFK_STORE_ID]) {
  unsigned int n = UFK_STORE_ID;
  HMAC(EVP_sha256(), k->mac_key, UFK_STORE_ID, buf, len, out, &n);
}

int ufk_store_mac_check(const struct ufk_store_keys *keys, const uint8_t *buf,
                        size_t len, uint32_t version, uint32_t flags,
                        const char *name, struct ufk_store_err *err) {
  int enc = !!(flags & UFK_STORE_F_ENCRYPTED);
  if (!keys) return 0;
  if (keys->encrypted && version < 2)
    return ufk_store_fail(err,
                          "%s: byte 8 (version): version 1 carries no MAC, "
                          "and an encrypted store's manifests and indexes "
                          "must have one (version 2): import it again",
                          name);
  if (keys->encrypted != enc)
    return ufk_store_fail(err, "%s: byte 12 (flags): %s, in %s store", name,
                          enc ? "encrypted" : "not encrypted",
                          keys->encrypted ? "an encrypted" : "a plain");
  if (version < 2) return 0;
  size_t at = len - 2 * UFK_STORE_ID;
  uint8_t want[UFK_STORE_ID] = {0};
  if (enc) mac(keys, buf, at, want);
  if (CRYPTO_memcmp(want, buf + at, UFK_STORE_ID))
    return ufk_store_fail(err,
                          enc ? "%s: byte %zu (MAC): not the HMAC-SHA-256 of "
                                "the object under the store's key; it was not "
                                "written with this key (forged, or of another "
                                "store)"
                              : "%s: byte %zu (MAC): not zero in a plain store",
                          name, at);
  return 0;
}

void ufk_store_mac_put(const struct ufk_store_keys *keys, uint8_t *buf,
                       size_t len) {
  if (keys && keys->encrypted)
    mac(keys, buf, len, buf + len);
  else
    memset(buf + len, 0, UFK_STORE_ID);
}

void ufk_store_head_put(uint8_t *buf, const char *magic, uint32_t flags) {
  memcpy(buf, magic, 8);
  ufk_put32(buf + 8, UFK_STORE_VERSION);
  ufk_put32(buf + 12, flags);
}

static EVP_MD *sha256_md;
static EVP_CIPHER *gcm_cipher;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

/* Fetched once: EVP_sha256() and EVP_aes_256_gcm() make every digest and
 * every cipher look their implementation up again (OpenSSL 3), half the
 * cost of hashing a page's 128 bytes of sums and a third of sealing a
 * chunk.  They are given back by ufk_store_crypto_release. */
static void fetch(void) {
  sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
  gcm_cipher = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

void ufk_store_crypto_release(void) {
  EVP_MD_free(sha256_md);
  EVP_CIPHER_free(gcm_cipher);
  sha256_md = NULL; /* a later call falls back to EVP_sha256() */
  gcm_cipher = NULL;
}

const EVP_CIPHER *ufk_store_gcm(void) {
  pthread_once(&fetch_once, fetch);
  return gcm_cipher ? gcm_cipher : EVP_aes_256_gcm();
}

void ufk_store_sha256(const void *buf, size_t len, uint8_t out[UFK_STORE_ID]) {
  pthread_once(&fetch_once, fetch);
  unsigned int n = UFK_STORE_ID;
  EVP_Digest(buf, len, out, &n, sha256_md ? sha256_md : EVP_sha256(), NULL);
}

int ufk_store_sum_check(const uint8_t *buf, size_t len, const char *name,
                        struct ufk_store_err *err) {
  uint8_t sum[UFK_STORE_ID];
  if (len < UFK_STORE_ID)
    return ufk_store_fail(err, "%s: too short for its checksum", name);
  ufk_store_sha256(buf, len - UFK_STORE_ID, sum);
  if (memcmp(sum, buf + len - UFK_STORE_ID, UFK_STORE_ID))
    return ufk_store_fail(err,
                          "%s: byte %zu (checksum): the SHA-256 of the object "
                          "does not match; it is damaged",
                          name, len - UFK_STORE_ID);
  return 0;
}

void ufk_store_sum_put(uint8_t *buf, size_t len) {
  ufk_store_sha256(buf, len, buf + len);
}

int ufk_store_is_zero(const void *buf, size_t len) {
  const uint8_t *p = buf;
  if (len == 0) return 1;
  return p[0] == 0 && memcmp(p, p + 1, len - 1) == 0;
}

void ufk_store_hex(const uint8_t *b, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[b[i] >> 4];
    out[2 * i + 1] = digits[b[i] & 15];
  }
  out[2 * n] = 0;
}

static int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int ufk_store_unhex(const char *s, uint8_t *out, size_t n) {
  if (strlen(s) != 2 * n) return -1;
  for (size_t i = 0; i < n; i++) {
    int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

int ufk_store_chunk_size_ok(uint64_t v) {
  return v >= UFK_STORE_CHUNK_MIN && v <= UFK_STORE_CHUNK_MAX &&
         (v & (v - 1)) == 0;
}

int ufk_store_name_ok(const char *name) {
  size_t n = strlen(name);
  if (n == 0 || n > 128 || name[0] == '.') return 0;
  return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789._-") == n;
}
