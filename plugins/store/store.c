/* store: serves a snapshot of a chunk store (docs/store-format.md) from a
 * local folder or through a nested source per object (http for a web
 * server or S3).  Every chunk is checked against its id (and its GCM tag)
 * before read() returns a byte of it; a chunk that fails is a source error
 * (EIO), so a retry layer may fetch it again and on_source_error applies.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "internal.h"
#include "layer.h"
#include "object.h"
#include "prefetch.h"

const struct ufk_host *host;

static const struct ufk_param params[] = {
    {"snapshot", UFK_T_STRING, UFK_PARAM_REQUIRED, NULL,
     "name of the snapshot (its manifest snapshots/NAME)"},
    {"path", UFK_T_STRING, 0, NULL, "the store's folder on a local disk"},
    {"objects", UFK_T_GROUP, 0, NULL,
     "a source to read each object of the store from, with {object} (e.g. "
     "packs/ID.pack) in its settings (instead of path)"},
    {"key_file", UFK_T_STRING, 0, NULL,
     "file holding the key of an encrypted store (32 bytes or 64 hex "
     "digits)"},
    {"key_env", UFK_T_STRING, 0, NULL,
     "environment variable holding the key of an encrypted store (64 hex "
     "digits)"},
    {"chunk_cache", UFK_T_SIZE, 0, "32M",
     "checked chunks kept for the next read of them, read or prefetched "
     "(0: none, and prefetches are dropped)"},
    {0},
};

static int load(const struct ufk_host *h) {
  host = h;
  return 0;
}

static void unload(void) {
  ufk_store_crypto_release();
}

static int opt_string(const struct ufk_config *cfg, const char *key,
                      const char **out) {
  int rc = host->get_string(cfg, key, out);
  if (rc == 1) *out = NULL;
  return rc < 0 ? -1 : 0;
}

static int read_settings(struct store *s) {
  const struct ufk_config *cfg = s->cfg;
  const char *objects;
  if (host->get_string(cfg, "snapshot", &s->snapshot) != 0)
    return ufk_fail(host, EINVAL, "snapshot: required (a manifest name)");
  if (!ufk_store_name_ok(s->snapshot))
    return ufk_fail(host, EINVAL,
                    "snapshot (%s): '%s' is not a snapshot name "
                    "([A-Za-z0-9._-], 1-128, not starting with '.')",
                    host->where(cfg, "snapshot"), s->snapshot);
  if (opt_string(cfg, "path", &s->path) < 0 ||
      opt_string(cfg, "key_file", &s->key_file) < 0 ||
      opt_string(cfg, "key_env", &s->key_env) < 0)
    return -1;
  int nested = host->get_string(cfg, "objects", &objects) != 1;
  if (!!s->path == nested)
    return ufk_fail(host, EINVAL,
                    "set path (a local store) or objects (a source with "
                    "{object}), one of them");
  if (host->get_size(cfg, "chunk_cache", &s->cache_bytes))
    return ufk_fail(host, EINVAL, "chunk_cache (%s): must be a size",
                    host->where(cfg, "chunk_cache"));
  if (s->key_file && s->key_env)
    return ufk_fail(host, EINVAL, "key_file (%s) and key_env (%s): set one",
                    host->where(cfg, "key_file"), host->where(cfg, "key_env"));
  return 0;
}

static void *create(const struct ufk_config *cfg, struct ufk_next *below) {
  (void)below;
  struct store *s = calloc(1, sizeof *s);
  if (!s) {
    ufk_fail(host, ENOMEM, "out of memory");
    return NULL;
  }
  s->cfg = cfg;
  if (read_settings(s) < 0) {
    free(s);
    return NULL;
  }
  s->c_fetched = host->counter(cfg, "bytes_fetched",
                               "stored bytes of chunks read from packs");
  s->c_served = host->counter(cfg, "bytes_served",
                              "bytes of checked chunks handed to the daemon");
  s->c_zero = host->counter(cfg, "bytes_zero", "bytes of zero chunks filled");
  s->c_chunks = host->counter(cfg, "chunks", "chunks read and checked");
  s->c_bad = host->counter(cfg, "chunks_bad",
                           "chunks refused: tag, decoding or id mismatch");
  s->c_recent = host->counter(cfg, "chunk_cache_hits",
                              "reads served from checked chunks kept");
  s->c_pool_made =
      host->counter(cfg, "pool_buffers", "chunk buffers made from new memory");
  s->c_pool_fills = host->counter(
      cfg, "pool_fills", "steps of new memory written for chunk buffers");
  return s;
}

static int start(void *inst) {
  struct store *s = inst;
  struct ufk_store_err err;
  if (ufk_store_keys_load(&s->keys, s->key_file, s->key_env, &err) < 0)
    return ufk_fail(host, EINVAL, "%s", err.msg);
  if (store_load(s) < 0) return -1;
  if (ccache_init(&s->cache, s->cache_bytes, s->m.nchunks, s->m.chunk_size) <
      0) {
    int e = errno;
    return ufk_fail(host, e,
                    e == EOVERFLOW ? "chunk_cache (%s): %llu chunks are too "
                                     "many to keep; set it to 0"
                                   : "chunk_cache (%s): out of memory for "
                                     "%llu chunks",
                    host->where(s->cfg, "chunk_cache"),
                    (unsigned long long)s->m.nchunks);
  }
  s->cache.copy = store_copy_out;
  s->cache.copy_arg = s;
  if (s->cache.pool)
    bufpool_count(s->cache.pool, s->c_pool_made, s->c_pool_fills);
  host->log(UFK_LOG_INFO,
            "store snapshot %s: %llu bytes in %llu chunks of %u, %u packs%s",
            s->snapshot, (unsigned long long)s->m.image_size,
            (unsigned long long)s->m.nchunks, s->m.chunk_size, s->m.npacks,
            s->keys.encrypted ? ", encrypted" : "");
  return 0;
}

static void destroy(void *inst) {
  struct store *s = inst;
  ccache_free(&s->cache);
  store_unload(s);
  ufk_store_keys_wipe(&s->keys);
  free(s);
}

static int64_t get_size(void *inst) {
  return (int64_t)((struct store *)inst)->m.image_size;
}

static uint64_t chunk_len(const struct store *s, uint64_t i) {
  uint64_t left = s->m.image_size - i * s->m.chunk_size;
  return left < s->m.chunk_size ? left : s->m.chunk_size;
}

/* Fetches chunk i's stored bytes and decodes them into out, checked: the
 * pages covering [from, from + len), with the sums for the rest in *sums
 * (see store_check_part), or when sums is NULL, all of it. */
