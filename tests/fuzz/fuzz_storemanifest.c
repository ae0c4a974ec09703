/* The store manifest parser (common/store/manifest.c) on arbitrary bytes.
 *
 * A refusal has a message and keeps nothing.  A parsed manifest covers its
 * image with ceil(size / chunk size) chunks, each a zero chunk (no pack,
 * zero id) or a stored one (a listed pack, a non-zero id), and serialises
 * back to the same bytes (a version 1 one, to its body and a MAC); its MAC is
 * checked under the key the store would have (storekeys.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"
#include "manifest.h"
#include "object.h"
#include "storekeys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct ufk_store_manifest m;
  struct ufk_store_err err = {{0}};
  const struct ufk_store_keys *k = fuzz_store_keys(data, size);
  if (ufk_store_manifest_parse(data, size, "fuzz", k, &m, &err) < 0) {
    CHECK(err.msg[0], "refused without a message");
    CHECK(!m.refs && !m.packs, "a refused manifest keeps its parts");
    return 0;
  }
  CHECK(m.nchunks == (m.image_size + m.chunk_size - 1) / m.chunk_size,
        "%llu chunks for %llu bytes", (unsigned long long)m.nchunks,
        (unsigned long long)m.image_size);
  CHECK(ufk_store_chunk_size_ok(m.chunk_size), "chunk size %u", m.chunk_size);
  for (uint64_t i = 0; i < m.nchunks; i++) {
    const struct ufk_store_ref *r = &m.refs[i];
    int zero = ufk_store_is_zero(r->id, UFK_STORE_ID);
    if (r->pack == UFK_STORE_NO_PACK)
      CHECK(zero, "zero chunk %llu has an id", (unsigned long long)i);
    else
      CHECK(r->pack < m.npacks && !zero, "chunk %llu: pack %u of %u",
            (unsigned long long)i, r->pack, m.npacks);
  }
  CHECK(m.version == 2 || !(m.flags & UFK_STORE_F_ENCRYPTED),
        "an encrypted version %u without a MAC", m.version);
  /* Written again it is the current version: the same bytes, or for
   * version 1 the same body with a MAC added. */
  size_t n = ufk_store_manifest_size(&m),
         extra = m.version == 1 ? UFK_STORE_ID : 0;
  CHECK(n == size + extra, "serialises to %zu bytes, parsed %zu", n, size);
  uint8_t *again = malloc(n);
  ufk_store_manifest_put(&m, k, again);
  if (extra)
    CHECK(!memcmp(again + 16, data + 16, size - 16 - UFK_STORE_ID),
          "version 1 does not serialise back to its body");
  else
    CHECK(!memcmp(again, data, n), "does not serialise back to its bytes");
  free(again);
  /* A reader without the key checks everything but the MAC. */
  struct ufk_store_manifest y;
  CHECK(ufk_store_manifest_parse(data, size, "fuzz", NULL, &y, &err) == 0,
        "refused without a key: %s", err.msg);
  ufk_store_manifest_free(&y);
  ufk_store_manifest_free(&m);
  return 0;
}
