/* What `list`, `stats` and the metrics show of per-restore listeners:
 * the restores, and totals per template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figures.h"
#include "sv.h"

/* ---- list, stats, metrics ---- */

/* ---- per-template totals ---- */

struct tmpl_total *restore_totals(struct sv *v, const char *name) {
  for (int i = 0; i < v->ntotals; i++)
    if (!strcmp(v->totals[i].name, name)) return &v->totals[i];
  struct tmpl_total *t =
      realloc(v->totals, (size_t)(v->ntotals + 1) * sizeof *t);
  if (!t) return NULL;
  v->totals = t;
  t = &v->totals[v->ntotals++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  return t;
}

static void live_counters(struct sv *v, const struct sv_listener *l,
                          struct session_counters *c) {
  session_counters_add(c, &l->stats->ended);
  for (struct sv_session *s = v->sessions; s; s = s->next)
    if (s->l == l) session_counters_add(c, &s->shm->counters);
}

static cJSON *restore_json(const struct restore *r) {
  static const char *const states[] = {"starting", "listening", "closed"};
  cJSON *o = cJSON_CreateObject();
  json_put(o, "id", cJSON_CreateString(r->id));
  json_put(o, "template", cJSON_CreateString(r->template));
  json_put(o, "socket", cJSON_CreateString(r->conf.listeners[0].socket));
  json_put(o, "vars", cJSON_Duplicate(r->vars, 1));
  cJSON_AddNumberToObject(o, "generation", r->gen->id);
  json_put(o, "state", cJSON_CreateString(states[r->state]));
  json_put(o, "one_shot", cJSON_CreateBool(r->one_shot));
  if (r->expires_unix_ns)
    json_add_u64(o, "expires_unix_ns", r->expires_unix_ns);
  else
    json_put(o, "expires_unix_ns", cJSON_CreateNull());
  cJSON_AddNumberToObject(o, "sessions_live", r->l->live);
  json_add_u64(o, "created_unix_ns", r->created_unix_ns);
  return o;
}

static int by_name(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int by_restore_id(const void *a, const void *b) {
  const struct restore *x = *(const struct restore *const *)a;
  const struct restore *y = *(const struct restore *const *)b;
  return strcmp(x->id, y->id);
}

/* One template's totals: of those removed, and of those live. */
static cJSON *template_json(struct sv *v, const char *name) {
  struct tmpl_total z = {0}, *t = restore_totals(v, name);
  if (!t) t = &z;
  struct session_counters c = t->c;
  uint64_t live = 0, sessions = t->sessions_total, refused = t->refused_peers,
           hs = t->handshake_errors;
  for (struct restore *r = v->restores; r; r = r->next) {
    if (strcmp(r->template, name) || !r->l) continue;
    live++;
    live_counters(v, r->l, &c);
    sessions += r->l->stats->sessions_total;
    refused += r->l->stats->refused_peers;
    hs += r->l->stats->handshake_errors;
  }
  cJSON *o = cJSON_CreateObject();
  json_put(o, "name", cJSON_CreateString(name));
  cJSON_AddNumberToObject(o, "restores_live", (double)live);
  cJSON_AddNumberToObject(o, "serves_total", (double)t->serves_total);
  cJSON_AddNumberToObject(o, "serve_errors", (double)t->serve_errors);
  cJSON_AddNumberToObject(o, "sessions_total", (double)sessions);
  cJSON_AddNumberToObject(o, "refused_peers", (double)refused);
  cJSON_AddNumberToObject(o, "handshake_errors", (double)hs);
  json_put(o, "counters", control_counters_json(&c));
  return o;
}

static const char **template_names(struct sv *v, int *n) {
  const struct daemon_conf *c = v->current->conf;
  const char **names = calloc((size_t)c->n_templates + 1, sizeof *names);
  *n = 0;
  for (int i = 0; names && i < c->n_templates; i++)
    names[(*n)++] = c->templates[i].name;
  if (*n > 1) qsort(names, (size_t)*n, sizeof *names, by_name);
  return names;
}

void restore_extend(void *opaque, const char *cmd, cJSON *answer) {
  struct sv *v = opaque;
  if (!strcmp(cmd, "list")) {
    int n = v->nrestores, k = 0;
    struct restore **a = calloc((size_t)n + 1, sizeof *a);
    for (struct restore *r = v->restores; a && r; r = r->next)
      a[k++] = r;
    if (k > 1) qsort(a, (size_t)k, sizeof *a, by_restore_id);
    cJSON *ra = cJSON_AddArrayToObject(answer, "restores");
    for (int i = 0; i < k; i++)
      json_push(ra, restore_json(a[i]));
    free(a);
    return;
  }
  int n;
  const char **names = template_names(v, &n);
  cJSON *ta = cJSON_AddArrayToObject(answer, "templates");
  for (int i = 0; i < n; i++)
    json_push(ta, template_json(v, names[i]));
  free(names);
}

void restore_metrics(void *opaque, FILE *out) {
  static const struct {
    const char *name, *key, *help, *type;
  } fams[] = {
      {"uffdkit_template_restores_live", "restores_live",
       "Per-restore listeners made from the template, now.", "gauge"},
      {"uffdkit_template_serves_total", "serves_total",
       "serve requests for the template that succeeded.", "counter"},
      {"uffdkit_template_serve_errors_total", "serve_errors",
       "serve requests for the template that failed.", "counter"},
      {"uffdkit_template_sessions_total", "sessions_total",
       "Sessions of its per-restore listeners.", "counter"},
      {"uffdkit_template_refused_peers_total", "refused_peers",
       "Connections its per-restore listeners refused.", "counter"},
      {"uffdkit_template_handshake_errors_total", "handshake_errors",
       "Connections closed for a bad handshake.", "counter"},
  };
  static const char *const cs[] = {"faults", "pages_copied", "zero_pages",
                                   "bytes_copied", "source_errors"};
  struct sv *v = opaque;
  int n;
  const char **names = template_names(v, &n);
  cJSON **t = calloc((size_t)n + 1, sizeof *t);
  for (int i = 0; t && i < n; i++)
    t[i] = template_json(v, names[i]);
  for (size_t f = 0; t && n && f < sizeof fams / sizeof *fams; f++) {
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", fams[f].name, fams[f].help,
            fams[f].name, fams[f].type);
    for (int i = 0; i < n; i++)
      fprintf(out, "%s{template=\"%s\"} %.0f\n", fams[f].name, names[i],
              cJSON_GetObjectItem(t[i], fams[f].key)->valuedouble);
  }
  for (size_t k = 0; t && n && k < sizeof cs / sizeof *cs; k++) {
    fprintf(out,
            "# HELP uffdkit_template_%s_total %s of its per-restore "
            "listeners' sessions.\n# TYPE uffdkit_template_%s_total counter\n",
            cs[k], cs[k], cs[k]);
    for (int i = 0; i < n; i++)
      fprintf(out, "uffdkit_template_%s_total{template=\"%s\"} %.0f\n", cs[k],
              names[i],
              cJSON_GetObjectItem(cJSON_GetObjectItem(t[i], "counters"), cs[k])
                  ->valuedouble);
  }
  for (int i = 0; t && i < n; i++)
    cJSON_Delete(t[i]);
  free(t);
  free(names);
}
