#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "confinclude.h"
#include "log.h"
#include "mem.h"
#include "parse.h"

enum ktype {
  K_STRING,
  K_INT,
  K_BOOL,
  K_SIZE,
  K_DURATION,
  K_GROUP,
  K_LIST,
  K_IDS,
  K_DURATION_AUTO, /* a duration, or "auto": DURATION_AUTO */
};

/* One key of a group of the daemon's own schema; off is where it is stored. */
struct key_spec {
  const char *key;
  enum ktype type;
  int required;
  size_t off;
  const char *def; /* default, as a string */
};

#define LK(k, t, r, field, def)                                                \
  { k, t, r, offsetof(struct listener_conf, field), def }
static const struct key_spec listener_keys[] = {
    LK("name", K_STRING, 1, name, NULL),
    LK("socket", K_STRING, 1, socket, NULL),
    LK("source", K_GROUP, 1, source, NULL),
    LK("layers", K_LIST, 0, layers, NULL),
    LK("socket_mode", K_STRING, 0, socket_mode_str, "0600"),
    LK("socket_owner", K_STRING, 0, socket_owner, NULL),
    LK("socket_group", K_STRING, 0, socket_group, NULL),
    LK("allow_uids", K_IDS, 0, allow_uids, NULL),
    LK("allow_gids", K_IDS, 0, allow_gids, NULL),
    LK("max_sessions", K_INT, 0, max_sessions, "1024"),
    LK("handshake_timeout", K_DURATION, 0, handshake_timeout_ns, "5s"),
    LK("max_handshake_bytes", K_SIZE, 0, max_handshake_bytes, "64K"),
    LK("max_regions", K_INT, 0, max_regions, "64"),
    LK("on_source_error", K_STRING, 0, on_source_error_str, "kill"),
    LK("fault_around", K_INT, 0, fault_around, "0"),
    LK("spin", K_DURATION_AUTO, 0, spin_ns, "auto"),
    LK("background_fill", K_BOOL, 0, background_fill, "false"),
    {NULL, 0, 0, 0, NULL},
};

#define GK(k, t, field, def)                                                   \
  { k, t, 0, offsetof(struct daemon_conf, field), def }
static const struct key_spec global_keys[] = {
    GK("plugin_dir", K_STRING, plugin_dir, NULL),
    GK("log_level", K_STRING, log_level_str, "info"),
    GK("log_format", K_STRING, log_format, "text"),
    GK("control_socket", K_STRING, control_socket, NULL),
    GK("metrics", K_STRING, metrics_listen, NULL),
    GK("worker_restart_delay", K_DURATION, worker_restart_delay_ns, "100ms"),
    GK("max_restores", K_INT, max_restores, "1024"),
    GK("control_allow_uids", K_IDS, control_allow_uids, NULL),
    GK("control_allow_gids", K_IDS, control_allow_gids, NULL),
    {NULL, 0, 0, 0, NULL},
};

#define PK(k, t, field, def)                                                   \
  { k, t, 0, offsetof(struct listener_conf, field), def }
static const struct key_spec prefetch_keys[] = {
    PK("working_set", K_STRING, wset_path, NULL),
    PK("mode", K_STRING, wset_mode_str, "auto"),
    PK("record_for", K_DURATION, record_for_ns, "0"),
    PK("max_gap", K_INT, replay_max_gap, "0"),
    {NULL, 0, 0, 0, NULL},
};

/* The file (flen bytes of it; -1: all) and line of line `line` of the
 * loaded text: in an included file if the text came from one (see
 * confinclude.h). */
static int origin(const struct daemon_conf *c, int line, const char **f,
                  int *flen) {
  int at = c->text ? conf_origin(c->text, line, f, flen) : line;
  if (!c->text || !*f) {
    *f = c->file;
    *flen = -1;
  }
  return at;
}

