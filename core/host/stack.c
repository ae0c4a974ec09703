#include "stack.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bitmap.h"
#include "hosterror.h"
#include "log.h"
#include "mem.h"
#include "pconf.h"
#include "plugin.h"

#define MAX_LEVELS 16
#define ZERO_GRAIN 4096ull

struct level {
  const struct plugin *plugin;
  void *inst;
  struct ufk_config *cfg;
  struct ufk_caps caps;
  int serial;
  int passes;           /* a 1.2 layer: what it leaves NULL is below's */
  uint32_t above_minor; /* ABI minor of whoever calls `next` */
  pthread_mutex_t lock; /* the SERIAL model, and the limit's state */
  pthread_cond_t cond;
  uint32_t inflight;
  uint32_t demand_waiting; /* callers that are no prefetch, waiting */
  int64_t size;
  struct ufk_next next; /* what the level above (or the core) calls */
  struct level *below;
  struct stack *stack;
  int started;
};

struct stack {
  const struct ufk_host *host; /* given to plugins at load */
  char name[160];
  struct level levels[MAX_LEVELS]; /* [0] the source, [n-1] the top */
  int n;
  struct level *top;
  uint64_t *zero; /* bit per 4 KiB the source reports as zero, or NULL */
  uint64_t zero_bits;
};

/* Entering a level: a mutex for SERIAL, a counting limit for PARALLEL with
 * max_concurrency.  NOWAIT callers fail instead of queueing. */
static int enter(struct level *l, uint32_t flags) {
  if (l->serial) {
    if (!(flags & UFK_READ_NOWAIT)) {
      pthread_mutex_lock(&l->lock);
      return 0;
    }
    if (pthread_mutex_trylock(&l->lock) == 0) return 0;
  } else if (l->caps.max_concurrency) {
    /* Prefetches leave one call to reads a guest waits for, and give way
     * to any such read already waiting. */
    int pf = !!(flags & UFK_READ_PREFETCH);
    uint32_t cap =
        l->caps.max_concurrency - (pf && l->caps.max_concurrency > 1);
    pthread_mutex_lock(&l->lock);
    l->demand_waiting += !pf;
    while ((l->inflight >= cap || (pf && l->demand_waiting)) &&
           !(flags & UFK_READ_NOWAIT))
      pthread_cond_wait(&l->cond, &l->lock);
    l->demand_waiting -= !pf;
    int ok = l->inflight < cap && !(pf && l->demand_waiting);
    l->inflight += ok;
    pthread_mutex_unlock(&l->lock);
    if (ok) return 0;
  } else {
    return 0;
  }
  host_error(EWOULDBLOCK, "%s is busy", pconf_instance(l->cfg));
  return -1;
}

static void leave(struct level *l) {
  if (l->serial) {
    pthread_mutex_unlock(&l->lock);
  } else if (l->caps.max_concurrency) {
    pthread_mutex_lock(&l->lock);
    l->inflight--;
    pthread_cond_broadcast(&l->cond); /* demand and prefetch wait apart */
    pthread_mutex_unlock(&l->lock);
  }
}

static int64_t n_get_size(void *h) {
  return ((struct level *)h)->size;
}

static int out_of_range(struct level *l, uint64_t len, uint64_t off) {
  if (off + len < off || off + len > (uint64_t)l->size) {
    host_error(EINVAL, "%s: range %llu+%llu is outside its %lld bytes",
               pconf_instance(l->cfg), (unsigned long long)off,
               (unsigned long long)len, (long long)l->size);
    return 1;
  }
  return 0;
}

static int n_read(void *h, void *buf, uint64_t len, uint64_t off,
                  uint32_t flags) {
  struct level *l = h;
  if (out_of_range(l, len, off)) return -1;
  uint64_t max = l->caps.max_io ? l->caps.max_io : len;
  while (len) {
    uint64_t n = len < max ? len : max;
    if (enter(l, flags) < 0) return -1;
    int r = l->plugin->p.read(l->inst, buf, n, off, flags);
    leave(l);
    if (r < 0) {
      errno = host_last_errno(); /* the layer above decides on it */
      return -1;
    }
    buf = (char *)buf + n;
    off += n;
    len -= n;
  }
  return 0;
}

