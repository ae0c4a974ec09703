#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "chunk.h"
#include "chunkwrite.h"
#include "index.h"
#include "pack.h"
#include "snap.h"

int cw_init(struct chunkwriter *w, struct chunkstore *s, int codec, int level,
            uint64_t pack_limit) {
  memset(w, 0, sizeof *w);
  w->s = s;
  w->codec = codec;
  w->level = level;
  w->pack_limit = pack_limit;
  w->fd = -1;
  w->enc = malloc(ufk_store_encode_bound(s->info.chunk_size));
  if (!w->enc) snap_error("out of memory");
  return w->enc ? 0 : -1;
}

static char *tmp_name(struct chunkwriter *w, const char *hex, const char *ext) {
  char name[128];
  snprintf(name, sizeof name, "tmp/%.16s-%d.%s", hex, (int)getpid(), ext);
  return cs_path(w->s, name, NULL);
}

static int begin_pack(struct chunkwriter *w) {
  struct ufk_store_index x = {.flags = w->s->info.flags,
                              .chunk_size = w->s->info.chunk_size};
  char hex[2 * UFK_STORE_ID + 1];
  if (RAND_bytes(x.pack, UFK_STORE_ID) != 1) {
    snap_error("cannot draw a pack id (OpenSSL RAND_bytes failed)");
    return -1;
  }
  ufk_store_hex(x.pack, UFK_STORE_ID, hex);
  if (!(w->tmp = tmp_name(w, hex, "pack"))) return -1;
  w->fd = open(w->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (w->fd < 0) {
    snap_error("%s: cannot create: %s", w->tmp, strerror(errno));
    free(w->tmp);
    w->tmp = NULL;
    return -1;
  }
  w->slot = (uint32_t)w->s->npacks;
  w->off = UFK_STORE_PACK_HEAD;
  uint8_t head[UFK_STORE_PACK_HEAD] = {0}; /* written whole at the end */
  if (snap_write(w->fd, head, sizeof head, w->tmp) < 0) return -1;
  return cs_add_pack(w->s, hex, &x);
}

static struct ufk_store_index *cur(struct chunkwriter *w) {
  return &w->s->packs[w->slot].idx;
}

static int write_index(struct chunkwriter *w, struct cw_done *d) {
  struct ufk_store_index *x = cur(w);
  size_t len = ufk_store_index_size(x);
  uint8_t *buf = malloc(len);
  if (!buf || !(d->idx_tmp = tmp_name(w, d->hex, "idx"))) {
    free(buf);
    snap_error("out of memory");
    return -1;
  }
  ufk_store_index_put(x, &w->s->keys, buf);
  int fd = open(d->idx_tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  int rc = fd < 0 ? -1 : snap_write(fd, buf, len, d->idx_tmp);
  if (fd < 0) snap_error("%s: cannot create: %s", d->idx_tmp, strerror(errno));
  if (rc == 0 && fsync(fd) < 0) {
    snap_error("%s: cannot sync: %s", d->idx_tmp, strerror(errno));
    rc = -1;
  }
  if (fd >= 0) close(fd);
  free(buf);
  return rc;
}

/* Writes the header, syncs the pack and writes its index. */
static int end_pack(struct chunkwriter *w) {
  if (w->fd < 0) return 0;
  struct ufk_store_index *x = cur(w);
  x->pack_bytes = w->off;
  struct ufk_store_pack_head h = {
      .flags = x->flags, .nchunks = x->nentries, .pack_bytes = w->off};
  memcpy(h.pack, x->pack, UFK_STORE_ID);
  uint8_t head[UFK_STORE_PACK_HEAD];
  ufk_store_pack_put(&h, head);
  struct cw_done *d = realloc(w->done, (w->ndone + 1) * sizeof *d);
  if (!d) return -1;
  w->done = d;
  d = &w->done[w->ndone++];
  memset(d, 0, sizeof *d);
  memcpy(d->hex, w->s->packs[w->slot].hex, sizeof d->hex);
  d->pack_tmp = w->tmp;
  w->tmp = NULL;
  int rc = pwrite(w->fd, head, sizeof head, 0) == (ssize_t)sizeof head &&
                   fsync(w->fd) == 0
               ? 0
               : -1;
  if (rc < 0) snap_error("%s: cannot write: %s", d->pack_tmp, strerror(errno));
  close(w->fd);
  w->fd = -1;
  return rc < 0 ? -1 : write_index(w, d);
}

static int append_entry(struct chunkwriter *w,
                        const struct ufk_store_entry *e) {
  struct ufk_store_index *x = cur(w);
  struct ufk_store_entry *n =
      realloc(x->entries, (x->nentries + 1) * sizeof *n);
  if (!n) {
    snap_error("out of memory");
    return -1;
  }
  x->entries = n;
  n[x->nentries] = *e;
  n[x->nentries].offset = w->off;
  x->nentries++;
  return 0;
}

/* The pack being written is full: its bytes reached the pack size, or
 * one more entry would make its index larger than a reader loads (chunks
 * that compress to a few bytes). */
static int pack_full(struct chunkwriter *w) {
  struct ufk_store_index next = {.nentries = cur(w)->nentries + 1};
  return w->off >= w->pack_limit ||
         ufk_store_index_size(&next) > UFK_STORE_META_MAX;
}

/* Appends an encoded chunk to the pack being written (a new one when it
 * is full); *pack gets its pack number. */
static int write_encoded(struct chunkwriter *w, const uint8_t id[UFK_STORE_ID],
                         const struct ufk_store_entry *e, const uint8_t *out,
                         uint32_t *pack) {
  if (w->fd >= 0 && pack_full(w) && end_pack(w) < 0) return -1;
  if (w->fd < 0 && begin_pack(w) < 0) return -1;
  if (snap_write(w->fd, out, e->stored_len, w->tmp) < 0 ||
      append_entry(w, e) < 0 ||
      cs_remember(w->s, id, w->slot, cur(w)->nentries - 1) < 0)
    return -1;
  w->off += e->stored_len;
  w->new_chunks++;
  w->new_raw += e->raw_len;
  w->new_stored += e->stored_len;
  *pack = w->slot;
  return 0;
}

/* Writes the oldest chunk the encoders hold, once encoded. */
static int write_oldest(struct chunkwriter *w) {
  struct cenc_slot *c = cenc_oldest(w->pool);
  int rc = c->rc < 0 ? -1 : write_encoded(w, c->id, &c->e, c->out, c->pack);
  if (c->rc < 0) snap_error("%s", c->err.msg);
  cenc_drop(w->pool);
  return rc;
}

int cw_flush(struct chunkwriter *w) {
  while (w->pool && cenc_oldest(w->pool))
    if (write_oldest(w) < 0) return -1;
  return 0;
}

int cw_threads(struct chunkwriter *w, int threads) {
  if (threads < 2) return 0;
  w->pool = malloc(sizeof *w->pool);
  if (w->pool && cenc_start(w->pool, &w->s->keys, w->codec, w->level,
                            w->s->info.chunk_size, threads) == 0)
    return 0;
  if (!w->pool) snap_error("out of memory");
  free(w->pool);
  w->pool = NULL;
  return -1;
}

/* A chunk equal to one still with the encoders: written first, so the
 * store holds it once. */
static int add_twin(struct chunkwriter *w, const uint8_t id[UFK_STORE_ID],
                    int k, uint32_t *pack) {
  for (int i = 0; i <= k; i++)
    if (write_oldest(w) < 0) return -1;
  *pack = cs_find(w->s, id)->pack;
  return 1;
}

int cw_add(struct chunkwriter *w, const uint8_t id[UFK_STORE_ID],
           const uint8_t *sums, const void *raw, uint32_t len, uint32_t *pack) {
  if (w->pool) {
    int k = cenc_find(w->pool, id);
    if (k >= 0) return add_twin(w, id, k, pack);
    while (cenc_put(w->pool, id, sums, raw, len, pack))
      if (write_oldest(w) < 0) return -1;
    return 0;
  }
  struct ufk_store_entry e;
  struct ufk_store_err err;
  if (ufk_store_chunk_encode(&w->s->keys, w->codec, w->level, id, sums, raw,
                             len, w->enc, &e, &err) < 0) {
    snap_error("%s", err.msg);
    return -1;
  }
  return write_encoded(w, id, &e, w->enc, pack);
}

int cw_add_stored(struct chunkwriter *w, const struct ufk_store_entry *e,
                  const void *stored) {
  if (w->fd < 0 && begin_pack(w) < 0) return -1;
  if (snap_write(w->fd, stored, e->stored_len, w->tmp) < 0 ||
      append_entry(w, e) < 0)
    return -1;
  w->off += e->stored_len;
  w->new_chunks++;
  w->new_raw += e->raw_len;
  w->new_stored += e->stored_len;
  return 0;
}

int cw_cut(struct chunkwriter *w) {
  return cw_flush(w) < 0 ? -1 : end_pack(w);
}

static int rename_into(struct chunkwriter *w, const char *tmp, const char *hex,
                       const char *ext) {
  char name[2 * UFK_STORE_ID + 8];
  snprintf(name, sizeof name, "%s.%s", hex, ext);
  char *dst = cs_path(w->s, "packs", name);
  int rc = dst ? rename(tmp, dst) : -1;
  if (rc < 0)
    snap_error("%s: cannot rename to %s: %s", tmp, dst, strerror(errno));
  free(dst);
  return rc;
}

int cw_publish(struct chunkwriter *w) {
  if (cw_flush(w) < 0 || end_pack(w) < 0) return -1;
  for (size_t i = 0; i < w->ndone; i++) {
    struct cw_done *d = &w->done[i];
    if (rename_into(w, d->pack_tmp, d->hex, "pack") < 0) return -1;
    free(d->pack_tmp);
    d->pack_tmp = NULL;
    if (rename_into(w, d->idx_tmp, d->hex, "idx") < 0) return -1;
    free(d->idx_tmp);
    d->idx_tmp = NULL;
  }
  char *dir = cs_path(w->s, "packs", NULL);
  int rc = dir ? cs_sync_dir(dir) : -1;
  free(dir);
  return rc;
}

static void stop_pool(struct chunkwriter *w) {
  if (!w->pool) return;
  cenc_stop(w->pool);
  free(w->pool);
  w->pool = NULL;
}

void cw_abort(struct chunkwriter *w) {
  stop_pool(w);
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
  if (w->tmp) unlink(w->tmp);
  for (size_t i = 0; i < w->ndone; i++) {
    if (w->done[i].pack_tmp) unlink(w->done[i].pack_tmp);
    if (w->done[i].idx_tmp) unlink(w->done[i].idx_tmp);
  }
}

void cw_free(struct chunkwriter *w) {
  stop_pool(w);
  for (size_t i = 0; i < w->ndone; i++) {
    free(w->done[i].pack_tmp);
    free(w->done[i].idx_tmp);
  }
  free(w->done);
  free(w->tmp);
  free(w->enc);
}