/* The file and line of setting s. */
static int setting_origin(const struct daemon_conf *c,
                          const config_setting_t *s, const char **f,
                          int *flen) {
  *f = config_setting_source_file(s);
  *flen = -1;
  if (*f) return (int)config_setting_source_line(s);
  return origin(c, (int)config_setting_source_line(s), f, flen);
}

const char *conf_where(const struct daemon_conf *c, const config_setting_t *s,
                       char *buf, size_t len) {
  const char *f;
  int flen, line = setting_origin(c, s, &f, &flen);
  snprintf(buf, len, "%.*s:%d", flen, f, line);
  return buf;
}

int conf_fail(const struct daemon_conf *c, const config_setting_t *s,
              struct conf_err *err, const char *fmt, ...) {
  char msg[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const char *f;
  int flen, line = setting_origin(c, s, &f, &flen);
  return conf_err_at(err, f, flen, line, "%s", msg);
}

static const char *type_name(enum ktype t) {
  static const char *const n[] = {"a string",
                                  "an integer",
                                  "a boolean",
                                  "a size",
                                  "a duration",
                                  "a group",
                                  "a list",
                                  "an array of integer ids",
                                  "a duration or \"auto\""};
  return n[t];
}

/* Reads setting s (or, if NULL, the default text) as type t into dst. */
static int store_value(const struct daemon_conf *c, const struct key_spec *k,
                       const config_setting_t *s, void *dst,
                       struct conf_err *err) {
  /* A native value of another type is an error, never the default. */
  const char *text = s ? NULL : k->def;
  int st = s ? config_setting_type(s) : CONFIG_TYPE_STRING;
  if (s && st == CONFIG_TYPE_STRING) text = config_setting_get_string(s);
  switch (k->type) {
  case K_STRING:
    if (s && st != CONFIG_TYPE_STRING) break;
    *(const char **)dst = text;
    return 0;
  case K_GROUP:
  case K_LIST:
    if (!s || st != (k->type == K_GROUP ? CONFIG_TYPE_GROUP : CONFIG_TYPE_LIST))
      break;
    *(config_setting_t **)dst = (config_setting_t *)s;
    return 0;
  case K_BOOL:
    if (s && st == CONFIG_TYPE_BOOL) {
      *(int *)dst = config_setting_get_bool(s);
      return 0;
    }
    if (text && ufk_parse_bool(text, (int *)dst) == 0) return 0;
    break;
  case K_INT:
    if (s && (st == CONFIG_TYPE_INT || st == CONFIG_TYPE_INT64)) {
      *(int64_t *)dst = config_setting_get_int64(s);
      return 0;
    }
    if (text && ufk_parse_i64(text, (int64_t *)dst) == 0) return 0;
    break;
  case K_DURATION_AUTO:
    if (text && !strcmp(text, "auto")) {
      *(uint64_t *)dst = DURATION_AUTO;
      return 0;
    }
    /* fall through */
  case K_SIZE:
  case K_DURATION:
    if (s && (st == CONFIG_TYPE_INT || st == CONFIG_TYPE_INT64)) {
      long long v = config_setting_get_int64(s);
      uint64_t unit = k->type == K_SIZE ? 1 : 1000000000ull;
      if (v < 0) break;
      if ((uint64_t)v > UINT64_MAX / unit)
        return conf_fail(c, s, err, "'%s' = %lld is out of range", k->key, v);
      *(uint64_t *)dst = (uint64_t)v * unit;
      return 0;
    }
    if (text &&
        (k->type == K_SIZE ? ufk_parse_size(text, (uint64_t *)dst)
                           : ufk_parse_duration_ns(text, (uint64_t *)dst)) == 0)
      return 0;
    break;
  case K_IDS:
    break; /* handled by store_ids */
  }
  if (!s) return 0;
  return conf_fail(c, s, err, "'%s' must be %s", k->key, type_name(k->type));
}

/* allow_uids = [ 0, 1000 ];  stored as a malloc'd array and its count. */
static int store_ids(const struct daemon_conf *c, const struct key_spec *k,
                     const config_setting_t *s, void *dst,
                     struct conf_err *err) {
  if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
      config_setting_type(s) != CONFIG_TYPE_LIST)
    return conf_fail(c, s, err, "'%s' must be %s", k->key, type_name(k->type));
  int n = config_setting_length(s);
  uint32_t *ids = calloc((size_t)n + 1, sizeof *ids);
  if (!ids) return conf_fail(c, s, err, "'%s': out of memory", k->key);
  for (int i = 0; i < n; i++) {
    const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
    long long v = config_setting_get_int64(e);
    if ((config_setting_type(e) != CONFIG_TYPE_INT &&
         config_setting_type(e) != CONFIG_TYPE_INT64) ||
        v < 0 || v > UINT32_MAX) {
      free(ids);
      return conf_fail(c, e, err, "'%s' must be %s", k->key,
                       type_name(k->type));
    }
    ids[i] = (uint32_t)v;
  }
  *(uint32_t **)dst = ids;
  *(int *)((char *)dst + sizeof(void *)) = n; /* the count follows */
  return 0;
}

