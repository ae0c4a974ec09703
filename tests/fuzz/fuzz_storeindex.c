/* The store index parser (common/store/index.c) on arbitrary bytes.
 *
 * A refusal has a message.  A parsed index has its entries sorted by id,
 * unique and non-zero, each inside the pack's data with lengths its codec
 * allows; the binary search finds every entry; the index serialises back
 * to the same bytes (a version 1 one, to its body and a MAC); its MAC is
 * checked under the key the store would have (storekeys.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"
#include "index.h"
#include "object.h"
#include "storekeys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct ufk_store_index x;
  struct ufk_store_err err = {{0}};
  const struct ufk_store_keys *k = fuzz_store_keys(data, size);
  if (ufk_store_index_parse(data, size, "fuzz", k, &x, &err) < 0) {
    CHECK(err.msg[0], "refused without a message");
    CHECK(!x.entries, "a refused index keeps its entries");
    return 0;
  }
  uint32_t seal = x.flags & UFK_STORE_F_ENCRYPTED ? UFK_STORE_SEAL : 0;
  for (uint32_t i = 0; i < x.nentries; i++) {
    const struct ufk_store_entry *e = &x.entries[i];
    CHECK(i == 0 || memcmp(x.entries[i - 1].id, e->id, UFK_STORE_ID) < 0,
          "entry %u out of order", i);
    CHECK(!ufk_store_is_zero(e->id, UFK_STORE_ID), "entry %u: zero id", i);
    CHECK(e->offset >= UFK_STORE_PACK_HEAD &&
              e->offset + e->stored_len <= x.pack_bytes &&
              e->offset + e->stored_len >= e->offset,
          "entry %u outside the pack", i);
    CHECK(e->raw_len && e->raw_len <= x.chunk_size && e->raw_len % 4096 == 0,
          "entry %u: raw length %u", i, e->raw_len);
    CHECK(e->codec <= UFK_CODEC_LZ4, "entry %u: codec %u", i, e->codec);
    CHECK(e->codec != UFK_CODEC_RAW || e->stored_len == e->raw_len + seal,
          "entry %u: raw with %u stored bytes", i, e->stored_len);
    CHECK(ufk_store_index_find(&x, e->id) == e, "entry %u not found", i);
  }
  CHECK(x.version == 2 || !(x.flags & UFK_STORE_F_ENCRYPTED),
        "an encrypted version %u without a MAC", x.version);
  /* Written again it is the current version: the same bytes, or for
   * version 1 the same body with a MAC added. */
  size_t n = ufk_store_index_size(&x),
         extra = x.version == 1 ? UFK_STORE_ID : 0;
  CHECK(n == size + extra, "serialises to %zu bytes, parsed %zu", n, size);
  uint8_t *again = malloc(n);
  ufk_store_index_put(&x, k, again);
  if (extra)
    CHECK(!memcmp(again + 16, data + 16, size - 16 - UFK_STORE_ID),
          "version 1 does not serialise back to its body");
  else
    CHECK(!memcmp(again, data, n), "does not serialise back to its bytes");
  free(again);
  /* A reader without the key checks everything but the MAC. */
  struct ufk_store_index y;
  CHECK(ufk_store_index_parse(data, size, "fuzz", NULL, &y, &err) == 0,
        "refused without a key: %s", err.msg);
  ufk_store_index_free(&y);
  ufk_store_index_free(&x);
  return 0;
}
