#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "keys.h"
#include "object.h"

static void derive(const uint8_t master[UFK_STORE_ID], const char *label,
                   uint8_t out[UFK_STORE_ID]) {
  unsigned int n = UFK_STORE_ID;
  HMAC(EVP_sha256(), master, UFK_STORE_ID, (const uint8_t *)label,
       strlen(label), out, &n);
}

/* Keyed once: an id from a copy of this context costs less than half of
 * keying HMAC anew for it (docs/benchmark.md, "OpenSSL methods fetched
 * once"), and a miss of an encrypted store makes one.  NULL if it cannot
 * be made: ids are then keyed one by one. */
static EVP_MAC_CTX *keyed_mac(const uint8_t key[UFK_STORE_ID]) {
  EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
  EVP_MAC_free(mac);
  OSSL_PARAM p[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                     (char *)"SHA256", 0),
                    OSSL_PARAM_construct_end()};
  if (c && !EVP_MAC_init(c, key, UFK_STORE_ID, p)) {
    EVP_MAC_CTX_free(c);
    c = NULL;
  }
  return c;
}

void ufk_store_keys_from(struct ufk_store_keys *k,
                         const uint8_t master[UFK_STORE_ID]) {
  memset(k, 0, sizeof *k);
  k->encrypted = 1;
  derive(master, "uffdkit-store 1 chunk id", k->id_key);
  derive(master, "uffdkit-store 1 chunk key", k->enc_key);
  derive(master, "uffdkit-store 1 key check", k->check);
  derive(master, "uffdkit-store 2 metadata mac", k->mac_key);
  k->id_mac = keyed_mac(k->id_key);
}

/* 32 bytes as they are, or 64 hex digits and optional white space. */
static int parse_key(char *s, size_t n, uint8_t master[UFK_STORE_ID]) {
  if (n == UFK_STORE_ID) {
    memcpy(master, s, UFK_STORE_ID);
    return 0;
  }
  while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
    s[--n] = 0;
  return n == 2 * UFK_STORE_ID ? ufk_store_unhex(s, master, UFK_STORE_ID) : -1;
}

static int key_from_file(const char *path, uint8_t master[UFK_STORE_ID],
                         struct ufk_store_err *err) {
  char buf[130];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return ufk_store_fail(err, "key file %s: cannot open: %s", path,
                          strerror(errno));
  ssize_t n = read(fd, buf, sizeof buf - 1);
  int e = errno;
  close(fd);
  if (n < 0)
    return ufk_store_fail(err, "key file %s: cannot read: %s", path,
                          strerror(e));
  buf[n] = 0;
  int rc = parse_key(buf, (size_t)n, master);
  OPENSSL_cleanse(buf, sizeof buf);
  if (rc < 0)
    return ufk_store_fail(err,
                          "key file %s: %zd bytes; a key is 32 bytes or 64 "
                          "hex digits",
                          path, n);
  return 0;
}

int ufk_store_keys_load(struct ufk_store_keys *k, const char *file,
                        const char *env, struct ufk_store_err *err) {
  memset(k, 0, sizeof *k);
  uint8_t master[UFK_STORE_ID];
  if (file) {
    if (key_from_file(file, master, err) < 0) return -1;
  } else if (env) {
    const char *v = getenv(env);
    if (!v)
      return ufk_store_fail(err, "key variable %s: not set in the environment",
                            env);
    if (ufk_store_unhex(v, master, UFK_STORE_ID) < 0)
      return ufk_store_fail(err, "key variable %s: not 64 hex digits", env);
  } else {
    return 0;
  }
  ufk_store_keys_from(k, master);
  OPENSSL_cleanse(master, sizeof master);
  return 0;
}

int ufk_store_keys_match(struct ufk_store_keys *k,
                         const struct ufk_store_info *info, const char *name,
                         struct ufk_store_err *err) {
  int enc = !!(info->flags & UFK_STORE_F_ENCRYPTED);
  if (enc && !k->encrypted)
    return ufk_store_fail(err, "%s: the store is encrypted; give its key",
                          name);
  if (!enc && k->encrypted)
    return ufk_store_fail(err,
                          "%s: the store is not encrypted, but a key was "
                          "given",
                          name);
  if (enc && CRYPTO_memcmp(k->check, info->key_check, UFK_STORE_ID))
    return ufk_store_fail(err,
                          "%s: byte 24 (key check): the key given is "
                          "not the store's key",
                          name);
  k->page_sums = !!(info->flags & UFK_STORE_F_PAGE_SUMS);
  k->page_blocks = !!(info->flags & UFK_STORE_F_PAGE_BLOCKS);
  return 0;
}

static void id_of(const struct ufk_store_keys *k, const void *buf, size_t len,
                  uint8_t id[UFK_STORE_ID]) {
  if (!k->encrypted) {
    ufk_store_sha256(buf, len, id);
    return;
  }
  /* A copy: the keyed context is read by every thread at once, never
   * written. */
  EVP_MAC_CTX *c = k->id_mac ? EVP_MAC_CTX_dup(k->id_mac) : NULL;
  size_t got = 0;
  int ok = c && EVP_MAC_update(c, buf, len) &&
           EVP_MAC_final(c, id, &got, UFK_STORE_ID) && got == UFK_STORE_ID;
  EVP_MAC_CTX_free(c);
  unsigned int n = UFK_STORE_ID;
  if (!ok) HMAC(EVP_sha256(), k->id_key, UFK_STORE_ID, buf, len, id, &n);
}

void ufk_store_page_sums(const void *buf, size_t len, uint8_t *sums) {
  const uint8_t *p = buf;
  for (size_t at = 0; at < len; at += UFK_STORE_PAGE)
    ufk_store_sha256(p + at, UFK_STORE_PAGE,
                     sums + at / UFK_STORE_PAGE * UFK_STORE_ID);
}

void ufk_store_id_of_sums(const struct ufk_store_keys *k, const uint8_t *sums,
                          size_t nsums, uint8_t id[UFK_STORE_ID]) {
  id_of(k, sums, nsums, id);
}

void ufk_store_chunk_id_sums(const struct ufk_store_keys *k, const void *buf,
                             size_t len, uint8_t *sums,
                             uint8_t id[UFK_STORE_ID]) {
  if (!k->page_sums) {
    id_of(k, buf, len, id);
    return;
  }
  ufk_store_page_sums(buf, len, sums);
  id_of(k, sums, len / UFK_STORE_PAGE * UFK_STORE_ID, id);
}

void ufk_store_chunk_id(const struct ufk_store_keys *k, const void *buf,
                        size_t len, uint8_t id[UFK_STORE_ID]) {
  if (!k->page_sums) {
    id_of(k, buf, len, id);
    return;
  }
  /* A 4 MiB chunk has 32 KiB of sums: not for the stack of a worker. */
  size_t nsums = len / UFK_STORE_PAGE * UFK_STORE_ID;
  uint8_t *sums = malloc(nsums ? nsums : 1);
  if (!sums) { /* no chunk has this id: nothing is taken for another */
    memset(id, 0, UFK_STORE_ID);
    return;
  }
  ufk_store_page_sums(buf, len, sums);
  id_of(k, sums, nsums, id);
  free(sums);
}

void ufk_store_keys_wipe(struct ufk_store_keys *k) {
  EVP_MAC_CTX_free(k->id_mac);
  OPENSSL_cleanse(k, sizeof *k);
}