static int decode_chunk(struct store *s, uint64_t i, uint8_t *out,
                        uint32_t flags, uint64_t from, uint64_t len,
                        uint8_t **sums) {
  const struct ufk_store_entry *e = s->entry[i];
  struct pack *p = &s->packs[s->pack_of[i]];
  /* A raw chunk of a plain store without page sums lands in out and is
   * checked there. */
  int direct =
      !s->keys.encrypted && !s->keys.page_sums && e->codec == UFK_CODEC_RAW;
  uint8_t *stored = direct ? out : malloc(e->stored_len);
  if (!stored) return ufk_fail(host, ENOMEM, "out of memory");
  int rc = obj_read(&p->obj, stored, e->stored_len, e->offset, flags);
  if (rc == 0)
    rc = sums ? store_check_part(s, i, stored, out, from, len, sums)
              : store_check_chunk(s, i, stored, out);
  if (!direct) free(stored);
  return rc;
}

/* n bytes of chunk i from `shift` into dst: from the chunk cache, else
 * decoded straight into dst when the read covers the whole chunk (then
 * copied to the cache), else into a buffer the cache then keeps.  With page
 * sums only the pages read are checked, and the cache keeps the sums for
 * the others; without them the whole chunk must be decoded and checked. */
static int serve_chunk(struct store *s, uint64_t i, uint64_t shift,
                       uint8_t *dst, uint64_t n, uint32_t flags) {
  if (!s->entry[i]) {
    memset(dst, 0, n);
    __atomic_fetch_add(s->c_zero, n, __ATOMIC_RELAXED);
    return 0;
  }
  /* A fault does not wait for a prefetch of its chunk from a remote
   * store: that prefetch may be held for demand reads on the wire (the
   * http source's prefetch_pause) while nothing counts this one; the
   * chunk is fetched again instead, a few KiB, and offered to the cache
   * so the chunk's other pages are not. */
  int wait = s->path || !(flags & UFK_READ_FAULT);
  int got = ccache_get(&s->cache, i, shift, dst, n, wait);
  if (got == CC_BAD) return -1;
  if (got == CC_HIT) {
    __atomic_fetch_add(s->c_recent, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(s->c_served, n, __ATOMIC_RELAXED);
    return 0;
  }
  if (s->keys.page_blocks)
    return store_serve_blocks(s, i, shift, dst, n, flags, got);
  uint64_t clen = chunk_len(s, i);
  int whole = shift == 0 && n == clen;
  int part = !whole && s->keys.page_sums && clen / CC_PAGE <= CC_SUMS_PAGES;
  uint8_t *out = whole ? dst : ccache_buf(&s->cache);
  struct cchunk k = {.len = clen, .checked = ccache_pages(shift, n)};
  int rc = out ? decode_chunk(s, i, out, flags, shift, n, part ? &k.sums : NULL)
               : ufk_fail(host, ENOMEM, "out of memory");
  if (rc == 0 && !whole) memcpy(dst, out + shift, n);
  if (rc == 0 && got != CC_OFF) k.data = whole ? ccache_buf(&s->cache) : out;
  if (k.data && whole) memcpy(k.data, dst, clen);
  /* From here the cache owns k (it may drop it at once), unless an offer
   * is refused; what it does not own goes back once. */
  int owned = ccache_settle(&s->cache, i, got, &k);
  if (!owned) {
    free(k.sums);
    if (k.data && k.data != out) ccache_unbuf(&s->cache, k.data);
  }
  if (!whole && (!owned || out != k.data)) ccache_unbuf(&s->cache, out);
  if (rc == 0) __atomic_fetch_add(s->c_served, n, __ATOMIC_RELAXED);
  return rc;
}

static int store_read(void *inst, void *buf, uint64_t len, uint64_t off,
                      uint32_t flags) {
  struct store *s = inst;
  if (off > s->m.image_size || len > s->m.image_size - off)
    return ufk_fail(host, ERANGE,
                    "snapshot %s: range %llu+%llu is outside "
                    "its %llu bytes",
                    s->snapshot, (unsigned long long)off,
                    (unsigned long long)len,
                    (unsigned long long)s->m.image_size);
  if (flags & UFK_READ_NOWAIT)
    return ufk_fail(host, EWOULDBLOCK, "snapshot %s: needs a fetch",
                    s->snapshot);
  uint8_t *p = buf;
  while (len) {
    uint64_t i = off / s->m.chunk_size, shift = off % s->m.chunk_size;
    uint64_t n = chunk_len(s, i) - shift;
    if (n > len) n = len;
    if (serve_chunk(s, i, shift, p, n, flags) < 0) return -1;
    p += n;
    off += n;
    len -= n;
  }
  return 0;
}

/* Zero chunks, joined when they touch. */
static int store_extents(void *inst, uint64_t off, uint64_t len,
                         ufk_extent_fn fn, void *opaque) {
  struct store *s = inst;
  if (len == 0 || off >= s->m.image_size) return 0;
  uint64_t end = len > s->m.image_size - off ? s->m.image_size : off + len;
  uint64_t zs = 0, ze = 0;
  for (uint64_t i = off / s->m.chunk_size; i * s->m.chunk_size < end; i++) {
    if (s->entry[i]) continue;
    uint64_t a = i * s->m.chunk_size, b = a + chunk_len(s, i);
    if (a < off) a = off;
    if (b > end) b = end;
    if (a != ze && ze > zs) {
      int rc = fn(opaque, zs, ze - zs, UFK_EXTENT_ZERO);
      if (rc) return rc;
    }
    if (a != ze) zs = a;
    ze = b;
  }
  return ze > zs ? fn(opaque, zs, ze - zs, UFK_EXTENT_ZERO) : 0;
}

static void store_caps(void *inst, struct ufk_caps *out) {
  struct store *s = inst;
  /* Local chunks come from the page cache; decoding one is short. */
  out->flags = s->path ? UFK_PLUGIN_FAST : 0;
  out->max_concurrency = 0;
  out->max_io = 0;
}

/* Manifests are never rewritten in place: their hash names the image. */
static int store_identity(void *inst, char *buf, size_t len) {
  struct store *s = inst;
  char sum[2 * UFK_STORE_ID + 1];
  ufk_store_hex(s->manifest_sum, UFK_STORE_ID, sum);
  int n = snprintf(buf, len, "store snapshot %s manifest %s", s->snapshot, sum);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,
    .flags = 0,
    .thread_model = UFK_THREAD_PARALLEL,
    .name = "store",
    .version = "1.0",
    .description = "a snapshot of a chunk store: compressed, deduplicated "
                   "chunks, each checked before it is served",
    .params = params,
    .load = load,
    .unload = unload,
    .create = create,
    .start = start,
    .destroy = destroy,
    .get_size = get_size,
    .read = store_read,
    .extents = store_extents,
    .prefetch = store_prefetch,
    .caps = store_caps,
    .identity = store_identity,
};

UFFDKIT_PLUGIN(plugin)
