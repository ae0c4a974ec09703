#include "template.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mem.h"
#include "parse.h"

/* Keys of a template that are not listener settings. */
static const char *const own_keys[] = {
    "name", "vars", "expiry", "start_timeout", "one_shot", "serve_uids", NULL};

static int is_own_key(const char *k) {
  for (const char *const *o = own_keys; *o; o++)
    if (!strcmp(*o, k)) return 1;
  return 0;
}

int template_check_value(const char *what, const char *s, size_t max,
                         struct conf_err *err) {
  size_t n = strlen(s);
  if (!n) {
    conf_err_set(err, "%s is empty", what);
    return -1;
  }
  if (n > max) {
    conf_err_set(err, "%s is %zu bytes long; at most %zu are allowed", what, n,
                 max);
    return -1;
  }
  if (s[0] == '.') {
    conf_err_set(err,
                 "%s starts with '.': values such as \".\" and \"..\" could "
                 "leave the directory the template allows",
                 what);
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i])) {
      conf_err_set(err,
                   "%s has the byte 0x%02x at %zu: only [A-Za-z0-9._-] is "
                   "allowed (never '/')",
                   what, (unsigned char)s[i], i);
      return -1;
    }
  return 0;
}

static int var_name_ok(const char *s) {
  if (!isalpha((unsigned char)*s) && *s != '_') return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '_') return 0;
  return 1;
}

/* ---- placeholders ---- */

struct subst {
  const struct template_var *vars;
  int n;
  const char *id;
};

static const char *lookup(const struct subst *x, const char *name, size_t len) {
  if (len == 2 && !strncmp(name, "id", 2)) return x->id;
  for (int i = 0; i < x->n; i++)
    if (strlen(x->vars[i].name) == len && !strncmp(x->vars[i].name, name, len))
      return x->vars[i].value;
  return NULL;
}

/* s with each {name} replaced, "{{" read as '{' and "}}" as '}'
 * (malloc'd), or NULL
 * with why in err. */
static char *substitute(const char *s, const struct subst *x,
                        struct conf_err *err) {
  char *out = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&out, &len);
  if (!m) {
    conf_err_set(err, "out of memory");
    return NULL;
  }
  int bad = 0;
  for (const char *p = s; *p && !bad; p++) {
    if (*p == '}' && p[1] == '}') {
      fputc('}', m);
      p++;
      continue;
    }
    if (*p != '{') {
      fputc(*p, m);
      continue;
    }
    if (p[1] == '{') {
      fputc('{', m);
      p++;
      continue;
    }
    const char *end = strchr(p, '}');
    const char *v = end ? lookup(x, p + 1, (size_t)(end - p - 1)) : NULL;
    if (!v) {
      conf_err_set(err,
                   "'%s': '{' at byte %zu does not start a declared {variable} "
                   "(write '{{' for a '{' and '}}' for a '}')",
                   s, (size_t)(p - s));
      bad = 1;
      break;
    }
    fputs(v, m);
    p = end;
  }
  if (memstream_done(m, &out) < 0 && !bad) conf_err_set(err, "out of memory");
  if (bad) {
    free(out);
    return NULL;
  }
  return out;
}

/* Copies setting s under parent, substituting in strings.  0, or -1 with
 * why in err. */
