/* Pack indexes: where each chunk of one pack is and how it is stored. */
#ifndef UFFDKIT_STORE_INDEX_H
#define UFFDKIT_STORE_INDEX_H

#include "format.h"

struct ufk_store_keys;

/* Parses and checks a whole index object, its MAC with keys (see
 * ufk_store_mac_check; NULL: the MAC is not checked). */
int ufk_store_index_parse(const uint8_t *buf, size_t len, const char *name,
                          const struct ufk_store_keys *keys,
                          struct ufk_store_index *x, struct ufk_store_err *err);
/* Checks one entry against the index's chunk size, flags and pack size;
 * `at` is its byte offset, for the message. */
int ufk_store_entry_check(const struct ufk_store_index *x,
                          const struct ufk_store_entry *e, size_t at,
                          const char *name, struct ufk_store_err *err);
size_t ufk_store_index_size(const struct ufk_store_index *x);
/* Sorts the entries by id, then writes ufk_store_index_size(x) bytes, the
 * current version, with the MAC under keys (zeros for a plain store or
 * NULL). */
void ufk_store_index_put(struct ufk_store_index *x,
                         const struct ufk_store_keys *keys, uint8_t *out);
/* Binary search; NULL when the pack does not hold id. */
const struct ufk_store_entry *
ufk_store_index_find(const struct ufk_store_index *x,
                     const uint8_t id[UFK_STORE_ID]);
void ufk_store_index_free(struct ufk_store_index *x);

#endif
