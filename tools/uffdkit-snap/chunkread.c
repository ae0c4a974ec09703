/* The chunks a local store holds: an id table over every index, and reading
 * a chunk back, checked. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk.h"
#include "chunkstore.h"
#include "index.h"
#include "manifest.h"
#include "pack.h"
#include "snap.h"

static size_t slot_of(const struct chunkstore *s, const uint8_t *id) {
  /* Ids are hashes already: their first bytes spread evenly. */
  return (size_t)ufk_le64(id) & (s->tab_size - 1);
}

static struct cs_loc *probe(const struct chunkstore *s, const uint8_t *id) {
  for (size_t i = slot_of(s, id);; i = (i + 1) & (s->tab_size - 1)) {
    struct cs_loc *l = &s->tab[i];
    if (l->entry == UINT32_MAX || !memcmp(l->id, id, UFK_STORE_ID)) return l;
  }
}

static int grow(struct chunkstore *s) {
  size_t n = s->tab_size ? s->tab_size * 2 : 4096;
  struct cs_loc *old = s->tab, *t = malloc(n * sizeof *t);
  if (!t) {
    snap_error("out of memory for %zu chunk ids", n / 2);
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    t[i].entry = UINT32_MAX;
  size_t oldn = s->tab_size;
  s->tab = t;
  s->tab_size = n;
  for (size_t i = 0; i < oldn; i++)
    if (old[i].entry != UINT32_MAX) *probe(s, old[i].id) = old[i];
  free(old);
  return 0;
}

const struct cs_loc *cs_find(const struct chunkstore *s,
                             const uint8_t id[UFK_STORE_ID]) {
  if (!s->tab_size) return NULL;
  const struct cs_loc *l = probe(s, id);
  return l->entry == UINT32_MAX ? NULL : l;
}

int cs_remember(struct chunkstore *s, const uint8_t id[UFK_STORE_ID],
                uint32_t pack, uint32_t entry) {
  if ((s->tab_used + 1) * 2 > s->tab_size && grow(s) < 0) return -1;
  struct cs_loc *l = probe(s, id);
  if (l->entry != UINT32_MAX) return 0;
  memcpy(l->id, id, UFK_STORE_ID);
  l->pack = pack;
  l->entry = entry;
  s->tab_used++;
  return 0;
}

int cs_add_pack(struct chunkstore *s, const char *hex,
                struct ufk_store_index *idx) {
  if (s->npacks == s->cap_packs) {
    size_t n = s->cap_packs ? 2 * s->cap_packs : 16;
    struct cs_pack *p = realloc(s->packs, n * sizeof *p);
    if (!p) {
      ufk_store_index_free(idx);
      snap_error("out of memory");
      return -1;
    }
    s->packs = p;
    s->cap_packs = n;
  }
  struct cs_pack *p = &s->packs[s->npacks];
  memset(p, 0, sizeof *p);
  memcpy(p->hex, hex, sizeof p->hex);
  p->idx = *idx;
  p->fd = -1;
  uint32_t k = (uint32_t)s->npacks++;
  for (uint32_t i = 0; i < p->idx.nentries; i++)
    if (cs_remember(s, p->idx.entries[i].id, k, i) < 0) return -1;
  return 0;
}

static int open_pack(struct chunkstore *s, struct cs_pack *p) {
  char name[2 * UFK_STORE_ID + 8];
  snprintf(name, sizeof name, "%s.pack", p->hex);
  if (!p->path && !(p->path = cs_path(s, "packs", name))) return -1;
  int fd = open(p->path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  uint8_t head[UFK_STORE_PACK_HEAD];
  struct ufk_store_pack_head h;
  struct ufk_store_err err;
  if (fd < 0 || fstat(fd, &st) < 0) {
    snap_error("%s: cannot open: %s", p->path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  size_t n =
      (size_t)st.st_size < sizeof head ? (size_t)st.st_size : sizeof head;
  if (snap_pread(fd, head, n, 0, p->path) < 0) {
    close(fd);
    return -1;
  }
  if (ufk_store_pack_parse(head, n, p->path, &h, &err) < 0 ||
      ufk_store_pack_match(&h, &p->idx, (uint64_t)st.st_size, p->path, &err) <
          0) {
    snap_error("%s", err.msg);
    close(fd);
    return -1;
  }
  p->fd = fd;
  return 0;
}

int cs_read_stored(struct chunkstore *s, uint32_t pack, uint32_t entry,
                   void *out) {
  struct cs_pack *p = &s->packs[pack];
  if (p->fd < 0 && open_pack(s, p) < 0) return -1;
  const struct ufk_store_entry *e = &p->idx.entries[entry];
  return snap_pread(p->fd, out, e->stored_len, e->offset, p->path);
}

int cs_read_chunk(struct chunkstore *s, const struct cs_loc *l, void *out) {
  struct cs_pack *p = &s->packs[l->pack];
  if (p->fd < 0 && open_pack(s, p) < 0) return -1;
  const struct ufk_store_entry *e = &p->idx.entries[l->entry];
  uint8_t *stored = malloc(e->stored_len);
  if (!stored) {
    snap_error("out of memory");
    return -1;
  }
  struct ufk_store_err err;
  int rc = snap_pread(p->fd, stored, e->stored_len, e->offset, p->path);
  if (rc == 0 && ufk_store_chunk_decode(&s->keys, e, stored, out, &err) < 0) {
    snap_error("%s: chunk at byte %llu: %s", p->path,
               (unsigned long long)e->offset, err.msg);
    rc = -1;
  }
  free(stored);
  return rc;
}

int cs_load_manifest(struct chunkstore *s, const char *name,
                     struct ufk_store_manifest *m) {
  if (!cs_name_ok(name)) {
    snap_error("'%s' is not a snapshot name ([A-Za-z0-9._-], 1-128, not "
               "starting with '.')",
               name);
    return -1;
  }
  char *path = cs_path(s, "snapshots", name);
  uint8_t *buf;
  size_t len;
  struct ufk_store_err err;
  int rc = path ? cs_load_file(path, &buf, &len) : -1;
  if (rc == 0) {
    rc = ufk_store_manifest_parse(buf, len, path, cs_meta_keys(s), m, &err);
    if (rc < 0) snap_error("%s", err.msg);
    free(buf);
  }
  if (rc == 0 &&
      (m->flags != s->info.flags || m->chunk_size != s->info.chunk_size)) {
    snap_error("%s: flags 0x%x and chunk size %u, the store's are 0x%x and %u",
               path, m->flags, m->chunk_size, s->info.flags,
               s->info.chunk_size);
    ufk_store_manifest_free(m);
    rc = -1;
  }
  free(path);
  return rc;
}

static long pack_no(const struct chunkstore *s, const uint8_t *id) {
  for (size_t i = 0; i < s->npacks; i++)
    if (!memcmp(s->packs[i].idx.pack, id, UFK_STORE_ID)) return (long)i;
  return -1;
}

int cs_resolve(struct chunkstore *s, const struct ufk_store_manifest *m,
               const char *name, struct cs_loc **out) {
  long *map = calloc(m->npacks + 1, sizeof *map);
  struct cs_loc *l = calloc(m->nchunks, sizeof *l);
  int rc = map && l ? 0 : -1;
  for (uint32_t i = 0; rc == 0 && i < m->npacks; i++)
    if ((map[i] = pack_no(s, m->packs[i])) < 0) {
      char hex[2 * UFK_STORE_ID + 1];
      ufk_store_hex(m->packs[i], UFK_STORE_ID, hex);
      snap_error("snapshot %s: pack %s is not in the store", name, hex);
      rc = -1;
    }
  for (uint64_t i = 0; rc == 0 && i < m->nchunks; i++) {
    const struct ufk_store_ref *r = &m->refs[i];
    l[i].entry = UINT32_MAX;
    if (r->pack == UFK_STORE_NO_PACK) continue;
    const struct cs_pack *p = &s->packs[map[r->pack]];
    const struct ufk_store_entry *e = ufk_store_index_find(&p->idx, r->id);
    if (!e) {
      snap_error("snapshot %s: chunk %llu is not in pack %s", name,
                 (unsigned long long)i, p->hex);
      rc = -1;
      break;
    }
    uint64_t left = m->image_size - i * m->chunk_size;
    if (e->raw_len != (left < m->chunk_size ? left : m->chunk_size)) {
      snap_error(
          "snapshot %s: chunk %llu has %u bytes in pack %s, not %llu", name,
          (unsigned long long)i, e->raw_len, p->hex,
          (unsigned long long)(left < m->chunk_size ? left : m->chunk_size));
      rc = -1;
      break;
    }
    memcpy(l[i].id, r->id, UFK_STORE_ID);
    l[i].pack = (uint32_t)map[r->pack];
    l[i].entry = (uint32_t)(e - p->idx.entries);
  }
  free(map);
  if (rc < 0)
    free(l);
  else
    *out = l;
  return rc;
}
