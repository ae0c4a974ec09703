/* uffdkit-snap store gc --repack: rewrites each pack whose live share (the
 * stored bytes some manifest references, over all its stored bytes) is
 * below a threshold into a new pack holding only its live chunks, copied
 * as they are stored.  The new packs and indexes are published first,
 * then every manifest listing an old pack is published again naming the
 * new one, and only then are the old packs deleted: an interruption at any
 * point leaves every manifest complete (new packs nothing lists yet go at
 * the next gc).  gc holds the store's lock exclusively throughout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkrepack.h"
#include "chunkwrite.h"
#include "manifest.h"
#include "snap.h"

static uint64_t stored_bytes(const struct ufk_store_index *x,
                             const uint8_t *used) {
  uint64_t n = 0;
  for (uint32_t i = 0; i < x->nentries; i++)
    if (!used || used[i]) n += x->entries[i].stored_len;
  return n;
}

/* Copies the live chunks of pack p into a pack of their own; *slot gets
 * its number in s->packs. */
static int copy_live(struct chunkwriter *w, size_t p, const uint8_t *used,
                     uint32_t *slot) {
  struct chunkstore *s = w->s;
  uint8_t *buf = NULL;
  int rc = 0;
  for (uint32_t i = 0; rc == 0 && i < s->packs[p].idx.nentries; i++) {
    if (!used[i]) continue;
    struct ufk_store_entry e = s->packs[p].idx.entries[i];
    uint8_t *b = realloc(buf, e.stored_len);
    if (!b) {
      snap_error("out of memory");
      rc = -1;
      break;
    }
    buf = b;
    rc = cs_read_stored(s, (uint32_t)p, i, buf);
    if (rc == 0) rc = cw_add_stored(w, &e, buf);
    *slot = w->slot;
  }
  free(buf);
  return rc < 0 ? -1 : cw_cut(w);
}

/* Publishes manifest `name` again with each repacked pack replaced by its
 * new one (new_of[p] is the new pack's number, or SIZE_MAX). */
static int relist(struct chunkstore *s, const char *name, const size_t *new_of,
                  size_t nold, int *changed) {
  struct ufk_store_manifest m;
  if (cs_load_manifest(s, name, &m) < 0) return -1;
  *changed = 0;
  for (uint32_t j = 0; j < m.npacks; j++)
    for (size_t p = 0; p < nold; p++)
      if (new_of[p] != SIZE_MAX &&
          !memcmp(m.packs[j], s->packs[p].idx.pack, UFK_STORE_ID)) {
        memcpy(m.packs[j], s->packs[new_of[p]].idx.pack, UFK_STORE_ID);
        *changed = 1;
      }
  int rc = 0;
  if (*changed) {
    size_t len = ufk_store_manifest_size(&m);
    uint8_t *buf = malloc(len);
    rc = buf ? 0 : -1;
    if (buf) ufk_store_manifest_put(&m, &s->keys, buf);
    if (buf) rc = cs_publish(s, "snapshots", name, buf, len);
    free(buf);
  }
  ufk_store_manifest_free(&m);
  return rc;
}

static int choose(struct chunkstore *s, const struct cs_scan *sc, double below,
                  size_t *new_of, struct cs_repack *r) {
  size_t n = 0;
  for (size_t p = 0; p < sc->npacks; p++) {
    new_of[p] = SIZE_MAX;
    if (!sc->pack_used[p]) continue;
    uint64_t all = stored_bytes(&s->packs[p].idx, NULL);
    uint64_t live = stored_bytes(&s->packs[p].idx, sc->used[p]);
    if (live == 0 || (double)live >= below * (double)all) continue;
    new_of[p] = 0; /* chosen; its new pack's number comes later */
    r->packs++;
    r->bytes_before += s->packs[p].idx.pack_bytes;
    n++;
  }
  return (int)(n > 0);
}

int cs_repack(struct chunkstore *s, const struct cs_scan *sc, double below,
              struct cs_repack *r) {
  memset(r, 0, sizeof *r);
  size_t nold = sc->npacks;
  size_t *new_of = calloc(nold ? nold : 1, sizeof *new_of);
  if (!new_of) return -1;
  if (!choose(s, sc, below, new_of, r)) {
    free(new_of);
    return 0;
  }
  if ((s->info.flags & UFK_STORE_F_ENCRYPTED) && !s->keys.encrypted) {
    snap_error("%s: gc --repack: the store is encrypted; give its key "
               "(--key-file or --key-env): new indexes and manifests carry "
               "a MAC under it",
               s->dir);
    free(new_of);
    return -1;
  }
  struct chunkwriter w;
  int rc = cw_init(&w, s, UFK_CODEC_RAW, 0, UINT64_MAX);
  for (size_t p = 0; rc == 0 && p < nold; p++) {
    if (new_of[p] == SIZE_MAX) continue;
    uint32_t slot = 0;
    rc = copy_live(&w, p, sc->used[p], &slot);
    new_of[p] = slot;
  }
  if (rc == 0) rc = cw_publish(&w);
  if (rc < 0) cw_abort(&w);
  cw_free(&w);
  for (size_t i = 0; rc == 0 && i < sc->nsnaps; i++) {
    int changed = 0;
    rc = relist(s, sc->names[i], new_of, nold, &changed);
    r->manifests += (uint64_t)changed;
  }
  for (size_t p = 0; rc == 0 && p < nold; p++)
    if (new_of[p] != SIZE_MAX) {
      r->bytes_after += s->packs[new_of[p]].idx.pack_bytes;
      rc = cs_drop_pack(s, s->packs[p].hex);
    }
  free(new_of);
  return rc;
}
