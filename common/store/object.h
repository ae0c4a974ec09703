/* What every store object shares: the header (magic, version, flags) and,
 * for metadata objects, the SHA-256 trailer. */
#ifndef UFFDKIT_STORE_OBJECT_H
#define UFFDKIT_STORE_OBJECT_H

#include <openssl/types.h>

#include "format.h"

__attribute__((format(printf, 2, 3))) int
ufk_store_fail(struct ufk_store_err *err, const char *fmt, ...);

/* Checks the header of object `name` (len bytes at buf) against magic and
 * the known version and flags; sets *flags.  Returns 0 or -1. */
int ufk_store_head_parse(const uint8_t *buf, size_t len, const char *magic,
                         const char *name, uint32_t *flags,
                         struct ufk_store_err *err);
void ufk_store_head_put(uint8_t *buf, const char *magic, uint32_t flags);

/* A manifest's or index's header: versions 1 and 2; sets *version. */
int ufk_store_meta_head_parse(const uint8_t *buf, size_t len, const char *magic,
                              const char *name, uint32_t *version,
                              uint32_t *flags, struct ufk_store_err *err);
void ufk_store_meta_head_put(uint8_t *buf, const char *magic, uint32_t flags);

struct ufk_store_keys;
/* Checks the MAC of a manifest or index (len bytes, MAC and checksum
 * included) whose header gave version and flags.  keys NULL: not checked
 * (a reader without the key of an encrypted store).  An encrypted store's
 * objects must be version 2, marked encrypted, with the HMAC-SHA-256 of
 * every byte before the MAC under the key's MAC key; a plain store's must
 * not be marked encrypted, and a version 2 object's MAC is zero. */
int ufk_store_mac_check(const struct ufk_store_keys *keys, const uint8_t *buf,
                        size_t len, uint32_t version, uint32_t flags,
                        const char *name, struct ufk_store_err *err);
/* Writes the MAC of buf[0..len) at buf + len (zeros with no key). */
void ufk_store_mac_put(const struct ufk_store_keys *keys, uint8_t *buf,
                       size_t len);

/* Checks that the last 32 bytes are the SHA-256 of the rest. */
int ufk_store_sum_check(const uint8_t *buf, size_t len, const char *name,
                        struct ufk_store_err *err);
/* Writes the SHA-256 of buf[0..len) at buf + len. */
void ufk_store_sum_put(uint8_t *buf, size_t len);

void ufk_store_sha256(const void *buf, size_t len, uint8_t out[UFK_STORE_ID]);
/* AES-256-GCM, for EVP_CipherInit_ex. */
const EVP_CIPHER *ufk_store_gcm(void);
/* Gives back the methods the two above fetched once: a plugin calls it
 * before it is unloaded, as what its statics point to would be lost. */
void ufk_store_crypto_release(void);

#endif