static const struct key_spec *find_key(const struct key_spec *keys,
                                       const char *name) {
  for (; keys->key; keys++)
    if (!strcmp(keys->key, name)) return keys;
  return NULL;
}

/* Applies the schema keys to group g, storing into base.  Unknown keys
 * are errors, except those in `also` (handled by the caller). */
static int apply_schema(const struct daemon_conf *c, const config_setting_t *g,
                        const struct key_spec *keys, const char *const *also,
                        const char *what, void *base, struct conf_err *err) {
  for (int i = 0; i < config_setting_length(g); i++) {
    const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
    const char *name = config_setting_name(s);
    int extra = 0;
    for (const char *const *a = also; a && *a; a++)
      extra |= !strcmp(*a, name);
    if (!extra && !find_key(keys, name))
      return conf_fail(c, s, err, "%s: unknown setting '%s'", what, name);
  }
  for (const struct key_spec *k = keys; k->key; k++) {
    const config_setting_t *s = config_setting_get_member(g, k->key);
    if (!s && k->required)
      return conf_fail(c, g, err, "%s: missing required setting '%s'", what,
                       k->key);
    int r = k->type == K_IDS
                ? (s ? store_ids(c, k, s, (char *)base + k->off, err) : 0)
                : store_value(c, k, s, (char *)base + k->off, err);
    if (r < 0) return -1;
  }
  return 0;
}

static int valid_name(const char *s) {
  if (!s || !*s || strlen(s) > 63) return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
      return 0;
  return 1;
}

static int pick(const char *v, const char *const *names, int *out) {
  for (int i = 0; names[i]; i++)
    if (!strcmp(v, names[i])) {
      *out = i;
      return 0;
    }
  return -1;
}

/* The setting `key` of group g if present, else g: where to point. */
static const config_setting_t *at(const config_setting_t *g, const char *key) {
  const config_setting_t *s = config_setting_get_member(g, key);
  return s ? s : g;
}

