/* Manifests: a snapshot's image as a list of chunk ids, one per chunk. */
#ifndef UFFDKIT_STORE_MANIFEST_H
#define UFFDKIT_STORE_MANIFEST_H

#include "format.h"

/* Parses and checks a whole manifest object.  Returns 0, or -1 with err set
 * and m left empty. */
int ufk_store_manifest_parse(const uint8_t *buf, size_t len, const char *name,
                             struct ufk_store_manifest *m,
                             struct ufk_store_err *err);
size_t ufk_store_manifest_size(const struct ufk_store_manifest *m);
/* Writes ufk_store_manifest_size(m) bytes. */
void ufk_store_manifest_put(const struct ufk_store_manifest *m, uint8_t *out);
void ufk_store_manifest_free(struct ufk_store_manifest *m);

#endif
