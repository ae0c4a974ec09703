#include "pconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hosterror.h"
#include "mem.h"
#include "parse.h"

#define MAX_VARS 8

struct owned {
  struct owned *next;
  char s[];
};

struct ufk_config {
  const struct daemon_conf *conf;
  const config_setting_t *group;
  const struct ufk_param *params;
  uint32_t abi_minor; /* of the plugin the settings are for */
  char instance[160];
  char *vars[2 * MAX_VARS + 1];
  struct listener_stats *stats;
  pthread_mutex_t lock;
  struct owned *owned; /* substituted strings, freed with the config */
};

static const struct ufk_param *find_param(const struct ufk_config *c,
                                          const char *key) {
  for (const struct ufk_param *p = c->params; p && p->key; p++)
    if (!strcmp(p->key, key)) return p;
  return NULL;
}

/* Replaces every "{name}" of c's vars in s; the result lives as long as c. */
static const char *substitute(struct ufk_config *c, const char *s) {
  if (!c->vars[0] || !strchr(s, '{')) return s;
  char *out = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&out, &len);
  while (*s) {
    int done = 0;
    for (int i = 0; c->vars[i] && !done; i += 2) {
      size_t n = strlen(c->vars[i]);
      if (s[0] == '{' && !strncmp(s + 1, c->vars[i], n) && s[n + 1] == '}') {
        fputs(c->vars[i + 1], m);
        s += n + 2;
        done = 1;
      }
    }
    if (!done) fputc(*s++, m);
  }
  fclose(m);
  struct owned *o = xmalloc(sizeof *o + len + 1);
  memcpy(o->s, out, len + 1);
  free(out);
  pthread_mutex_lock(&c->lock);
  o->next = c->owned;
  c->owned = o;
  pthread_mutex_unlock(&c->lock);
  return o->s;
}

/* The setting for key, or NULL; *text is its string form (a string value
 * or the default), NULL for native non-string values. */
static const config_setting_t *lookup(const struct ufk_config *c,
                                      const char *key, const char **text) {
  const config_setting_t *s =
      c->group ? config_setting_get_member(c->group, key) : NULL;
  if (s) {
    *text = config_setting_type(s) == CONFIG_TYPE_STRING
                ? config_setting_get_string(s)
                : NULL;
    return s;
  }
  const struct ufk_param *p = find_param(c, key);
  *text = p ? p->default_value : NULL;
  return NULL;
}

/* Why key's value (setting s, or the group for a default) is refused. */
static int bad_value(const struct ufk_config *c, const config_setting_t *s,
                     const char *key, const char *what, struct conf_err *e) {
  return conf_fail(c->conf, s ? s : c->group, e, "%s: '%s' must be %s",
                   c->instance, key, what);
}

static int get_string(const struct ufk_config *c, const char *key,
                      const char **out, struct conf_err *e) {
  const char *text;
  const config_setting_t *s = lookup(c, key, &text);
  if (s && !text) return bad_value(c, s, key, "a string", e);
  if (!text) return 1;
  *out = substitute((struct ufk_config *)c, text);
  return 0;
}

static int is_int(const config_setting_t *s) {
  return s && (config_setting_type(s) == CONFIG_TYPE_INT ||
               config_setting_type(s) == CONFIG_TYPE_INT64);
}

static int get_int(const struct ufk_config *c, const char *key, int64_t *out,
                   struct conf_err *e) {
  const char *text;
  const config_setting_t *s = lookup(c, key, &text);
  if (is_int(s)) {
    *out = config_setting_get_int64(s);
    return 0;
  }
  if (!s && !text) return 1;
  if (!text || ufk_parse_i64(text, out) < 0)
    return bad_value(c, s, key, "an integer", e);
  return 0;
}