/* Checks values whose meaning goes beyond their type. */
static int check_listener(const struct daemon_conf *c, struct listener_conf *l,
                          struct conf_err *err) {
  static const char *const policies[] = {"kill", "sigbus", "hang", NULL};
  static const char *const modes[] = {"off", "record", "replay", "auto", NULL};
  const config_setting_t *g = l->setting;
  const config_setting_t *pf = config_setting_get_member(g, "prefetch");
  char *end;
  if (!valid_name(l->name))
    return conf_fail(c, at(g, "name"), err,
                     "listener name '%s' must be 1-63 of [A-Za-z0-9._-]",
                     l->name);
  if (!*l->socket || strlen(l->socket) >= 108)
    return conf_fail(c, at(g, "socket"), err,
                     "listener '%s': socket path must be 1-107 bytes", l->name);
  errno = 0;
  unsigned long m = strtoul(l->socket_mode_str, &end, 8);
  if (errno || *end || !*l->socket_mode_str || m > 0777)
    return conf_fail(
        c, at(g, "socket_mode"), err,
        "listener '%s': socket_mode '%s' must be an octal string such "
        "as \"0660\"",
        l->name, l->socket_mode_str);
  l->socket_mode = (unsigned)m;
  if (pick(l->on_source_error_str, policies, &l->on_source_error) < 0)
    return conf_fail(
        c, at(g, "on_source_error"), err,
        "listener '%s': on_source_error must be kill, sigbus or hang", l->name);
  if (l->max_sessions < 1)
    return conf_fail(c, at(g, "max_sessions"), err,
                     "listener '%s': max_sessions must be >= 1", l->name);
  if (l->max_regions < 1 || l->max_regions > CONF_MAX_REGIONS)
    return conf_fail(c, at(g, "max_regions"), err,
                     "listener '%s': max_regions must be 1..%d", l->name,
                     CONF_MAX_REGIONS);
  if (l->max_handshake_bytes < 4096 || l->max_handshake_bytes > (1u << 24))
    return conf_fail(c, at(g, "max_handshake_bytes"), err,
                     "listener '%s': max_handshake_bytes must be 4K..16M",
                     l->name);
  if (l->handshake_timeout_ns < 1000000ull ||
      l->handshake_timeout_ns > 3600000000000ull)
    return conf_fail(c, at(g, "handshake_timeout"), err,
                     "listener '%s': handshake_timeout must be 1ms to 1h",
                     l->name);
  if (l->spin_ns > 10000000 && l->spin_ns != DURATION_AUTO)
    return conf_fail(c, at(g, "spin"), err,
                     "listener '%s': spin must be \"auto\" or 0 to 10ms",
                     l->name);
  if (l->fault_around < 0 || l->fault_around > 512)
    return conf_fail(c, at(g, "fault_around"), err,
                     "listener '%s': fault_around must be 0..512 pages",
                     l->name);
  if (pick(l->wset_mode_str, modes, &l->wset_mode) < 0)
    return conf_fail(
        c, pf ? at(pf, "mode") : g, err,
        "listener '%s': prefetch mode must be off, record, replay or "
        "auto",
        l->name);
  if (l->replay_max_gap < 0 || l->replay_max_gap > 64)
    return conf_fail(c, pf ? at(pf, "max_gap") : g, err,
                     "listener '%s': prefetch max_gap must be 0..64 pages",
                     l->name);
  if (l->wset_mode != WSET_OFF && !l->wset_path)
    return conf_fail(c, pf ? pf : g, err,
                     "listener '%s': prefetch needs working_set = \"PATH\"",
                     l->name);
  return 0;
}

static int check_source(const struct daemon_conf *c, struct listener_conf *l,
                        struct conf_err *err) {
  const char *p;
  if (!config_setting_lookup_string(l->source, "plugin", &p))
    return conf_fail(c, l->source, err,
                     "listener '%s': source needs plugin = \"NAME\"", l->name);
  if (!l->layers) return 0;
  for (int i = 0; i < config_setting_length(l->layers); i++) {
    config_setting_t *e = config_setting_get_elem(l->layers, (unsigned)i);
    if (!config_setting_is_group(e) ||
        !config_setting_lookup_string(e, "layer", &p))
      return conf_fail(c, e, err,
                       "listener '%s': each layer must be a group with layer = "
                       "\"NAME\"",
                       l->name);
  }
  return 0;
}

/* path with "//", "." and ".." resolved in its text (and its directory
 * through realpath when it exists), so two spellings of one socket
 * compare equal. */
