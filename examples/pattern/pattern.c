/* pattern: an out-of-tree uffdkit source plugin serving a deterministic test
 * pattern (see pattern.h) instead of a snapshot, so a restore can be checked
 * against an image written by pattern-image with the same settings.
 *
 * It shows the parts of the plugin ABI most sources need: a settings table,
 * create() validating through the host getters, extents() reporting zero
 * pages, identity(), a counter, per-session open(), and a FAST, PARALLEL
 * read(). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <uffdkit/plugin.h>

#include "pattern.h"

static const struct ufk_host *host;

struct inst {
  uint64_t size;
  uint64_t seed;
  unsigned zero_percent;
  uint64_t
      *pages_generated; /* the counter uffdkit_plugin_pages_generated_total */
};

static const struct ufk_param params[] = {
    {"size", UFK_T_SIZE, UFK_PARAM_REQUIRED, NULL,
     "bytes of memory served, a multiple of 4K (e.g. \"256M\")"},
    {"seed", UFK_T_INT, 0, "0", "seed of the contents"},
    {"zero_percent", UFK_T_INT, 0, "10",
     "share of all-zero pages, 0 to 100, reported as zero extents"},
    {NULL, 0, 0, NULL, NULL},
};

static int pattern_load(const struct ufk_host *h) {
  /* Every service used here exists since ABI 1.0.  A plugin calling a
   * service added later checks host->size covers it first. */
  host = h;
  return 0;
}

static void *pattern_create(const struct ufk_config *cfg,
                            struct ufk_next *below) {
  (void)below; /* a source: always NULL */
  struct inst *in = calloc(1, sizeof *in);
  int64_t seed, zp;
  if (!in) {
    host->error(ENOMEM, "out of memory");
    return NULL;
  }
  /* The getters report a badly typed value themselves; "size" is required
   * so it is never absent, the others have defaults. */
  if (host->get_size(cfg, "size", &in->size) != 0 ||
      host->get_int(cfg, "seed", &seed) != 0 ||
      host->get_int(cfg, "zero_percent", &zp) != 0)
    goto fail;
  if (in->size == 0 || in->size % PATTERN_PAGE) {
    host->error(EINVAL,
                "%s: size %" PRIu64 " is not a positive multiple "
                "of 4096",
                host->where(cfg, "size"), in->size);
    goto fail;
  }
  if (zp < 0 || zp > 100) {
    host->error(EINVAL, "%s: zero_percent must be 0 to 100",
                host->where(cfg, "zero_percent"));
    goto fail;
  }
  in->seed = (uint64_t)seed;
  in->zero_percent = (unsigned)zp;
  in->pages_generated =
      host->counter(cfg, "pages_generated", "pages of pattern generated");
  return in;
fail:
  free(in);
  return NULL;
}

static void pattern_destroy(void *p) {
  free(p);
}

static int pattern_open(void *p, const struct ufk_session_info *s) {
  (void)p;
  host->log(UFK_LOG_DEBUG,
            "pattern: session %" PRIu64 " of pid %d on %s, %u regions", s->id,
            s->pid, s->listener, s->nregions);
  return 0;
}

static int64_t pattern_get_size(void *p) {
  return (int64_t)((struct inst *)p)->size;
}

/* off and len are multiples of the VM's page size, itself a multiple of
 * 4 KiB, and buf is page-aligned. */
static int pattern_read(void *p, void *buf, uint64_t len, uint64_t off,
                        uint32_t flags) {
  struct inst *in = p;
  (void)flags; /* never waits, so NOWAIT and PREFETCH change nothing */
  uint64_t *out = buf;
  for (uint64_t done = 0; done < len; done += PATTERN_PAGE) {
    pattern_fill(in->seed, (off + done) / PATTERN_PAGE, in->zero_percent, out);
    out += PATTERN_WORDS;
  }
  __atomic_fetch_add(in->pages_generated, len / PATTERN_PAGE, __ATOMIC_RELAXED);
  return 0;
}

/* Zero pages, merged into runs: the daemon installs them without reading. */
static int pattern_extents(void *p, uint64_t off, uint64_t len,
                           ufk_extent_fn fn, void *opaque) {
  struct inst *in = p;
  uint64_t first = off / PATTERN_PAGE, end = (off + len) / PATTERN_PAGE;
  uint64_t run = 0, start = 0;
  for (uint64_t pg = first; pg <= end; pg++) {
    if (pg < end && pattern_is_zero(in->seed, pg, in->zero_percent)) {
      if (!run++) start = pg;
    } else if (run) {
      if (fn(opaque, start * PATTERN_PAGE, run * PATTERN_PAGE,
             UFK_EXTENT_ZERO) < 0)
        return -1;
      run = 0;
    }
  }
  return 0;
}

/* What is served, so a working set recorded against one pattern is not
 * replayed against another. */
static int pattern_identity(void *p, char *buf, size_t len) {
  struct inst *in = p;
  int n = snprintf(buf, len,
                   "pattern size=%" PRIu64 " seed=%" PRIu64 " zero_percent=%u",
                   in->size, in->seed, in->zero_percent);
  return n < 0 || (size_t)n >= len ? -1 : 0;
}

static const struct ufk_plugin plugin = {
    UFK_PLUGIN_ABI,
    /* Computed in memory: served on the fault thread, no hand-off. */
    .flags = UFK_PLUGIN_FAST,
    .thread_model = UFK_THREAD_PARALLEL,
    .name = "pattern",
    .version = "1.0",
    .description = "a deterministic test pattern of a configured size",
    .params = params,
    .load = pattern_load,
    .create = pattern_create,
    .destroy = pattern_destroy,
    .open = pattern_open,
    .get_size = pattern_get_size,
    .read = pattern_read,
    .extents = pattern_extents,
    .identity = pattern_identity,
};

UFFDKIT_PLUGIN(plugin)
