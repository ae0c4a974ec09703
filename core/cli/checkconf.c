#include "checkconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "host.h"
#include "log.h"
#include "metrics.h"
#include "plugin.h"
#include "stack.h"
#include "template.h"

/* Every variable is set to this, a value every rule allows, and the id to
 * the template's name: a template is checked as a serve of it would be. */
#define PLACEHOLDER "x"

/* The deepest setting under s read from line, its path in path[]: its
 * depth, or -1. */
static int at_line(const config_setting_t *s, int line,
                   const config_setting_t **path, int depth, int max) {
  if (depth == max) return -1;
  path[depth] = s;
  int best = (int)config_setting_source_line(s) == line ? depth : -1;
  if (!config_setting_is_aggregate(s)) return best;
  for (int i = 0; i < config_setting_length(s); i++) {
    int d = at_line(config_setting_get_elem(s, (unsigned)i), line, path,
                    depth + 1, max);
    if (d >= 0) return d;
  }
  path[depth] = s;
  return best;
}

/* The setting of the template t at the place of the expanded setting
 * path[1..depth] (path[0] the expanded listener), or t's own group. */
static const config_setting_t *in_template(const struct template_conf *t,
                                           const config_setting_t **path,
                                           int depth) {
  const config_setting_t *o = t->setting;
  for (int i = 1; i <= depth && o; i++) {
    const char *n = config_setting_name(path[i]);
    const config_setting_t *m =
        n ? config_setting_get_member(o, n)
          : config_setting_get_elem(o, (unsigned)config_setting_index(path[i]));
    if (!m) break;
    o = m;
  }
  return o;
}

/* Rewrites each "NAME:LINE" of the expanded text in msg as the file and
 * line of the template's setting it came from. */
static void map_lines(const struct daemon_conf *conf,
                      const struct template_conf *t, struct daemon_conf *tmp,
                      const char *name, char *msg, size_t len) {
  const config_setting_t *ls = config_lookup(&tmp->cfg, "listeners");
  const config_setting_t *g = ls ? config_setting_get_elem(ls, 0) : NULL;
  char out[4096] = "", where[512];
  size_t nl = strlen(name), o = 0;
  for (const char *p = msg; *p && o < sizeof out - 1;) {
    char *end;
    long line = !strncmp(p, name, nl) && p[nl] == ':'
                    ? strtol(p + nl + 1, &end, 10)
                    : 0;
    if (line <= 0 || !g) {
      out[o++] = *p++;
      continue;
    }
    const config_setting_t *path[32];
    int d = at_line(g, (int)line, path, 0, 32);
    conf_where(conf, in_template(t, path, d < 0 ? 0 : d), where, sizeof where);
    o += (size_t)snprintf(out + o, sizeof out - o, "%s", where);
    p = end;
  }
  out[o < sizeof out ? o : sizeof out - 1] = 0;
  snprintf(msg, len, "%s", out);
}

static int check_template(struct daemon_conf *conf,
                          const struct template_conf *t, const char *dir) {
  struct template_var v[TEMPLATE_MAX_VARS];
  for (int i = 0; i < t->n_vars; i++)
    v[i] = (struct template_var){t->vars[i], PLACEHOLDER};
  char err[2048], name[96];
  snprintf(name, sizeof name, "template %s", t->name);
  struct conf_err ce;
  char *text = template_expand(conf, t, t->name, v, t->n_vars, NULL, &ce);
  struct daemon_conf tmp;
  int rc = text ? conf_load_string(&tmp, text, name, &ce) : -1;
  if (rc == 0)
    rc = stack_check(host_table(), &tmp, &tmp.listeners[0], dir, &ce);
  if (rc < 0) {
    conf_err_text(&ce, err, sizeof err);
    if (text) map_lines(conf, t, &tmp, name, err, sizeof err);
    log_error("template %s: %s", t->name, err);
  }
  if (text) conf_free(&tmp);
  free(text);
  return rc;
}

int check_config(struct daemon_conf *conf, const char *dir) {
  int bad = 0;
  struct sockaddr_storage ss;
  socklen_t sl;
  char merr[512];
  if (conf->metrics_listen &&
      metrics_parse_listen(conf->metrics_listen, &ss, &sl, merr, sizeof merr) <
          0) {
    log_error("%s: metrics: %s", conf->file, merr);
    bad = 1;
  }
  for (int i = 0; i < conf->n_listeners; i++) {
    struct conf_err err;
    if (stack_check(host_table(), conf, &conf->listeners[i], dir, &err) < 0) {
      log_error("%s", conf_err_str(&err));
      bad = 1;
    }
  }
  for (int i = 0; i < conf->n_templates; i++)
    bad |= check_template(conf, &conf->templates[i], dir) < 0;
  plugin_unload_all();
  if (!bad)
    printf("%s: OK (%d listener%s, %d template%s)\n", conf->file,
           conf->n_listeners, conf->n_listeners == 1 ? "" : "s",
           conf->n_templates, conf->n_templates == 1 ? "" : "s");
  conf_free(conf);
  return bad;
}