static int copy_setting(config_setting_t *parent, const config_setting_t *s,
                        const struct subst *x, struct conf_err *err) {
  int type = config_setting_type(s);
  const char *name = config_setting_name(s);
  if (name && (!strcmp(name, "plugin") || !strcmp(name, "layer")) &&
      type == CONFIG_TYPE_STRING && strchr(config_setting_get_string(s), '{')) {
    conf_err_set(err,
                 "'%s' cannot hold a {variable}: the template alone "
                 "chooses plugins",
                 name);
    return -1;
  }
  config_setting_t *d = config_setting_add(parent, name, type);
  if (!d) {
    conf_err_set(err, "'%s' cannot be copied", name ? name : "element");
    return -1;
  }
  switch (type) {
  case CONFIG_TYPE_INT:
    config_setting_set_int(d, config_setting_get_int(s));
    return 0;
  case CONFIG_TYPE_INT64:
    config_setting_set_int64(d, config_setting_get_int64(s));
    return 0;
  case CONFIG_TYPE_FLOAT:
    config_setting_set_float(d, config_setting_get_float(s));
    return 0;
  case CONFIG_TYPE_BOOL:
    config_setting_set_bool(d, config_setting_get_bool(s));
    return 0;
  case CONFIG_TYPE_STRING: {
    char *v = substitute(config_setting_get_string(s), x, err);
    if (!v) return -1;
    config_setting_set_string(d, v);
    free(v);
    return 0;
  }
  default:
    for (int i = 0; i < config_setting_length(s); i++)
      if (copy_setting(d, config_setting_get_elem(s, (unsigned)i), x, err) < 0)
        return -1;
    return 0;
  }
}

/* The variables given, checked against those t declares. */
static int check_vars(const struct template_conf *t,
                      const struct template_var *vars, int nvars,
                      struct conf_err *err) {
  for (int i = 0; i < nvars; i++) {
    int declared = 0;
    for (int k = 0; k < t->n_vars && !declared; k++)
      declared = !strcmp(t->vars[k], vars[i].name);
    if (!declared) {
      char q[80], list[1100] = "";
      snprintf(q, sizeof q, "%.64s", vars[i].name);
      for (int k = 0, o = 0; k < t->n_vars && o < (int)sizeof list; k++)
        o += snprintf(list + o, sizeof list - (size_t)o, "%s%s", k ? ", " : "",
                      t->vars[k]);
      conf_err_set(err, "template %s declares no variable '%s' (%s%s)", t->name,
                   q, t->n_vars ? "it declares: " : "it declares none", list);
      return -1;
    }
    for (int k = 0; k < i; k++)
      if (!strcmp(vars[k].name, vars[i].name)) {
        conf_err_set(err, "variable '%s' given twice", vars[i].name);
        return -1;
      }
    char what[128];
    snprintf(what, sizeof what, "variable '%s'", vars[i].name);
    if (template_check_value(what, vars[i].value, TEMPLATE_MAX_VALUE, err) < 0)
      return -1;
  }
  for (int k = 0; k < t->n_vars; k++) {
    int given = 0;
    for (int i = 0; i < nvars && !given; i++)
      given = !strcmp(t->vars[k], vars[i].name);
    if (!given) {
      conf_err_set(err, "template %s needs variable '%s'", t->name, t->vars[k]);
      return -1;
    }
  }
  return 0;
}

/* Gives the socket to uid alone: socket_owner and allow_uids replaced. */
static void set_uid(config_setting_t *g, uid_t uid) {
  config_setting_remove(g, "socket_owner");
  config_setting_remove(g, "allow_uids");
  char n[16];
  snprintf(n, sizeof n, "%u", (unsigned)uid);
  config_setting_set_string(
      config_setting_add(g, "socket_owner", CONFIG_TYPE_STRING), n);
  config_setting_t *a = config_setting_add(g, "allow_uids", CONFIG_TYPE_ARRAY);
  config_setting_set_int64_elem(a, -1, (long long)uid);
}

char *template_expand(const struct daemon_conf *c,
                      const struct template_conf *t, const char *id,
                      const struct template_var *vars, int nvars,
                      const uid_t *uid, struct conf_err *err) {
  (void)c;
  if (check_vars(t, vars, nvars, err) < 0) return NULL;
  config_t out;
  config_init(&out);
  config_setting_t *ls = config_setting_add(config_root_setting(&out),
                                            "listeners", CONFIG_TYPE_LIST);
  config_setting_t *g = config_setting_add(ls, NULL, CONFIG_TYPE_GROUP);
  config_setting_set_string(config_setting_add(g, "name", CONFIG_TYPE_STRING),
                            id);
  struct subst x = {vars, nvars, id};
  char *text = NULL;
  for (int i = 0; i < config_setting_length(t->setting); i++) {
    const config_setting_t *s =
        config_setting_get_elem(t->setting, (unsigned)i);
    if (is_own_key(config_setting_name(s))) continue;
    if (copy_setting(g, s, &x, err) < 0) goto out;
  }
  if (uid) set_uid(g, *uid);
  size_t len = 0;
  FILE *m = open_memstream(&text, &len);
  if (m) config_write(&out, m);
  if (!m || memstream_done(m, &text) < 0) conf_err_set(err, "out of memory");
out:
  config_destroy(&out);
  return text;
}