static int get_bool(const struct ufk_config *c, const char *key, int *out,
                    struct conf_err *e) {
  const char *text;
  const config_setting_t *s = lookup(c, key, &text);
  if (s && config_setting_type(s) == CONFIG_TYPE_BOOL) {
    *out = config_setting_get_bool(s);
    return 0;
  }
  if (!s && !text) return 1;
  if (!text || ufk_parse_bool(text, out) < 0)
    return bad_value(c, s, key, "a boolean (true/false)", e);
  return 0;
}

static int get_scaled(const struct ufk_config *c, const char *key,
                      uint64_t *out, int duration, struct conf_err *e) {
  const char *text;
  const config_setting_t *s = lookup(c, key, &text);
  const char *what = duration ? "a duration such as \"250ms\" or \"10s\""
                              : "a size such as \"4M\" or \"2G\"";
  if (is_int(s)) {
    long long v = config_setting_get_int64(s);
    if (v < 0) return bad_value(c, s, key, what, e);
    *out = (uint64_t)v * (duration ? 1000000000ull : 1);
    return 0;
  }
  if (!s && !text) return 1;
  if (!text || (duration ? ufk_parse_duration_ns(text, out)
                         : ufk_parse_size(text, out)) < 0)
    return bad_value(c, s, key, what, e);
  return 0;
}

/* A string list may be written as a list, an array, or one string. */
static int list_count(const struct ufk_config *c, const char *key,
                      struct conf_err *e) {
  const char *text;
  const config_setting_t *s = lookup(c, key, &text);
  if (!s) return 0;
  if (text) return 1;
  if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
    return bad_value(c, s, key, "a list of strings", e);
  for (int i = 0; i < config_setting_length(s); i++)
    if (config_setting_type(config_setting_get_elem(s, (unsigned)i)) !=
        CONFIG_TYPE_STRING)
      return bad_value(c, s, key, "a list of strings", e);
  return config_setting_length(s);
}

/* The host's getters (the ABI): a refusal goes to host_error. */
static int told(int r, const struct conf_err *e) {
  if (r < 0) host_error(EINVAL, "%s", conf_err_str(e));
  return r;
}

int pconf_get_string(const struct ufk_config *c, const char *key,
                     const char **out) {
  struct conf_err e;
  return told(get_string(c, key, out, &e), &e);
}

int pconf_get_int(const struct ufk_config *c, const char *key, int64_t *out) {
  struct conf_err e;
  return told(get_int(c, key, out, &e), &e);
}

int pconf_get_bool(const struct ufk_config *c, const char *key, int *out) {
  struct conf_err e;
  return told(get_bool(c, key, out, &e), &e);
}

int pconf_get_size(const struct ufk_config *c, const char *key, uint64_t *out) {
  struct conf_err e;
  return told(get_scaled(c, key, out, 0, &e), &e);
}

int pconf_get_duration_ns(const struct ufk_config *c, const char *key,
                          uint64_t *out) {
  struct conf_err e;
  return told(get_scaled(c, key, out, 1, &e), &e);
}

int pconf_get_list_count(const struct ufk_config *c, const char *key) {
  struct conf_err e;
  return told(list_count(c, key, &e), &e);
}

int pconf_get_list_item(const struct ufk_config *c, const char *key, int index,
                        const char **out) {
  const char *text;
  const config_setting_t *s = lookup(c, key, &text);
  int n = pconf_get_list_count(c, key);
  if (n < 0) return -1;
  if (index < 0 || index >= n) return 1;
  if (!text)
    text =
        config_setting_get_string(config_setting_get_elem(s, (unsigned)index));
  *out = substitute((struct ufk_config *)c, text);
  return 0;
}

const char *pconf_where(const struct ufk_config *c, const char *key) {
  static __thread char buf[512];
  const char *text;
  const config_setting_t *s = lookup(c, key, &text);
  return conf_where(c->conf, s ? s : c->group, buf, sizeof buf);
}

