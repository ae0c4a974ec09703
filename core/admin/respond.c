/* The control protocol: parsing a request line and building its response
 * from the statistics model (stats.h), the metrics exposition, or a call
 * into the supervisor (reload, drain). */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "figures.h"
#include "metrics.h"
#include "stats.h"
#include "utf8.h"

/* ---- requests ---- */

static const char *const cmd_names[] = {"list", "stats", "metrics", "reload",
                                        "drain"};

int control_parse_request(const char *line, size_t len,
                          struct control_request *req, char *err,
                          size_t errlen) {
  memset(req, 0, sizeof *req);
  if (len > CONTROL_MAX_REQUEST) {
    snprintf(err, errlen, "request longer than %d bytes", CONTROL_MAX_REQUEST);
    return -1;
  }
  size_t i = 0;
  while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
    i++;
  if (i == len) {
    snprintf(err, errlen,
             "empty request: send a JSON object such as "
             "{\"cmd\":\"list\"}");
    return -1;
  }
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(line, len, &end, 0);
  if (!j) {
    const char *at = cJSON_GetErrorPtr();
    snprintf(err, errlen, "request is not valid JSON (at byte %zu)",
             at && at >= line && at <= line + len ? (size_t)(at - line) : 0);
    return -1;
  }
  while (end && end < line + len &&
         (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
    end++;
  int rc = -1;
  if (end && end < line + len) {
    snprintf(err, errlen,
             "request has bytes after its JSON object (at byte "
             "%zu)",
             (size_t)(end - line));
    goto out;
  }
  if (!cJSON_IsObject(j)) {
    snprintf(err, errlen,
             "request must be a JSON object such as "
             "{\"cmd\":\"list\"}");
    goto out;
  }
  const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(j, "cmd");
  if (!cJSON_IsString(cmd)) {
    snprintf(err, errlen,
             "request needs \"cmd\": a string, one of list, "
             "stats, metrics, reload, drain");
    goto out;
  }
  size_t c = 0;
  while (c < sizeof cmd_names / sizeof *cmd_names &&
         strcmp(cmd->valuestring, cmd_names[c]))
    c++;
  if (c == sizeof cmd_names / sizeof *cmd_names) {
    char q[300];
    utf8_quote(q, sizeof q, cmd->valuestring, 64);
    snprintf(err, errlen,
             "unknown cmd \"%s\": expected list, stats, metrics, reload "
             "or drain",
             q);
    goto out;
  }
  req->cmd = (enum control_cmd)c;
  const cJSON *item;
  cJSON_ArrayForEach(item, j) {
    if (!strcmp(item->string, "cmd") || !strcmp(item->string, "v"))
      continue; /* the version is checked by admin_request() */
    if (req->cmd == CONTROL_DRAIN && !strcmp(item->string, "listener"))
      continue;
    char q[300];
    utf8_quote(q, sizeof q, item->string, 64);
    snprintf(err, errlen, "unknown key \"%s\" in a %s request", q,
             cmd_names[c]);
    goto out;
  }
  if (req->cmd == CONTROL_DRAIN) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(j, "listener");
    if (!cJSON_IsString(l) || !l->valuestring[0]) {
      snprintf(err, errlen, "drain needs \"listener\": the listener's name");
      goto out;
    }
    if (strlen(l->valuestring) >= sizeof req->listener) {
      snprintf(err, errlen, "listener name longer than %zu bytes",
               sizeof req->listener - 1);
      goto out;
    }
    if (strspn(l->valuestring,
               "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
               "rstuvwxyz0123456789._-") != strlen(l->valuestring)) {
      char q[300];
      utf8_quote(q, sizeof q, l->valuestring, 64);
      snprintf(err, errlen,
               "listener name \"%s\" is not a name: listener names are "
               "[A-Za-z0-9._-]",
               q);
      goto out;
    }
    snprintf(req->listener, sizeof req->listener, "%s", l->valuestring);
  }
  rc = 0;
out:
  cJSON_Delete(j);
  return rc;
}

/* ---- responses ---- */

static void num(cJSON *o, const char *k, double v) {
  json_put(o, k, cJSON_CreateNumber(v));
}

static void add_listener_head(cJSON *o, const struct stats_listener *l) {
  json_put(o, "name", cJSON_CreateString(l->name));
  json_put(o, "socket", cJSON_CreateString(l->socket));
  json_put(o, "source", cJSON_CreateString(l->source));
  json_put(o, "accepting", cJSON_CreateBool(l->accepting));
  json_put(o, "template",
           l->template ? cJSON_CreateString(l->template) : cJSON_CreateNull());
  num(o, "sessions_live", (double)shm_load(&l->stats->sessions_live));
  num(o, "sessions_total", (double)shm_load(&l->stats->sessions_total));
}

struct collect {
  const struct session_shm **a;
  size_t n, cap;
  int oom;
};

static void collect_session(void *arg, const struct session_shm *s) {
  struct collect *c = arg;
  if (c->n == c->cap) {
    size_t cap = c->cap ? c->cap * 2 : 32;
    const struct session_shm **a = realloc(c->a, cap * sizeof *a);
    if (!a) {
      c->oom = 1;
      return;
    }
    c->a = a;
    c->cap = cap;
  }
  c->a[c->n++] = s;
}

static int by_id(const void *a, const void *b) {
  const struct session_shm *x = *(const struct session_shm *const *)a;
  const struct session_shm *y = *(const struct session_shm *const *)b;
  return x->id < y->id ? -1 : x->id > y->id;
}

static cJSON *latency_json(const struct session_counters *c);

static cJSON *session_json(const struct session_shm *s, struct stats_rates *r,
                           uint64_t now_ns, uint64_t now_unix_ns) {
  cJSON *o = cJSON_CreateObject();
  char name[sizeof s->listener + 1];
  snprintf(name, sizeof name, "%.*s", (int)sizeof s->listener, s->listener);
  json_add_u64(o, "id", s->id);
  json_put(o, "listener", cJSON_CreateString(name));
  num(o, "pid", s->pid);
  num(o, "uid", s->uid);
  uint32_t nr = s->nregions < CONF_MAX_REGIONS ? s->nregions : CONF_MAX_REGIONS;
  uint64_t mem = 0;
  for (uint32_t i = 0; i < nr; i++)
    mem += s->regions[i].size;
  num(o, "regions", nr);
  num(o, "memory_bytes", (double)mem);
  num(o, "page_size", s->page_size);
  char when[32] = "";
  time_t t = (time_t)(s->started_unix_ns / 1000000000ull);
  struct tm tm;
  if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  json_put(o, "started", cJSON_CreateString(when));
  json_add_u64(o, "started_unix_ns", s->started_unix_ns);
  const struct session_counters *c = &s->counters;
  uint64_t faults = shm_load(&c->faults);
  num(o, "pages_copied", (double)shm_load(&c->pages_copied));
  num(o, "zero_pages", (double)shm_load(&c->zero_pages));
  num(o, "bytes_copied", (double)shm_load(&c->bytes_copied));
  num(o, "faults", (double)faults);
  double rate = stats_fault_rate(r, s, faults, now_ns, now_unix_ns);
  num(o, "faults_per_second", round(rate * 10) / 10);
  figures_json(o, s);
  json_put(o, "latency", latency_json(c));
  return o;
}

static cJSON *respond_list(const struct stats_view *v,
                           const struct stats_listeners *ls,
                           struct stats_rates *r, uint64_t now_ns,
                           uint64_t now_unix_ns) {
  struct session_counters *tot =
      calloc(ls->n > 0 ? (size_t)ls->n : 1, sizeof *tot);
  struct collect col = {0};
  if (!tot) return NULL;
  stats_totals(v, ls->l, ls->n, tot);
  if (v->each_session) v->each_session(v->opaque, collect_session, &col);
  if (col.oom) {
    free(col.a);
    free(tot);
    return NULL;
  }
  if (col.n) qsort(col.a, col.n, sizeof *col.a, by_id);
  cJSON *o = cJSON_CreateObject();
  cJSON *la = cJSON_AddArrayToObject(o, "listeners");
  for (int i = 0; i < ls->n; i++) {
    cJSON *l = cJSON_CreateObject();
    add_listener_head(l, &ls->l[i]);
    num(l, "faults", (double)tot[i].faults);
    num(l, "pages_copied", (double)tot[i].pages_copied);
    num(l, "zero_pages", (double)tot[i].zero_pages);
    num(l, "bytes_copied", (double)tot[i].bytes_copied);
    json_push(la, l);
  }
  cJSON *ss = cJSON_AddArrayToObject(o, "sessions");
  for (size_t i = 0; i < col.n; i++)
    json_push(ss, session_json(col.a[i], r, now_ns, now_unix_ns));
  stats_rates_sweep(r);
  free(col.a);
  free(tot);
  return o;
}

static const struct {
  const char *name;
  size_t off;
} counter_fields[] = {
    {"faults", offsetof(struct session_counters, faults)},
    {"pages_copied", offsetof(struct session_counters, pages_copied)},
    {"zero_pages", offsetof(struct session_counters, zero_pages)},
    {"bytes_copied", offsetof(struct session_counters, bytes_copied)},
    {"removes", offsetof(struct session_counters, removes)},
    {"removed_pages", offsetof(struct session_counters, removed_pages)},
    {"stale_faults", offsetof(struct session_counters, stale_faults)},
    {"eagain", offsetof(struct session_counters, eagain)},
    {"source_errors", offsetof(struct session_counters, source_errors)},
    {"prefetched_pages", offsetof(struct session_counters, prefetched_pages)},
    {"vms_killed", offsetof(struct session_counters, vms_killed)},
};

cJSON *control_counters_json(const struct session_counters *c) {
  cJSON *o = cJSON_CreateObject();
  for (size_t k = 0; k < sizeof counter_fields / sizeof *counter_fields; k++)
    num(o, counter_fields[k].name,
        (double)shm_load(
            (const uint64_t *)((const char *)c + counter_fields[k].off)));
  return o;
}

static cJSON *latency_json(const struct session_counters *c) {
  cJSON *o = cJSON_CreateObject();
  uint64_t count = 0;
  for (int k = 0; k < LAT_BUCKETS; k++)
    count += c->lat_buckets[k];
  num(o, "count", (double)count);
  num(o, "mean_us",
      count ? round((double)c->lat_sum_ns / (double)count / 100.0) / 10.0 : 0);
  static const struct {
    const char *key;
    double q;
  } qs[] = {{"p50_us", 0.5}, {"p90_us", 0.9}, {"p99_us", 0.99}};
  for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
    double b = count ? figures_quantile_us(c, count, qs[i].q) : 0;
    if (b < 0)
      json_put(o, qs[i].key, cJSON_CreateNull());
    else
      num(o, qs[i].key, b);
  }
  cJSON *bk = cJSON_AddArrayToObject(o, "buckets");
  for (int k = 0; k < LAT_BUCKETS; k++) {
    cJSON *e = cJSON_CreateObject();
    if (k < LAT_BUCKETS - 1)
      num(e, "below_us", (double)(4ull << k));
    else
      json_put(e, "below_us", cJSON_CreateNull());
    num(e, "count", (double)c->lat_buckets[k]);
    json_push(bk, e);
  }
  return o;
}