/* ---- loading ---- */

static int load_vars(const struct daemon_conf *c, struct template_conf *t,
                     struct conf_err *err) {
  const config_setting_t *v = config_setting_get_member(t->setting, "vars");
  if (!v) return 0;
  if (!config_setting_is_array(v) && !config_setting_is_list(v))
    return conf_fail(c, v, err,
                     "template %s: vars must be a list of names such as "
                     "[ \"build_id\" ]",
                     t->name);
  for (int i = 0; i < config_setting_length(v); i++) {
    const config_setting_t *e = config_setting_get_elem(v, (unsigned)i);
    const char *n = config_setting_get_string(e);
    if (!n || !var_name_ok(n) || strlen(n) > 63 || !strcmp(n, "id"))
      return conf_fail(c, e, err,
                       "template %s: each variable is a name of "
                       "[A-Za-z_][A-Za-z0-9_]* up to 63 bytes, other than 'id' "
                       "(the restore's id, always set)",
                       t->name);
    if (t->n_vars == TEMPLATE_MAX_VARS)
      return conf_fail(c, e, err, "template %s: more than %d variables",
                       t->name, TEMPLATE_MAX_VARS);
    for (int k = 0; k < t->n_vars; k++)
      if (!strcmp(t->vars[k], n))
        return conf_fail(c, e, err, "template %s: variable '%s' declared twice",
                         t->name, n);
    t->vars[t->n_vars++] = n;
  }
  return 0;
}

/* The duration `key` of t in *ns, if set: at most 24h, and not 0 unless
 * zero_ok.  0, or -1 with why in err. */
static int load_duration(const struct daemon_conf *c, struct template_conf *t,
                         const char *key, int zero_ok, uint64_t *ns,
                         struct conf_err *err) {
  const config_setting_t *s = config_setting_get_member(t->setting, key);
  if (!s) return 0;
  const char *str = config_setting_get_string(s);
  long long n = config_setting_get_int64(s);
  int isint = config_setting_type(s) == CONFIG_TYPE_INT ||
              config_setting_type(s) == CONFIG_TYPE_INT64;
  if (isint && n >= 0)
    *ns = (uint64_t)n * 1000000000ull;
  else if (!str || ufk_parse_duration_ns(str, ns) < 0)
    return conf_fail(c, s, err, "template %s: %s must be a duration", t->name,
                     key);
  if (*ns > (uint64_t)TEMPLATE_MAX_EXPIRY_MS * 1000000ull)
    return conf_fail(c, s, err, "template %s: %s is at most 24h", t->name, key);
  if (!*ns && !zero_ok)
    return conf_fail(c, s, err, "template %s: %s must be more than 0", t->name,
                     key);
  return 0;
}

static int load_own(const struct daemon_conf *c, struct template_conf *t,
                    struct conf_err *err) {
  const config_setting_t *g = t->setting;
  t->start_timeout_ns = TEMPLATE_START_TIMEOUT_S * 1000000000ull;
  if (load_duration(c, t, "expiry", 1, &t->expiry_ns, err) < 0 ||
      load_duration(c, t, "start_timeout", 0, &t->start_timeout_ns, err) < 0)
    return -1;
  const config_setting_t *s;
  t->one_shot = 1;
  s = config_setting_get_member(g, "one_shot");
  if (s && config_setting_type(s) != CONFIG_TYPE_BOOL)
    return conf_fail(c, s, err, "template %s: one_shot must be a boolean",
                     t->name);
  if (s) t->one_shot = config_setting_get_bool(s);
  s = config_setting_get_member(g, "serve_uids");
  if (!s) return 0;
  int n = config_setting_length(s);
  if (!config_setting_is_array(s) && !config_setting_is_list(s)) n = -1;
  t->serve_uids = calloc(n > 0 ? (size_t)n : 1, sizeof *t->serve_uids);
  if (!t->serve_uids)
    return conf_fail(c, s, err, "template %s: out of memory", t->name);
  for (int i = 0; i < n; i++) {
    const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
    long long v = config_setting_get_int64(e);
    if ((config_setting_type(e) != CONFIG_TYPE_INT &&
         config_setting_type(e) != CONFIG_TYPE_INT64) ||
        v < 0 || v >= UINT32_MAX)
      n = -1;
    else
      t->serve_uids[t->n_serve_uids++] = (uid_t)v;
  }
  if (n < 0)
    return conf_fail(c, s, err,
                     "template %s: serve_uids must be an array of integer uids",
                     t->name);
  return 0;
}

