/* Manifests: a snapshot's image as a list of chunk ids, one per chunk. */
#ifndef UFFDKIT_STORE_MANIFEST_H
#define UFFDKIT_STORE_MANIFEST_H

#include "format.h"

struct ufk_store_keys;

/* Parses and checks a whole manifest object, its MAC with keys (see
 * ufk_store_mac_check; NULL: the MAC is not checked).  Returns 0, or -1
 * with err set and m left empty. */
int ufk_store_manifest_parse(const uint8_t *buf, size_t len, const char *name,
                             const struct ufk_store_keys *keys,
                             struct ufk_store_manifest *m,
                             struct ufk_store_err *err);
/* The size of m written (the current version). */
size_t ufk_store_manifest_size(const struct ufk_store_manifest *m);
/* Writes ufk_store_manifest_size(m) bytes, the current version, with the
 * MAC under keys (zeros for a plain store or NULL). */
void ufk_store_manifest_put(const struct ufk_store_manifest *m,
                            const struct ufk_store_keys *keys, uint8_t *out);
void ufk_store_manifest_free(struct ufk_store_manifest *m);

#endif