/* The plugin counters of a listener, grouped by instance. */
static cJSON *sources_json(const struct listener_stats *st) {
  cJSON *a = cJSON_CreateArray();
  uint32_t n = __atomic_load_n(&st->ncounters, __ATOMIC_ACQUIRE);
  if (n > LISTENER_COUNTERS) n = LISTENER_COUNTERS;
  for (uint32_t i = 0; i < n; i++) {
    const char *inst = st->counters[i].instance;
    int first = 1;
    for (uint32_t k = 0; k < i && first; k++)
      first = strcmp(st->counters[k].instance, inst) != 0;
    if (!first) continue;
    cJSON *o = cJSON_CreateObject();
    json_put(o, "instance", cJSON_CreateString(inst));
    cJSON *cs = cJSON_AddObjectToObject(o, "counters");
    uint64_t hits = 0, misses = 0;
    int has_hits = 0, has_misses = 0;
    for (uint32_t k = i; k < n; k++) {
      const struct plugin_counter *pc = &st->counters[k];
      if (strcmp(pc->instance, inst)) continue;
      uint64_t val = shm_load(&pc->value);
      num(cs, pc->name, (double)val);
      if (!strcmp(pc->name, "hits"))
        has_hits = 1, hits = val;
      else if (!strcmp(pc->name, "misses"))
        has_misses = 1, misses = val;
    }
    if (has_hits && has_misses) {
      if (hits + misses)
        num(o, "hit_ratio",
            round((double)hits / (double)(hits + misses) * 10000) / 10000);
      else
        json_put(o, "hit_ratio", cJSON_CreateNull());
    }
    json_push(a, o);
  }
  return a;
}