static const char *normal_path(const char *path, char *out, size_t cap) {
  char buf[PATH_MAX], *parts[PATH_MAX / 2], *save = NULL;
  int n = 0, abs = path[0] == '/';
  snprintf(buf, sizeof buf, "%s", path);
  for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save))
    if (!strcmp(t, "..") && n > 0 && strcmp(parts[n - 1], ".."))
      n--;
    else if (strcmp(t, ".") && !(abs && !n && !strcmp(t, "..")))
      parts[n++] = t;
  size_t o = 0;
  out[0] = 0;
  for (int i = 0; i < n; i++)
    o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s%s",
                          i || abs ? "/" : "", parts[i]);
  if (abs && !n) snprintf(out, cap, "/");
  char *slash = strrchr(out, '/'), dir[PATH_MAX];
  if (slash && slash != out) {
    *slash = 0;
    if (realpath(out, dir) && strlen(dir) + strlen(slash + 1) + 2 <= cap) {
      memmove(out + strlen(dir) + 1, slash + 1, strlen(slash + 1) + 1);
      memcpy(out, dir, strlen(dir));
      out[strlen(dir)] = '/';
    } else {
      *slash = '/';
    }
  }
  return out;
}

static int load_listener(struct daemon_conf *c, config_setting_t *g,
                         struct listener_conf *l, struct conf_err *err) {
  static const char *const also[] = {"prefetch", NULL};
  memset(l, 0, sizeof *l);
  l->setting = g;
  if (!config_setting_is_group(g))
    return conf_fail(c, g, err, "each listener must be a group { ... }");
  if (apply_schema(c, g, listener_keys, also, "listener", l, err) < 0)
    return -1;
  config_setting_t *pf = config_setting_get_member(g, "prefetch");
  l->wset_mode_str = "off";
  if (pf) {
    if (!config_setting_is_group(pf))
      return conf_fail(c, pf, err, "'prefetch' must be a group");
    if (apply_schema(c, pf, prefetch_keys, NULL, "prefetch", l, err) < 0)
      return -1;
  }
  if (check_listener(c, l, err) < 0 || check_source(c, l, err) < 0) return -1;
  char mine[PATH_MAX], theirs[PATH_MAX];
  normal_path(l->socket, mine, sizeof mine);
  for (struct listener_conf *o = c->listeners; o < l; o++) {
    if (!strcmp(o->name, l->name))
      return conf_fail(c, g, err, "listener name '%s' used twice", l->name);
    if (!strcmp(normal_path(o->socket, theirs, sizeof theirs), mine))
      return conf_fail(c, at(g, "socket"), err,
                       "socket '%s' is the same path as listener '%s''s '%s'",
                       l->socket, o->name, o->socket);
  }
  return 0;
}

static int load_global(struct daemon_conf *c, struct conf_err *err) {
  config_setting_t *root = config_root_setting(&c->cfg);
  for (int i = 0; i < config_setting_length(root); i++) {
    const config_setting_t *s = config_setting_get_elem(root, (unsigned)i);
    const char *n = config_setting_name(s);
    if (strcmp(n, "uffdkit") && strcmp(n, "listeners") &&
        strcmp(n, "templates"))
      return conf_fail(c, s, err,
                       "unknown top-level setting '%s' (expected uffdkit, "
                       "listeners, templates)",
                       n);
  }
  config_setting_t *g = config_lookup(&c->cfg, "uffdkit");
  for (const struct key_spec *k = global_keys; k->key; k++)
    store_value(c, k, NULL, (char *)c + k->off, err);
  if (g) {
    if (!config_setting_is_group(g))
      return conf_fail(c, g, err, "'uffdkit' must be a group");
    if (apply_schema(c, g, global_keys, NULL, "uffdkit", c, err) < 0) return -1;
  }
  c->log_level = log_level_from_name(c->log_level_str);
  if (c->log_level < 0)
    return conf_fail(c, g, err,
                     "log_level '%s' must be error, warn, info or debug",
                     c->log_level_str);
  if (strcmp(c->log_format, "text") && strcmp(c->log_format, "json"))
    return conf_fail(c, g, err, "log_format must be text or json");
  if (c->max_restores < 0 || c->max_restores > 1000000)
    return conf_fail(c,
                     g ? at(g, "max_restores") : config_root_setting(&c->cfg),
                     err, "max_restores must be 0..1000000");
  return 0;
}

