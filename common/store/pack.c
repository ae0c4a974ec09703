#include <string.h>

#include "object.h"
#include "pack.h"

int ufk_store_pack_parse(const uint8_t *buf, size_t len, const char *name,
                         struct ufk_store_pack_head *p,
                         struct ufk_store_err *err) {
  memset(p, 0, sizeof *p);
  if (ufk_store_head_parse(buf, len, UFK_STORE_MAGIC_PACK, name, &p->flags,
                           err) < 0)
    return -1;
  if (len < UFK_STORE_PACK_HEAD)
    return ufk_store_fail(err,
                          "%s: %zu bytes is too short for a pack header (%u)",
                          name, len, UFK_STORE_PACK_HEAD);
  memcpy(p->pack, buf + 16, UFK_STORE_ID);
  p->nchunks = ufk_le32(buf + 48);
  p->pack_bytes = ufk_le64(buf + 56);
  if (ufk_le32(buf + 52))
    return ufk_store_fail(err, "%s: byte 52 (reserved): not zero", name);
  if (p->pack_bytes < UFK_STORE_PACK_HEAD)
    return ufk_store_fail(err,
                          "%s: byte 56 (pack size): %llu is less than its "
                          "header",
                          name, (unsigned long long)p->pack_bytes);
  if (p->nchunks > p->pack_bytes - UFK_STORE_PACK_HEAD)
    return ufk_store_fail(err,
                          "%s: byte 48 (chunk count): %u chunks cannot fit in "
                          "%llu bytes",
                          name, p->nchunks, (unsigned long long)p->pack_bytes);
  return 0;
}

void ufk_store_pack_put(const struct ufk_store_pack_head *p, uint8_t *out) {
  memset(out, 0, UFK_STORE_PACK_HEAD);
  ufk_store_head_put(out, UFK_STORE_MAGIC_PACK, p->flags);
  memcpy(out + 16, p->pack, UFK_STORE_ID);
  ufk_put32(out + 48, p->nchunks);
  ufk_put64(out + 56, p->pack_bytes);
}

int ufk_store_pack_match(const struct ufk_store_pack_head *p,
                         const struct ufk_store_index *x, uint64_t have,
                         const char *name, struct ufk_store_err *err) {
  if (memcmp(p->pack, x->pack, UFK_STORE_ID))
    return ufk_store_fail(err,
                          "%s: byte 16 (pack id): not the pack its index "
                          "describes",
                          name);
  if (p->flags != x->flags)
    return ufk_store_fail(err, "%s: byte 12 (flags): 0x%x, its index has 0x%x",
                          name, p->flags, x->flags);
  if (p->nchunks != x->nentries || p->pack_bytes != x->pack_bytes)
    return ufk_store_fail(err,
                          "%s: %u chunks in %llu bytes, its index says %u in "
                          "%llu",
                          name, p->nchunks, (unsigned long long)p->pack_bytes,
                          x->nentries, (unsigned long long)x->pack_bytes);
  if (have != p->pack_bytes)
    return ufk_store_fail(err, "%s: %llu bytes, its header says %llu (%s)",
                          name, (unsigned long long)have,
                          (unsigned long long)p->pack_bytes,
                          have < p->pack_bytes ? "truncated" : "extra bytes");
  return 0;
}