static cJSON *respond_stats(const struct stats_view *v,
                            const struct stats_listeners *ls) {
  struct session_counters *tot =
      calloc(ls->n > 0 ? (size_t)ls->n : 1, sizeof *tot);
  if (!tot) return NULL;
  stats_totals(v, ls->l, ls->n, tot);
  cJSON *o = cJSON_CreateObject();
  cJSON *la = cJSON_AddArrayToObject(o, "listeners");
  for (int i = 0; i < ls->n; i++) {
    const struct stats_listener *l = &ls->l[i];
    cJSON *j = cJSON_CreateObject();
    add_listener_head(j, l);
    num(j, "refused_peers", (double)shm_load(&l->stats->refused_peers));
    num(j, "handshake_errors", (double)shm_load(&l->stats->handshake_errors));
    num(j, "worker_restarts", (double)shm_load(&l->stats->worker_restarts));
    json_put(j, "counters", control_counters_json(&tot[i]));
    json_put(j, "latency", latency_json(&tot[i]));
    json_put(j, "sources", sources_json(l->stats));
    json_push(la, j);
  }
  free(tot);
  return o;
}

cJSON *control_error(const char *msg, const char *code) {
  cJSON *o = cJSON_CreateObject();
  json_put(o, "error", cJSON_CreateString(msg));
  json_put(o, "code", cJSON_CreateString(code));
  return o;
}

