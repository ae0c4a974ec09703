/* Plugins for the stack tests: sources and layers built as if against ABI
 * 1.0, 1.1 and 1.2 (CT_<VARIANT> defined by the build), and sources that
 * record how many calls run in them at once.
 *
 * The sources serve 1 MiB: bytes [0, 64K) are zero and reported so by
 * extents(), byte k past them is (k * 7) & 0xff.  Each counts its calls in
 * host counters (maps, releases, prefetches, peak) so a test can tell which
 * level a call reached. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uffdkit/plugin.h>

#define CT_SIZE (1 << 20)
#define CT_ZERO (64 << 10)
#define CT_FN static __attribute__((unused))

/* The struct of ABI 1.0 and 1.1: everything before release. */
#define CT_OLD_SIZE offsetof(struct ufk_plugin, release)

CT_FN const struct ufk_host *host;

struct inst {
  struct ufk_next *below;
  unsigned char *data;
  int inflight;
  uint64_t *maps, *releases, *prefetches, *peak;
};

CT_FN int ct_load(const struct ufk_host *h) {
  host = h;
  return 0;
}

/* A 1.1 source needs the host service 1.1 added. */
CT_FN int ct_load_11(const struct ufk_host *h) {
  host = h;
  if (!UFK_HOST_HAS(h, open_file)) {
    h->error(ENOTSUP, "contract: the host has no open_file");
    return -1;
  }
  return 0;
}

CT_FN void *ct_create(const struct ufk_config *cfg, struct ufk_next *below) {
  struct inst *i = calloc(1, sizeof *i);
  i->below = below;
  i->maps = host->counter(cfg, "maps", "map calls");
  i->releases = host->counter(cfg, "releases", "release calls");
  i->prefetches = host->counter(cfg, "prefetches", "prefetch calls");
  i->peak = host->counter(cfg, "peak", "most data calls at once");
  if (!below) {
    i->data = calloc(1, CT_SIZE);
    for (uint64_t k = CT_ZERO; k < CT_SIZE; k++)
      i->data[k] = (unsigned char)(k * 7);
  }
  return i;
}

CT_FN void ct_destroy(void *p) {
  struct inst *i = p;
  free(i->data);
  free(i);
}

CT_FN int64_t ct_get_size(void *p) {
  struct inst *i = p;
  return i->below ? i->below->get_size(i->below->handle) : CT_SIZE;
}

CT_FN int ct_read(void *p, void *buf, uint64_t len, uint64_t off,
                  uint32_t flags) {
  struct inst *i = p;
  if (i->below) return i->below->read(i->below->handle, buf, len, off, flags);
  memcpy(buf, i->data + off, len);
  return 0;
}

