/* Keys of an encrypted store.  One 256-bit master key (a file of 32 bytes
 * or 64 hex digits, or an environment variable of 64 hex digits) gives, by
 * HMAC-SHA-256 with fixed labels, the key that makes chunk ids, the
 * AES-256-GCM key of chunks, and the key check kept in the store object. */
#ifndef UFFDKIT_STORE_KEYS_H
#define UFFDKIT_STORE_KEYS_H

#include <openssl/types.h>

#include "format.h"

struct ufk_store_keys {
  int encrypted;
  int page_sums;   /* the store's chunk ids are over page sums */
  int page_blocks; /* and its chunks' pages are compressed each alone */
  uint8_t id_key[UFK_STORE_ID];
  uint8_t enc_key[UFK_STORE_ID];
  uint8_t check[UFK_STORE_ID];
  uint8_t mac_key[UFK_STORE_ID]; /* of manifests and indexes */
  EVP_MAC_CTX *id_mac; /* keyed with id_key, or NULL: ids keyed one by one */
};

/* Loads the key from file (if not NULL) or else the variable env (if not
 * NULL); with neither, no encryption.  Returns 0 or -1.  k is written over
 * whole, as by ufk_store_keys_from: keys it held are wiped first. */
int ufk_store_keys_load(struct ufk_store_keys *k, const char *file,
                        const char *env, struct ufk_store_err *err);
/* The keys of master key `master` (32 bytes). */
void ufk_store_keys_from(struct ufk_store_keys *k,
                         const uint8_t master[UFK_STORE_ID]);
/* Checks that k is the key of the store described by info (name, for the
 * message): no key for a plain store, the right one for an encrypted one;
 * then takes the store's way of making chunk ids (page sums or not). */
int ufk_store_keys_match(struct ufk_store_keys *k,
                         const struct ufk_store_info *info, const char *name,
                         struct ufk_store_err *err);
/* A chunk's id: SHA-256, or HMAC-SHA-256 under the id key when encrypted,
 * of its bytes, or with page sums of its page sums.  len: a multiple of
 * UFK_STORE_PAGE with page sums.  All zeros (no chunk's id) when out of
 * memory. */
void ufk_store_chunk_id(const struct ufk_store_keys *k, const void *buf,
                        size_t len, uint8_t id[UFK_STORE_ID]);
/* The same, leaving the page sums (len / UFK_STORE_PAGE * UFK_STORE_ID
 * bytes) in sums when the store has them, for ufk_store_chunk_encode. */
void ufk_store_chunk_id_sums(const struct ufk_store_keys *k, const void *buf,
                             size_t len, uint8_t *sums,
                             uint8_t id[UFK_STORE_ID]);
/* The SHA-256 of each UFK_STORE_PAGE bytes of buf[0..len) into sums. */
void ufk_store_page_sums(const void *buf, size_t len, uint8_t *sums);
/* The id of a chunk from its page sums (nsums bytes). */
void ufk_store_id_of_sums(const struct ufk_store_keys *k, const uint8_t *sums,
                          size_t nsums, uint8_t id[UFK_STORE_ID]);
/* Frees what ufk_store_keys_from or _load made and wipes the keys. */
void ufk_store_keys_wipe(struct ufk_store_keys *k);

#endif