static int has_map(const struct ufk_plugin *p) {
  return p->map != NULL;
}
static int has_extents(const struct ufk_plugin *p) {
  return p->extents != NULL;
}
static int has_prefetch(const struct ufk_plugin *p) {
  return p->prefetch != NULL;
}

/* The level that answers a call made at l: l itself if it has the
 * callback, else, through a layer that passes calls on, the level below;
 * NULL if nobody does. */
static struct level *owner(struct level *l,
                           int (*has)(const struct ufk_plugin *)) {
  while (l && !has(&l->plugin->p) && l->passes)
    l = l->below;
  return l && has(&l->plugin->p) ? l : NULL;
}

/* identity is asked of layers of 1.2 only: older ones are skipped, as
 * before 1.2, when only the source was asked. */
static struct level *identity_owner(struct level *l) {
  for (; l; l = l->below)
    if ((l->passes || !l->below) && l->plugin->p.identity) return l;
  return NULL;
}

static int out_of_range_quiet(const struct level *l, uint64_t len,
                              uint64_t off) {
  return off + len < off || off + len > (uint64_t)l->size;
}

/* A caller built before 1.2 cannot release: it gets only pointers that
 * need no release. */
static const void *n_map(void *h, uint64_t off, uint64_t len) {
  struct level *l = h, *o = owner(l, has_map);
  if (!o || out_of_range_quiet(l, len, off) ||
      (l->above_minor < 2 && o->plugin->p.release))
    return NULL;
  if (enter(o, 0) < 0) return NULL;
  const void *p = o->plugin->p.map(o->inst, off, len);
  leave(o);
  return p;
}

static void n_release(void *h, const void *ptr, uint64_t off, uint64_t len) {
  struct level *o = owner(h, has_map);
  if (!o || !o->plugin->p.release || enter(o, 0) < 0) return;
  o->plugin->p.release(o->inst, ptr, off, len);
  leave(o);
}

static int n_extents(void *h, uint64_t off, uint64_t len, ufk_extent_fn fn,
                     void *opaque) {
  struct level *l = h, *o = owner(l, has_extents);
  if (!o) {
    host_error(ENOTSUP, "%s reports no extents", pconf_instance(l->cfg));
    return -1;
  }
  if (out_of_range(l, len, off) || enter(o, 0) < 0) return -1;
  int r = o->plugin->p.extents(o->inst, off, len, fn, opaque);
  leave(o);
  return r < 0 ? -1 : 0;
}

/* Without a level that takes prefetches they are dropped. */
static int n_prefetch(void *h, uint64_t off, uint64_t len) {
  struct level *l = h, *o = owner(l, has_prefetch);
  if (!o) return 0;
  if (out_of_range(l, len, off) || enter(o, UFK_READ_PREFETCH) < 0) return -1;
  int r = o->plugin->p.prefetch(o->inst, off, len);
  leave(o);
  return r < 0 ? -1 : 0;
}

/* Layers keep the data of the source below unchanged: every level names
 * the version of the stack's source. */
static int n_identity(void *h, char *buf, size_t len) {
  const struct level *src = &((struct level *)h)->stack->levels[0];
  if (!src->plugin->p.identity) return -1;
  return src->plugin->p.identity(src->inst, buf, len);
}

static void init_next(struct level *l) {
  l->next = (struct ufk_next){
      .size = sizeof(struct ufk_next),
      .flags = l->caps.flags,
      .handle = l,
      .get_size = n_get_size,
      .read = n_read,
      .map = n_map,
      .extents = n_extents,
      /* 1.2 callers can tell that nothing below prefetches. */
      .prefetch =
          l->above_minor >= 2 && !owner(l, has_prefetch) ? NULL : n_prefetch,
      .release = n_release,
      .identity = n_identity,
  };
}

