/* Start of a store source: the store object and the key, the snapshot's
 * manifest, the index of every pack it lists, and each pack checked
 * against its index (a truncated pack is refused here, whole). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index.h"
#include "info.h"
#include "internal.h"
#include "layer.h"
#include "manifest.h"
#include "object.h"
#include "pack.h"

/* Reads a whole metadata object into a malloc'd buffer. */
static int load_object(struct store *s, const char *name, uint8_t **buf,
                       size_t *len, char **shown) {
  struct object o;
  int rc = obj_open(s, &o, name);
  if (rc == 0 && o.size > UFK_STORE_META_MAX)
    rc = ufk_fail(host, EFBIG,
                  "%s: %llu bytes, more than the %llu a store's metadata "
                  "object may have (uffdkit-snap writes none larger)",
                  o.shown, (unsigned long long)o.size,
                  (unsigned long long)UFK_STORE_META_MAX);
  *buf = rc == 0 ? malloc(o.size ? o.size : 1) : NULL;
  if (rc == 0 && !*buf) rc = ufk_fail(host, ENOMEM, "out of memory");
  if (rc == 0 && o.size) rc = obj_read(&o, *buf, o.size, 0, 0);
  *len = (size_t)o.size;
  *shown = o.shown;
  o.shown = NULL;
  obj_close(&o);
  if (rc < 0) {
    free(*buf);
    *buf = NULL;
  }
  return rc;
}

static int load_info(struct store *s) {
  uint8_t *buf;
  size_t len;
  char *shown;
  struct ufk_store_err err;
  int rc = load_object(s, "store", &buf, &len, &shown);
  if (rc == 0 && (ufk_store_info_parse(buf, len, shown, &s->info, &err) < 0 ||
                  ufk_store_keys_match(&s->keys, &s->info, shown, &err) < 0))
    rc = ufk_fail(host, EINVAL, "%s", err.msg);
  free(buf);
  free(shown);
  return rc;
}

static int load_manifest(struct store *s) {
  char name[160];
  snprintf(name, sizeof name, "snapshots/%s", s->snapshot);
  uint8_t *buf;
  size_t len;
  char *shown;
  struct ufk_store_err err;
  int rc = load_object(s, name, &buf, &len, &shown);
  if (rc == 0 &&
      ufk_store_manifest_parse(buf, len, shown, &s->keys, &s->m, &err) < 0)
    rc = ufk_fail(host, EINVAL, "%s", err.msg);
  if (rc == 0 &&
      (s->m.flags != s->info.flags || s->m.chunk_size != s->info.chunk_size))
    rc = ufk_fail(host, EINVAL,
                  "%s: flags 0x%x and chunk size %u, the store's are 0x%x "
                  "and %u",
                  shown, s->m.flags, s->m.chunk_size, s->info.flags,
                  s->info.chunk_size);
  if (rc == 0) ufk_store_sha256(buf, len, s->manifest_sum);
  free(buf);
  free(shown);
  return rc;
}

static int load_index(struct store *s, struct pack *p, const char *hex) {
  char name[160];
  snprintf(name, sizeof name, "packs/%s.idx", hex);
  uint8_t *buf;
  size_t len;
  char *shown;
  struct ufk_store_err err;
  int rc = load_object(s, name, &buf, &len, &shown);
  if (rc == 0 &&
      ufk_store_index_parse(buf, len, shown, &s->keys, &p->idx, &err) < 0)
    rc = ufk_fail(host, EINVAL, "%s", err.msg);
  if (rc == 0 && (p->idx.flags != s->info.flags ||
                  p->idx.chunk_size != s->info.chunk_size))
    rc = ufk_fail(host, EINVAL, "%s: flags or chunk size are not the store's",
                  shown);
  if (rc == 0 && memcmp(p->idx.pack, s->m.packs[p - s->packs], UFK_STORE_ID))
    rc = ufk_fail(host, EINVAL, "%s: byte 16 (pack id): not pack %s", shown,
                  hex);
  free(buf);
  free(shown);
  return rc;
}

static int open_pack(struct store *s, struct pack *p, const char *hex) {
  char name[160];
  snprintf(name, sizeof name, "packs/%s.pack", hex);
  if (obj_open(s, &p->obj, name) < 0) return -1;
  uint8_t head[UFK_STORE_PACK_HEAD];
  uint64_t n = p->obj.size < sizeof head ? p->obj.size : sizeof head;
  struct ufk_store_pack_head h;
  struct ufk_store_err err;
  if (n && obj_read(&p->obj, head, n, 0, 0) < 0) return -1;
  if (ufk_store_pack_parse(head, n, p->obj.shown, &h, &err) < 0 ||
      ufk_store_pack_match(&h, &p->idx, p->obj.size, p->obj.shown, &err) < 0)
    return ufk_fail(host, EINVAL, "%s", err.msg);
  return 0;
}

/* Each chunk to its index entry, which must hold the chunk's length. */
static int resolve(struct store *s) {
  const struct ufk_store_manifest *m = &s->m;
  for (uint64_t i = 0; i < m->nchunks; i++) {
    const struct ufk_store_ref *r = &m->refs[i];
    if (r->pack == UFK_STORE_NO_PACK) continue;
    const struct pack *p = &s->packs[r->pack];
    const struct ufk_store_entry *e = ufk_store_index_find(&p->idx, r->id);
    uint64_t left = m->image_size - i * m->chunk_size;
    uint64_t want = left < m->chunk_size ? left : m->chunk_size;
    if (!e || e->raw_len != want)
      return ufk_fail(
          host, EINVAL, "snapshots/%s: chunk %llu (byte %llu) is %s %s",
          s->snapshot, (unsigned long long)i,
          (unsigned long long)(UFK_STORE_MANIFEST_HEAD +
                               m->npacks * (uint64_t)UFK_STORE_ID +
                               i * UFK_STORE_REF_SIZE),
          e ? "of another length in" : "not in the index of", p->obj.shown);
    s->entry[i] = e;
    s->pack_of[i] = r->pack;
  }
  return 0;
}

int store_load(struct store *s) {
  if (load_info(s) < 0 || load_manifest(s) < 0) return -1;
  s->packs = calloc(s->m.npacks + 1, sizeof *s->packs);
  s->entry = calloc(s->m.nchunks, sizeof *s->entry);
  s->pack_of = calloc(s->m.nchunks, sizeof *s->pack_of);
  if (!s->packs || !s->entry || !s->pack_of)
    return ufk_fail(host, ENOMEM, "out of memory for %llu chunks",
                    (unsigned long long)s->m.nchunks);
  for (uint32_t i = 0; i < s->m.npacks; i++)
    s->packs[i].obj.fd = -1;
  for (uint32_t i = 0; i < s->m.npacks; i++) {
    char hex[2 * UFK_STORE_ID + 1];
    ufk_store_hex(s->m.packs[i], UFK_STORE_ID, hex);
    if (load_index(s, &s->packs[i], hex) < 0 ||
        open_pack(s, &s->packs[i], hex) < 0)
      return -1;
  }
  return resolve(s);
}

void store_unload(struct store *s) {
  for (uint32_t i = 0; s->packs && i < s->m.npacks; i++) {
    ufk_store_index_free(&s->packs[i].idx);
    obj_close(&s->packs[i].obj);
  }
  free(s->packs);
  free(s->entry);
  free(s->pack_of);
  ufk_store_manifest_free(&s->m);
  s->packs = NULL;
  s->entry = NULL;
  s->pack_of = NULL;
}
