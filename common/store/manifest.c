#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "manifest.h"
#include "object.h"

/* The MAC (version 2) and the checksum. */
static size_t trailer(uint32_t version) {
  return version >= 2 ? 2 * UFK_STORE_ID : UFK_STORE_ID;
}

static int check_head(const uint8_t *buf, size_t len, const char *name,
                      struct ufk_store_manifest *m, struct ufk_store_err *err) {
  if (ufk_store_meta_head_parse(buf, len, UFK_STORE_MAGIC_MANIFEST, name,
                                &m->version, &m->flags, err) < 0)
    return -1;
  if (len < UFK_STORE_MANIFEST_HEAD + trailer(m->version))
    return ufk_store_fail(err, "%s: %zu bytes is too short for a manifest",
                          name, len);
  m->image_size = ufk_le64(buf + 16);
  m->chunk_size = ufk_le32(buf + 24);
  m->npacks = ufk_le32(buf + 28);
  m->nchunks = ufk_le64(buf + 32);
  if (m->image_size == 0 || m->image_size % 4096)
    return ufk_store_fail(err,
                          "%s: byte 16 (image size): %llu is not a positive "
                          "multiple of 4096",
                          name, (unsigned long long)m->image_size);
  if (!ufk_store_chunk_size_ok(m->chunk_size))
    return ufk_store_fail(err,
                          "%s: byte 24 (chunk size): %u is not a power of two "
                          "in 4096..4194304",
                          name, m->chunk_size);
  uint64_t want = (m->image_size - 1) / m->chunk_size + 1;
  if (m->nchunks != want)
    return ufk_store_fail(err,
                          "%s: byte 32 (chunk count): %llu, but %llu bytes in "
                          "%u-byte chunks make %llu",
                          name, (unsigned long long)m->nchunks,
                          (unsigned long long)m->image_size, m->chunk_size,
                          (unsigned long long)want);
  if (ufk_le64(buf + 40))
    return ufk_store_fail(err, "%s: byte 40 (reserved): not zero", name);
  uint64_t room = len - UFK_STORE_MANIFEST_HEAD - trailer(m->version);
  if ((uint64_t)m->npacks > room / UFK_STORE_ID ||
      m->nchunks >
          (room - (uint64_t)m->npacks * UFK_STORE_ID) / UFK_STORE_REF_SIZE ||
      (uint64_t)m->npacks * UFK_STORE_ID + m->nchunks * UFK_STORE_REF_SIZE !=
          room)
    return ufk_store_fail(
        err,
        "%s: %zu bytes, but %u packs and %llu chunks need "
        "%llu",
        name, len, m->npacks, (unsigned long long)m->nchunks,
        (unsigned long long)(UFK_STORE_MANIFEST_HEAD + trailer(m->version) +
                             (uint64_t)m->npacks * UFK_STORE_ID +
                             m->nchunks * UFK_STORE_REF_SIZE));
  return ufk_store_sum_check(buf, len, name, err);
}

static int check_ref(const struct ufk_store_manifest *m,
                     const struct ufk_store_ref *r, uint64_t i, size_t at,
                     const char *name, struct ufk_store_err *err) {
  int zero = ufk_store_is_zero(r->id, UFK_STORE_ID);
  if (r->pack == UFK_STORE_NO_PACK && !zero)
    return ufk_store_fail(err,
                          "%s: byte %zu (chunk %llu): a zero chunk with an id",
                          name, at, (unsigned long long)i);
  if (r->pack == UFK_STORE_NO_PACK) return 0;
  if (r->pack >= m->npacks)
    return ufk_store_fail(err, "%s: byte %zu (chunk %llu): pack %u of %u packs",
                          name, at, (unsigned long long)i, r->pack, m->npacks);
  if (zero)
    return ufk_store_fail(err,
                          "%s: byte %zu (chunk %llu): a stored chunk without "
                          "an id",
                          name, at, (unsigned long long)i);
  return 0;
}

int ufk_store_manifest_parse(const uint8_t *buf, size_t len, const char *name,
                             const struct ufk_store_keys *keys,
                             struct ufk_store_manifest *m,
                             struct ufk_store_err *err) {
  memset(m, 0, sizeof *m);
  struct ufk_store_manifest h = {0};
  if (check_head(buf, len, name, &h, err) < 0 ||
      ufk_store_mac_check(keys, buf, len, h.version, h.flags, name, err) < 0)
    return -1;
  h.packs = malloc(h.npacks ? h.npacks * (size_t)UFK_STORE_ID : 1);
  h.refs = malloc(h.nchunks * sizeof *h.refs);
  if (!h.packs || !h.refs) {
    ufk_store_manifest_free(&h);
    return ufk_store_fail(err, "%s: out of memory", name);
  }
  size_t at = UFK_STORE_MANIFEST_HEAD;
  memcpy(h.packs, buf + at, h.npacks * (size_t)UFK_STORE_ID);
  at += h.npacks * (size_t)UFK_STORE_ID;
  for (uint64_t i = 0; i < h.nchunks; i++, at += UFK_STORE_REF_SIZE) {
    h.refs[i].pack = ufk_le32(buf + at);
    memcpy(h.refs[i].id, buf + at + 4, UFK_STORE_ID);
    if (check_ref(&h, &h.refs[i], i, at, name, err) < 0) {
      ufk_store_manifest_free(&h);
      return -1;
    }
  }
  *m = h;
  return 0;
}

size_t ufk_store_manifest_size(const struct ufk_store_manifest *m) {
  return UFK_STORE_MANIFEST_HEAD + m->npacks * (size_t)UFK_STORE_ID +
         m->nchunks * UFK_STORE_REF_SIZE + trailer(UFK_STORE_META_VERSION);
}

void ufk_store_manifest_put(const struct ufk_store_manifest *m,
                            const struct ufk_store_keys *keys, uint8_t *out) {
  memset(out, 0, UFK_STORE_MANIFEST_HEAD);
  ufk_store_meta_head_put(out, UFK_STORE_MAGIC_MANIFEST, m->flags);
  ufk_put64(out + 16, m->image_size);
  ufk_put32(out + 24, m->chunk_size);
  ufk_put32(out + 28, m->npacks);
  ufk_put64(out + 32, m->nchunks);
  size_t at = UFK_STORE_MANIFEST_HEAD;
  memcpy(out + at, m->packs, m->npacks * (size_t)UFK_STORE_ID);
  at += m->npacks * (size_t)UFK_STORE_ID;
  for (uint64_t i = 0; i < m->nchunks; i++, at += UFK_STORE_REF_SIZE) {
    ufk_put32(out + at, m->refs[i].pack);
    memcpy(out + at + 4, m->refs[i].id, UFK_STORE_ID);
  }
  ufk_store_mac_put(keys, out, at);
  ufk_store_sum_put(out, at + UFK_STORE_ID);
}

void ufk_store_manifest_free(struct ufk_store_manifest *m) {
  free(m->packs);
  free(m->refs);
  memset(m, 0, sizeof *m);
}
