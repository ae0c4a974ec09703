/* The cache layer's dir entry check (plugins/cache/disk.c) on arbitrary
 * file contents.  The check is asked with the key, offset and length the
 * header itself names (so the fuzzer gets past them) and with others.  An
 * entry it accepts must be exactly header plus length bytes whose SHA-256
 * the header holds, and must stop being accepted when any of its bytes, the
 * key, the offset or the length asked for changes. */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk.h"
#include "fuzzcheck.h"

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v |= (uint64_t)p[i] << (8 * i);
  return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n) {
  uint8_t key[DISK_KEY_LEN] = {0};
  uint64_t off = 0, len = n > DISK_HEADER ? n - DISK_HEADER : 0;
  if (n >= DISK_HEADER) {
    off = get64(data + 8);
    len = get64(data + 16);
    memcpy(key, data + 24, DISK_KEY_LEN);
  }
  const char *why = disk_check(data, n, key, off, len);
  if (why) return 0;
  CHECK(n == DISK_HEADER + len, "accepted %zu bytes for length %llu", n,
        (unsigned long long)len);
  uint8_t sum[32];
  unsigned int sl = 32;
  EVP_Digest(data + DISK_HEADER, len, sum, &sl, EVP_sha256(), NULL);
  CHECK(!memcmp(sum, data + 56, 32), "accepted with another checksum");
  key[n % DISK_KEY_LEN] ^= 1;
  CHECK(disk_check(data, n, key, off, len), "accepted under another key");
  key[n % DISK_KEY_LEN] ^= 1;
  CHECK(disk_check(data, n, key, off + 1, len), "accepted at another offset");
  CHECK(disk_check(data, n, key, off, len + 1), "accepted another length");
  uint8_t *copy = malloc(n);
  memcpy(copy, data, n);
  size_t at = (size_t)(get64(sum) % n);
  copy[at] ^= 0x80;
  CHECK(disk_check(copy, n, key, off, len), "accepted with byte %zu changed",
        at);
  free(copy);
  return 0;
}