static int level_create(struct stack *s, const struct daemon_conf *conf,
                        const config_setting_t *g, int is_layer,
                        const char *plugin_dir, const char *const *vars,
                        struct listener_stats *stats, struct conf_err *err) {
  static const char *const skip_source[] = {"plugin", "layers", NULL};
  static const char *const skip_layer[] = {"layer", NULL};
  const char *name = NULL;
  config_setting_lookup_string(g, is_layer ? "layer" : "plugin", &name);
  if (s->n == MAX_LEVELS)
    return conf_fail(conf, g, err, "more than %d layers", MAX_LEVELS - 1);
  struct conf_err why; /* about the plugin file, or no file */
  const struct plugin *p =
      plugin_get(plugin_dir, name, is_layer, s->host, &why);
  if (!p) return conf_fail(conf, g, err, "%s", conf_err_str(&why));
  struct level *l = &s->levels[s->n];
  char inst[200];
  snprintf(inst, sizeof inst, "%s/%s", s->name, p->p.name);
  l->plugin = p;
  l->stack = s;
  l->below = s->n ? &s->levels[s->n - 1] : NULL;
  l->passes = is_layer && p->p.abi_minor >= 2;
  l->above_minor = UFK_ABI_MINOR; /* the core's, until a layer goes above */
  if (l->below) {
    l->below->above_minor = p->p.abi_minor;
    init_next(l->below);
  }
  l->cfg = pconf_new(conf, g, &p->p, inst, vars, stats);
  int bad =
      pconf_validate(l->cfg, is_layer ? skip_layer : skip_source, err) < 0;
  if (!bad) {
    host_clear_error();
    l->inst = p->p.create(l->cfg, l->below ? &l->below->next : NULL);
    if (!l->inst) bad = pconf_failed(l->cfg, "", err) < 0;
  }
  if (bad) { /* not counted in s->n yet: freed here */
    pconf_free(l->cfg);
    l->cfg = NULL;
    return -1;
  }
  pthread_mutex_init(&l->lock, NULL);
  pthread_cond_init(&l->cond, NULL);
  l->serial = p->p.thread_model == UFK_THREAD_SERIAL;
  l->caps.flags = p->p.flags & ~UFK_PLUGIN_LAYER;
  init_next(l);
  s->n++;
  return 0;
}

static int level_start(struct level *l, struct conf_err *err) {
  host_clear_error();
  if (l->plugin->p.start && l->plugin->p.start(l->inst) < 0)
    return pconf_failed(l->cfg, "", err);
  l->started = 1;
  if (l->plugin->p.caps) {
    struct ufk_caps c = {0};
    l->plugin->p.caps(l->inst, &c);
    l->caps = c;
  } else if (l->passes) {
    /* Below's speed; the limits below apply to the calls that reach them. */
    l->caps = (struct ufk_caps){.flags = l->below->caps.flags &
                                         (UFK_PLUGIN_FAST | UFK_PLUGIN_NOWAIT)};
  }
  init_next(l);
  host_clear_error();
  l->size = l->plugin->p.get_size(l->inst);
  return l->size < 0 ? pconf_failed(l->cfg, "get_size: ", err) : 0;
}

/* Builds levels: the source of group `src`, then layers listed in `layers`,
 * the first listed ending on top (nearest the core). */
static int build_levels(struct stack *s, const struct daemon_conf *conf,
                        const config_setting_t *src,
                        const config_setting_t *layers, const char *plugin_dir,
                        const char *const *vars, struct listener_stats *stats,
                        struct conf_err *err) {
  if (level_create(s, conf, src, 0, plugin_dir, vars, stats, err) < 0)
    return -1;
  int nl = layers ? config_setting_length(layers) : 0;
  for (int i = nl - 1; i >= 0; i--)
    if (level_create(s, conf, config_setting_get_elem(layers, (unsigned)i), 1,
                     plugin_dir, vars, stats, err) < 0)
      return -1;
  s->top = &s->levels[s->n - 1];
  return 0;
}

