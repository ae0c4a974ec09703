/* The keys the store fuzz targets and fuzz-seeds parse manifests and
 * indexes with, as a reader of the store would have them: a plain store's
 * when the object says it is not encrypted, else FUZZ_STORE_KEY (the
 * encrypted seeds were written under it by uffdkit-snap store import
 * --key-file, a file of these 64 hex digits). */
#ifndef UFFDKIT_FUZZ_STOREKEYS_H
#define UFFDKIT_FUZZ_STOREKEYS_H

#include <string.h>

#include "format.h"
#include "keys.h"

#define FUZZ_STORE_KEY                                                         \
  "f022a11ce0ffee00112233445566778899aabbccddeeff0123456789abcdef01"

/* Made once and kept (a keyed context is allocated with them), so no
 * input costs a key derivation or leaves anything behind. */
static inline const struct ufk_store_keys *fuzz_store_keys(const uint8_t *data,
                                                           size_t size) {
  static struct ufk_store_keys plain, keyed;
  uint8_t master[UFK_STORE_ID];
  if (size < UFK_STORE_HDR || !(ufk_le32(data + 12) & UFK_STORE_F_ENCRYPTED))
    return &plain;
  if (!keyed.encrypted &&
      ufk_store_unhex(FUZZ_STORE_KEY, master, UFK_STORE_ID) == 0)
    ufk_store_keys_from(&keyed, master);
  return &keyed;
}

#endif