/* Holds the call for 2 ms, recording how many ran at once. */
CT_FN int ct_read_slow(void *p, void *buf, uint64_t len, uint64_t off,
                       uint32_t flags) {
  struct inst *i = p;
  int now = __atomic_add_fetch(&i->inflight, 1, __ATOMIC_SEQ_CST);
  uint64_t seen = __atomic_load_n(i->peak, __ATOMIC_SEQ_CST);
  while (seen < (uint64_t)now &&
         !__atomic_compare_exchange_n(i->peak, &seen, (uint64_t)now, 0,
                                      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
    ;
  nanosleep(&(struct timespec){0, 2000000}, NULL);
  int r = ct_read(p, buf, len, off, flags);
  __atomic_sub_fetch(&i->inflight, 1, __ATOMIC_SEQ_CST);
  return r;
}

CT_FN const void *ct_map(void *p, uint64_t off, uint64_t len) {
  struct inst *i = p;
  (void)len;
  __atomic_fetch_add(i->maps, 1, __ATOMIC_RELAXED);
  return i->data + off;
}

CT_FN void ct_release(void *p, const void *ptr, uint64_t off, uint64_t len) {
  struct inst *i = p;
  (void)len;
  if (ptr == i->data + off)
    __atomic_fetch_add(i->releases, 1, __ATOMIC_RELAXED);
}

CT_FN int ct_extents(void *p, uint64_t off, uint64_t len, ufk_extent_fn fn,
                     void *opaque) {
  (void)p;
  if (off >= CT_ZERO) return 0;
  uint64_t end = off + len < CT_ZERO ? off + len : CT_ZERO;
  return fn(opaque, off, end - off, UFK_EXTENT_ZERO) < 0 ? -1 : 0;
}

CT_FN int ct_prefetch(void *p, uint64_t off, uint64_t len) {
  struct inst *i = p;
  (void)off;
  (void)len;
  __atomic_fetch_add(i->prefetches, 1, __ATOMIC_RELAXED);
  return 0;
}

CT_FN void ct_caps_fast(void *p, struct ufk_caps *c) {
  (void)p;
  c->flags = UFK_PLUGIN_FAST;
}

CT_FN void ct_caps_two(void *p, struct ufk_caps *c) {
  (void)p;
  c->max_concurrency = 2;
}

CT_FN int ct_identity(void *p, char *buf, size_t len) {
  (void)p;
  strncpy(buf, "contract-source", len);
  buf[len - 1] = 0;
  return 0;
}

#define CT_SOURCE                                                              \
  .thread_model = UFK_THREAD_PARALLEL, .create = ct_create,                    \
  .destroy = ct_destroy, .get_size = ct_get_size, .read = ct_read,             \
  .map = ct_map, .extents = ct_extents, .prefetch = ct_prefetch,               \
  .caps = ct_caps_fast, .identity = ct_identity
#define CT_LAYER                                                               \
  .flags = UFK_PLUGIN_LAYER, .thread_model = UFK_THREAD_PARALLEL,              \
  .load = ct_load, .create = ct_create, .destroy = ct_destroy,                 \
  .get_size = ct_get_size, .read = ct_read

#if defined(CT_V10)
static const struct ufk_plugin plugin = {.abi_major = 1,
                                         .abi_minor = 0,
                                         .struct_size = CT_OLD_SIZE,
                                         .name = "cv10",
                                         .load = ct_load,
                                         CT_SOURCE};
#elif defined(CT_V11)
static const struct ufk_plugin plugin = {.abi_major = 1,
                                         .abi_minor = 1,
                                         .struct_size = CT_OLD_SIZE,
                                         .name = "cv11",
                                         .load = ct_load_11,
                                         CT_SOURCE};
#elif defined(CT_V12)
static const struct ufk_plugin plugin = {UFK_PLUGIN_ABI, .name = "cv12",
                                         .load = ct_load, CT_SOURCE,
                                         .release = ct_release};
#elif defined(CT_L10)
/* A layer of ABI 1.0 leaving every optional callback NULL. */
static const struct ufk_plugin plugin = {.abi_major = 1,
                                         .abi_minor = 0,
                                         .struct_size = CT_OLD_SIZE,
                                         .name = "cl10",
                                         CT_LAYER};
#elif defined(CT_L10MAP)
/* A layer of ABI 1.0 forwarding map() by hand, as layers did before 1.2:
 * it cannot release what it maps. */
static const void *fwd_map(void *p, uint64_t off, uint64_t len) {
  struct ufk_next *b = ((struct inst *)p)->below;
  return b->map(b->handle, off, len);
}
static const struct ufk_plugin plugin = {.abi_major = 1,
                                         .abi_minor = 0,
                                         .struct_size = CT_OLD_SIZE,
                                         .name = "cl10map",
                                         CT_LAYER,
                                         .map = fwd_map};
#elif defined(CT_L12)
/* A layer of ABI 1.2 leaving every optional callback NULL. */
static const struct ufk_plugin plugin = {UFK_PLUGIN_ABI, .name = "cl12",
                                         CT_LAYER};
#elif defined(CT_SERIAL)
static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,          .thread_model = UFK_THREAD_SERIAL,
    .name = "cserial",       .load = ct_load,
    .create = ct_create,     .destroy = ct_destroy,
    .get_size = ct_get_size, .read = ct_read_slow};
#elif defined(CT_TWO)
static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,          .thread_model = UFK_THREAD_PARALLEL,
    .name = "ctwo",          .load = ct_load,
    .create = ct_create,     .destroy = ct_destroy,
    .get_size = ct_get_size, .read = ct_read_slow,
    .caps = ct_caps_two};
#else
#error "define one CT_<VARIANT>"
#endif

UFFDKIT_PLUGIN(plugin)