static int mark_zero(void *opaque, uint64_t off, uint64_t len, uint32_t kind) {
  struct stack *s = opaque;
  if (kind != UFK_EXTENT_ZERO) return 0;
  /* Only whole 4 KiB units inside the extent count. */
  uint64_t first = (off + ZERO_GRAIN - 1) / ZERO_GRAIN;
  uint64_t end = (off + len) / ZERO_GRAIN;
  if (end > s->zero_bits) end = s->zero_bits;
  if (first < end) bitmap_set(s->zero, first, end - first);
  return 0;
}

static void load_zero_map(struct stack *s) {
  if (!owner(s->top, has_extents))
    return; /* a layer that cannot pass extents on: no zero map */
  s->zero_bits = (uint64_t)s->top->size / ZERO_GRAIN;
  s->zero = xcalloc(bitmap_words(s->zero_bits), sizeof(uint64_t));
  if (n_extents(s->top, 0, (uint64_t)s->top->size, mark_zero, s) < 0) {
    /* Normal for a source that knows no zero ranges: pages are read. */
    log_debug("%s: no zero map: %s", s->name, host_last_error());
    free(s->zero);
    s->zero = NULL;
  }
}

static int start_levels(struct stack *s, struct conf_err *err) {
  for (int i = 0; i < s->n; i++)
    if (level_start(&s->levels[i], err) < 0) return -1;
  load_zero_map(s);
  return 0;
}

void stack_destroy(struct stack *s) {
  if (!s) return;
  for (int i = s->n - 1; i >= 0; i--) {
    struct level *l = &s->levels[i];
    if (l->inst && l->plugin->p.destroy) l->plugin->p.destroy(l->inst);
    pconf_free(l->cfg);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
  }
  free(s->zero);
  free(s);
}

/* A listener's layers belong beside its source, not inside it (only a
 * nested source, such as diff's store, carries its own layers). */
static int misplaced_layers(const struct daemon_conf *conf,
                            const struct listener_conf *l,
                            struct conf_err *err) {
  const config_setting_t *in = config_setting_get_member(l->source, "layers");
  return in && conf_fail(conf, in, err,
                         "listener '%s': 'layers' goes in the listener, "
                         "beside 'source', not inside it",
                         l->name) < 0;
}

struct stack *stack_build(const struct ufk_host *host,
                          const struct daemon_conf *conf,
                          const struct listener_conf *l, const char *plugin_dir,
                          struct listener_stats *stats, struct conf_err *err) {
  struct stack *s = xcalloc(1, sizeof *s);
  s->host = host;
  snprintf(s->name, sizeof s->name, "%s", l->name);
  if (misplaced_layers(conf, l, err) ||
      build_levels(s, conf, l->source, l->layers, plugin_dir, NULL, stats,
                   err) < 0 ||
      start_levels(s, err) < 0) {
    stack_destroy(s);
    return NULL;
  }
  return s;
}

int stack_check(const struct ufk_host *host, const struct daemon_conf *conf,
                const struct listener_conf *l, const char *plugin_dir,
                struct conf_err *err) {
  struct stack *s = xcalloc(1, sizeof *s);
  s->host = host;
  snprintf(s->name, sizeof s->name, "%s", l->name);
  int r = misplaced_layers(conf, l, err)
              ? -1
              : build_levels(s, conf, l->source, l->layers, plugin_dir, NULL,
                             NULL, err);
  stack_destroy(s);
  return r;
}

