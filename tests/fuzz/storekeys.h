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

static inline void fuzz_store_keys(const uint8_t *data, size_t size,
                                   struct ufk_store_keys *k) {
  uint8_t master[UFK_STORE_ID];
  memset(k, 0, sizeof *k);
  if (size < UFK_STORE_HDR || !(ufk_le32(data + 12) & UFK_STORE_F_ENCRYPTED) ||
      ufk_store_unhex(FUZZ_STORE_KEY, master, UFK_STORE_ID) < 0)
    return;
  ufk_store_keys_from(k, master);
}

#endif
