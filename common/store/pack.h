/* Pack objects: a header, then the stored bytes of chunks back to back. */
#ifndef UFFDKIT_STORE_PACK_H
#define UFFDKIT_STORE_PACK_H

#include "format.h"

/* Parses the first UFK_STORE_PACK_HEAD bytes of a pack (len may be more). */
int ufk_store_pack_parse(const uint8_t *buf, size_t len, const char *name,
                         struct ufk_store_pack_head *p,
                         struct ufk_store_err *err);
void ufk_store_pack_put(const struct ufk_store_pack_head *p, uint8_t *out);
/* Checks that a pack of `have` bytes with header p is the one index x
 * describes, whole. */
int ufk_store_pack_match(const struct ufk_store_pack_head *p,
                         const struct ufk_store_index *x, uint64_t have,
                         const char *name, struct ufk_store_err *err);

#endif