struct ufk_next *stack_open_nested(const struct ufk_host *host,
                                   const struct ufk_config *parent,
                                   const config_setting_t *group,
                                   const char *const *vars) {
  struct stack *s = xcalloc(1, sizeof *s);
  s->host = host;
  struct conf_err err;
  const struct daemon_conf *conf = pconf_daemon(parent);
  const char *dir = conf->plugin_dir;
  snprintf(s->name, sizeof s->name, "%s/%s", pconf_instance(parent),
           config_setting_name(group));
  for (int i = 0; vars && vars[i] && vars[i + 1]; i += 2) {
    size_t n = strlen(s->name);
    snprintf(s->name + n, sizeof s->name - n, "[%s]", vars[i + 1]);
  }
  int bad =
      build_levels(s, conf, group, config_setting_get_member(group, "layers"),
                   dir, vars, pconf_stats(parent), &err) < 0;
  if (!bad) s->top->above_minor = pconf_abi_minor(parent); /* its caller */
  if (bad || start_levels(s, &err) < 0) {
    /* A start's errno goes to the caller: ENOENT (an object missing) is an
     * answer, other errors are failures (diff's rescue tells them apart). */
    int e = bad ? EINVAL : host_last_errno();
    stack_destroy(s);
    host_error(e, "%s", conf_err_str(&err)); /* the parent's create tells */
    return NULL;
  }
  return &s->top->next;
}

void stack_close_nested(struct ufk_next *n) {
  if (n) stack_destroy(((struct level *)n->handle)->stack);
}

int64_t stack_size(const struct stack *s) {
  return s->top->size;
}

uint32_t stack_flags(const struct stack *s) {
  return s->top->caps.flags;
}

uint32_t stack_concurrency(const struct stack *s) {
  return s->top->serial ? 1 : s->top->caps.max_concurrency;
}

const char *stack_name(const struct stack *s) {
  return s->name;
}

int stack_read(struct stack *s, void *buf, uint64_t len, uint64_t off,
               uint32_t flags) {
  return n_read(s->top, buf, len, off, flags);
}

const void *stack_map(struct stack *s, uint64_t off, uint64_t len) {
  return n_map(s->top, off, len);
}

void stack_release(struct stack *s, const void *ptr, uint64_t off,
                   uint64_t len) {
  n_release(s->top, ptr, off, len);
}

int stack_prefetch(struct stack *s, uint64_t off, uint64_t len) {
  return n_prefetch(s->top, off, len);
}

int stack_is_zero(const struct stack *s, uint64_t off, uint64_t len) {
  if (!s->zero) return 0;
  uint64_t i = off / ZERO_GRAIN, end = (off + len) / ZERO_GRAIN;
  if (end > s->zero_bits) return 0;
  for (; i < end; i++)
    if (!bitmap_test(s->zero, i)) return 0;
  return 1;
}

int stack_open_session(struct stack *s, const struct ufk_session_info *info) {
  for (int i = 0; i < s->n; i++) {
    struct level *l = &s->levels[i];
    host_clear_error();
    if (l->plugin->p.open && l->plugin->p.open(l->inst, info) < 0) {
      log_error("%s: refused session %llu: %s", pconf_instance(l->cfg),
                (unsigned long long)info->id, host_last_error());
      while (--i >= 0)
        if (s->levels[i].plugin->p.close)
          s->levels[i].plugin->p.close(s->levels[i].inst, info);
      return -1;
    }
  }
  return 0;
}

void stack_close_session(struct stack *s, const struct ufk_session_info *info) {
  for (int i = s->n - 1; i >= 0; i--)
    if (s->levels[i].plugin->p.close)
      s->levels[i].plugin->p.close(s->levels[i].inst, info);
}

void stack_identity(struct stack *s, char *buf, size_t len) {
  struct level *o = identity_owner(s->top);
  if (o && enter(o, 0) == 0) {
    int r = o->plugin->p.identity(o->inst, buf, len);
    leave(o);
    if (r == 0) return;
  }
  const struct level *src = &s->levels[0];
  snprintf(buf, len, "%s:%lld", src->plugin->p.name, (long long)src->size);
}
