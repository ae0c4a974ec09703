/* The store manifest parser (common/store/manifest.c) on arbitrary bytes.
 *
 * A refusal has a message and keeps nothing.  A parsed manifest covers its
 * image with ceil(size / chunk size) chunks, each a zero chunk (no pack,
 * zero id) or a stored one (a listed pack, a non-zero id), and serialises
 * back to the same bytes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzcheck.h"
#include "manifest.h"
#include "object.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct ufk_store_manifest m;
  struct ufk_store_err err = {{0}};
  if (ufk_store_manifest_parse(data, size, "fuzz", &m, &err) < 0) {
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
  size_t n = ufk_store_manifest_size(&m);
  CHECK(n == size, "serialises to %zu bytes, parsed %zu", n, size);
  uint8_t *again = malloc(n);
  ufk_store_manifest_put(&m, again);
  CHECK(!memcmp(again, data, n), "does not serialise back to its bytes");
  free(again);
  ufk_store_manifest_free(&m);
  return 0;
}