/* Expands t once with every variable "x" and loads the result as a
 * listener, so a template that cannot work is refused at load. */
static int try_expand(const struct daemon_conf *c,
                      const struct template_conf *t, struct conf_err *err) {
  struct template_var v[TEMPLATE_MAX_VARS];
  for (int i = 0; i < t->n_vars; i++)
    v[i] = (struct template_var){t->vars[i], "x"};
  struct conf_err why;
  char *text = template_expand(c, t, "x", v, t->n_vars, NULL, &why);
  if (!text)
    return conf_fail(c, t->setting, err, "template %s: %s", t->name,
                     conf_err_str(&why));
  struct daemon_conf tmp;
  char name[128];
  snprintf(name, sizeof name, "template %s", t->name);
  int r = conf_load_string(&tmp, text, name, &why);
  conf_free(&tmp);
  free(text);
  if (r < 0) return conf_fail(c, t->setting, err, "%s", conf_err_str(&why));
  return 0;
}

static int load_one(const struct daemon_conf *c, struct template_conf *t,
                    struct conf_err *err) {
  const config_setting_t *g = t->setting;
  if (!config_setting_is_group(g))
    return conf_fail(c, g, err, "each template must be a group { ... }");
  if (!config_setting_lookup_string(g, "name", &t->name))
    return conf_fail(c, g, err, "a template needs name = \"NAME\"");
  if (template_check_value("template name", t->name, 63, err) < 0)
    return conf_fail(c, g, err,
                     "template '%s': its name must be 1-63 of "
                     "[A-Za-z0-9._-], not starting with '.'",
                     t->name);
  for (const struct template_conf *o = c->templates; o < t; o++)
    if (!strcmp(o->name, t->name))
      return conf_fail(c, g, err, "template name '%s' used twice", t->name);
  if (load_vars(c, t, err) < 0 || load_own(c, t, err) < 0) return -1;
  return try_expand(c, t, err);
}

int template_load_all(struct daemon_conf *c, struct conf_err *err) {
  config_setting_t *ts = config_lookup(&c->cfg, "templates");
  if (!ts) return 0;
  if (!config_setting_is_list(ts))
    return conf_fail(
        c, ts, err,
        "templates must be a list: templates = ( { name = ...; } );");
  int n = config_setting_length(ts);
  c->templates = calloc(n ? (size_t)n : 1, sizeof *c->templates);
  if (!c->templates) return conf_fail(c, ts, err, "out of memory");
  for (int i = 0; i < n; i++) {
    c->templates[i].setting = config_setting_get_elem(ts, (unsigned)i);
    c->n_templates = i + 1;
    if (load_one(c, &c->templates[i], err) < 0) return -1;
  }
  return 0;
}

void template_free_all(struct daemon_conf *c) {
  for (int i = 0; i < c->n_templates; i++)
    free(c->templates[i].serve_uids);
  free(c->templates);
  c->templates = NULL;
  c->n_templates = 0;
}

const struct template_conf *template_find(const struct daemon_conf *c,
                                          const char *name) {
  for (int i = 0; i < c->n_templates; i++)
    if (!strcmp(c->templates[i].name, name)) return &c->templates[i];
  return NULL;
}
