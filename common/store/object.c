#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "object.h"

int ufk_store_fail(struct ufk_store_err *err, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return -1;
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
  if (*flags & ~UFK_STORE_F_KNOWN)
    return ufk_store_fail(err, "%s: byte 12 (flags): unknown flags 0x%x", name,
                          *flags & ~UFK_STORE_F_KNOWN);
  return 0;
}

void ufk_store_head_put(uint8_t *buf, const char *magic, uint32_t flags) {
  memcpy(buf, magic, 8);
  ufk_put32(buf + 8, UFK_STORE_VERSION);
  ufk_put32(buf + 12, flags);
}

void ufk_store_sha256(const void *buf, size_t len, uint8_t out[UFK_STORE_ID]) {
  unsigned int n = UFK_STORE_ID;
  EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL);
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