static int needs_something(struct daemon_conf *c, struct conf_err *err) {
  return conf_err_at(err, c->file, -1, 0,
                     "needs listeners = ( { name = ...; socket = ...; "
                     "source = { plugin = ...; }; } ); or templates = ( { "
                     "name = ...; ... } ); with one at least");
}

/* A daemon with nothing to serve is a mistake: listeners, templates
 * (served on request), or both, and at least one of them. */
static int load(struct daemon_conf *c, struct conf_err *err) {
  if (load_global(c, err) < 0) return -1;
  config_setting_t *ls = config_lookup(&c->cfg, "listeners");
  if (ls && !config_setting_is_list(ls))
    return conf_fail(c, ls, err,
                     "'listeners' must be a list: listeners = ( { ... } );");
  c->n_listeners = ls ? config_setting_length(ls) : 0;
  if (c->n_listeners) {
    c->listeners = calloc((size_t)c->n_listeners, sizeof *c->listeners);
    if (!c->listeners) {
      c->n_listeners = 0;
      return conf_err_at(err, c->file, -1, 0, "out of memory");
    }
  }
  for (int i = 0; i < c->n_listeners; i++)
    if (load_listener(c, config_setting_get_elem(ls, (unsigned)i),
                      &c->listeners[i], err) < 0)
      return -1;
  if (template_load_all(c, err) < 0) return -1;
  return c->n_listeners || c->n_templates ? 0 : needs_something(c, err);
}

int conf_load_string(struct daemon_conf *c, const char *text, const char *name,
                     struct conf_err *err) {
  memset(c, 0, sizeof *c);
  config_init(&c->cfg);
  c->file = strdup(name);
  c->text = strdup(text);
  if (!c->file || !c->text)
    return conf_err_at(err, name, -1, 0, "out of memory");
  if (!config_read_string(&c->cfg, c->text)) {
    const char *f;
    int flen, line = origin(c, config_error_line(&c->cfg), &f, &flen);
    return conf_err_at(err, f, flen, line, "%s", config_error_text(&c->cfg));
  }
  return load(c, err);
}

int conf_load_file(struct daemon_conf *c, const char *path,
                   struct conf_err *err) {
  char *text;
  if (conf_expand_file(path, &text, err) < 0) {
    memset(c, 0, sizeof *c);
    config_init(&c->cfg);
    return -1;
  }
  int r = conf_load_string(c, text, path, err);
  free(text);
  return r;
}

int conf_load_fd(struct daemon_conf *c, int fd, const char *name,
                 struct conf_err *err) {
  char *text = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&text, &len);
  char buf[8192];
  ssize_t n;
  off_t at = 0;
  while (m && (n = pread(fd, buf, sizeof buf, at)) > 0) {
    fwrite(buf, 1, (size_t)n, m);
    at += n;
  }
  if (!m || memstream_done(m, &text) < 0) {
    memset(c, 0, sizeof *c);
    config_init(&c->cfg);
    return conf_err_at(err, name, -1, 0, "out of memory");
  }
  int r = conf_load_string(c, text, name, err);
  free(text);
  return r;
}

void conf_free(struct daemon_conf *c) {
  for (int i = 0; i < c->n_listeners; i++) {
    free(c->listeners[i].allow_uids);
    free(c->listeners[i].allow_gids);
  }
  free(c->listeners);
  free(c->control_allow_uids);
  free(c->control_allow_gids);
  template_free_all(c);
  config_destroy(&c->cfg);
  free(c->file);
  free(c->text);
  memset(c, 0, sizeof *c);
}

const struct listener_conf *conf_find_listener(const struct daemon_conf *c,
                                               const char *name) {
  for (int i = 0; i < c->n_listeners; i++)
    if (!strcmp(c->listeners[i].name, name)) return &c->listeners[i];
  return NULL;
}