static cJSON *error_json(const char *msg) {
  return control_error(msg, "failed");
}

char *control_error_reply(const char *msg) {
  cJSON *o = control_error(msg, "bad_request");
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

static cJSON *respond_call(const struct control_view *v,
                           const struct stats_listeners *ls,
                           const struct control_request *req) {
  char err[512] = "";
  int rc;
  if (req->cmd == CONTROL_RELOAD) {
    if (!v->reload) return error_json("reload is not supported by this daemon");
    rc = v->reload(v->opaque, err, sizeof err);
  } else {
    int found = 0;
    for (int i = 0; i < ls->n && !found; i++)
      found = !strcmp(ls->l[i].name, req->listener);
    if (!found) {
      snprintf(err, sizeof err, "no listener named \"%s\"", req->listener);
      return control_error(err, "not_found");
    }
    if (!v->drain) return error_json("drain is not supported by this daemon");
    rc = v->drain(v->opaque, req->listener, err, sizeof err);
  }
  if (rc < 0) return error_json(err[0] ? err : "failed");
  cJSON *o = cJSON_CreateObject();
  json_put(o, "ok", cJSON_CreateTrue());
  if (req->cmd == CONTROL_DRAIN)
    json_put(o, "listener", cJSON_CreateString(req->listener));
  if (req->cmd == CONTROL_RELOAD && err[0]) /* which generation it got */
    json_put(o, "message", cJSON_CreateString(err));
  return o;
}

char *control_respond(const struct control_view *v, struct stats_rates *r,
                      const char *line, size_t len, uint64_t now_ns,
                      uint64_t now_unix_ns) {
  struct control_request req;
  struct stats_listeners ls = {0};
  char err[512];
  cJSON *o = NULL;
  if (control_parse_request(line, len, &req, err, sizeof err) < 0) {
    o = control_error(err, "bad_request");
  } else if (req.cmd != CONTROL_METRICS &&
             stats_listeners_get(&v->stats, &ls) < 0) {
    o = NULL;
  } else if (req.cmd == CONTROL_LIST) {
    o = respond_list(&v->stats, &ls, r, now_ns, now_unix_ns);
    if (o && v->extend) v->extend(v->opaque, "list", o);
  } else if (req.cmd == CONTROL_STATS) {
    o = respond_stats(&v->stats, &ls);
    if (o && v->extend) v->extend(v->opaque, "stats", o);
  } else if (req.cmd == CONTROL_METRICS) {
    char *text = metrics_render(&v->stats, NULL);
    if (text) {
      o = cJSON_CreateObject();
      json_put(o, "metrics", cJSON_CreateString(text));
      free(text);
    }
  } else {
    o = respond_call(v, &ls, &req);
  }
  stats_listeners_free(&ls);
  if (!o) return NULL;
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}