struct ufk_config *pconf_new(const struct daemon_conf *conf,
                             const config_setting_t *group,
                             const struct ufk_plugin *plugin,
                             const char *instance, const char *const *vars,
                             struct listener_stats *stats) {
  struct ufk_config *c = xcalloc(1, sizeof *c);
  c->conf = conf;
  c->group = group;
  c->params = plugin->params;
  c->abi_minor = plugin->abi_minor;
  c->stats = stats;
  pthread_mutex_init(&c->lock, NULL);
  snprintf(c->instance, sizeof c->instance, "%s", instance);
  for (int i = 0; vars && vars[i] && vars[i + 1] && i < 2 * MAX_VARS; i += 2) {
    c->vars[i] = xstrdup(vars[i]);
    c->vars[i + 1] = xstrdup(vars[i + 1]);
  }
  return c;
}

void pconf_free(struct ufk_config *c) {
  if (!c) return;
  for (int i = 0; c->vars[i]; i++)
    free(c->vars[i]);
  while (c->owned) {
    struct owned *o = c->owned;
    c->owned = o->next;
    free(o);
  }
  pthread_mutex_destroy(&c->lock);
  free(c);
}

const char *pconf_instance(const struct ufk_config *c) {
  return c->instance;
}

const config_setting_t *pconf_group(const struct ufk_config *c) {
  return c->group;
}

const struct daemon_conf *pconf_daemon(const struct ufk_config *c) {
  return c->conf;
}

struct listener_stats *pconf_stats(const struct ufk_config *c) {
  return c->stats;
}

uint32_t pconf_abi_minor(const struct ufk_config *c) {
  return c->abi_minor;
}

/* Checks one key's value by reading it as its declared type. */
static int check_type(const struct ufk_config *c, const struct ufk_param *p,
                      struct conf_err *e) {
  const char *s;
  int64_t i;
  int b;
  uint64_t u;
  const config_setting_t *g;
  switch (p->type) {
  case UFK_T_STRING:
    return get_string(c, p->key, &s, e) < 0 ? -1 : 0;
  case UFK_T_INT:
    return get_int(c, p->key, &i, e) < 0 ? -1 : 0;
  case UFK_T_BOOL:
    return get_bool(c, p->key, &b, e) < 0 ? -1 : 0;
  case UFK_T_SIZE:
    return get_scaled(c, p->key, &u, 0, e) < 0 ? -1 : 0;
  case UFK_T_DURATION:
    return get_scaled(c, p->key, &u, 1, e) < 0 ? -1 : 0;
  case UFK_T_STRING_LIST:
    return list_count(c, p->key, e) < 0 ? -1 : 0;
  case UFK_T_GROUP:
    g = c->group ? config_setting_get_member(c->group, p->key) : NULL;
    return g && !config_setting_is_group(g)
               ? bad_value(c, g, p->key, "a group { ... }", e)
               : 0;
  default:
    return 0;
  }
}

int pconf_validate(const struct ufk_config *c, const char *const *skip,
                   struct conf_err *err) {
  for (int i = 0; c->group && i < config_setting_length(c->group); i++) {
    const config_setting_t *s = config_setting_get_elem(c->group, (unsigned)i);
    const char *name = config_setting_name(s);
    int skipped = 0;
    for (const char *const *k = skip; k && *k; k++)
      skipped |= !strcmp(*k, name);
    if (!skipped && !find_param(c, name))
      return conf_fail(c->conf, s, err,
                       "%s: unknown setting '%s' (uffdkit --describe lists "
                       "them)",
                       c->instance, name);
  }
  for (const struct ufk_param *p = c->params; p && p->key; p++) {
    const config_setting_t *s =
        c->group ? config_setting_get_member(c->group, p->key) : NULL;
    if ((p->flags & UFK_PARAM_REQUIRED) && !s)
      return conf_fail(c->conf, c->group, err,
                       "%s: missing required setting '%s'", c->instance,
                       p->key);
    if (check_type(c, p, err) < 0) return -1;
  }
  return 0;
}

int pconf_failed(const struct ufk_config *c, const char *what,
                 struct conf_err *err) {
  return conf_fail(c->conf, c->group, err, "%s: %s%s", c->instance, what,
                   host_last_error());
}
