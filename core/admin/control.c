#include "control.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "figures.h"
#include "intake.h"
#include "log.h"
#include "metrics.h"
#include "sockfile.h"
#include "utf8.h"

/* ---- the view ---- */

/* One listener copied out of the view. */
struct listener_copy {
  char name[64];
  char socket[128];
  char source[256];
};

struct copy_arg {
  struct control_listeners *out;
  int cap;
  int oom;
};

static void copy_listener(void *arg, const struct control_listener *l) {
  struct copy_arg *a = arg;
  struct control_listeners *o = a->out;
  if (o->n == a->cap) {
    int cap = a->cap ? a->cap * 2 : 8;
    struct control_listener *nl = realloc(o->l, (size_t)cap * sizeof *nl);
    if (nl) o->l = nl;
    struct listener_copy *nm =
        nl ? realloc(o->mem, (size_t)cap * sizeof *nm) : NULL;
    if (!nm) {
      a->oom = 1;
      return;
    }
    o->mem = nm;
    a->cap = cap;
  }
  struct listener_copy *m = (struct listener_copy *)o->mem + o->n;
  snprintf(m->name, sizeof m->name, "%s", l->name ? l->name : "");
  snprintf(m->socket, sizeof m->socket, "%s", l->socket ? l->socket : "");
  snprintf(m->source, sizeof m->source, "%s", l->source ? l->source : "");
  o->l[o->n++] =
      (struct control_listener){.accepting = l->accepting, .stats = l->stats};
}

static int by_name(const void *a, const void *b) {
  const struct control_listener *x = a, *y = b;
  return strcmp(x->name, y->name);
}

int control_listeners_get(const struct control_view *v,
                          struct control_listeners *out) {
  memset(out, 0, sizeof *out);
  struct copy_arg a = {.out = out};
  if (v->each_listener) v->each_listener(v->opaque, copy_listener, &a);
  if (a.oom) {
    control_listeners_free(out);
    return -1;
  }
  /* The copies moved while growing: point at them only now. */
  for (int i = 0; i < out->n; i++) {
    struct listener_copy *m = (struct listener_copy *)out->mem + i;
    out->l[i].name = m->name;
    out->l[i].socket = m->socket;
    out->l[i].source = m->source;
  }
  if (out->n > 1) qsort(out->l, (size_t)out->n, sizeof *out->l, by_name);
  return 0;
}

void control_listeners_free(struct control_listeners *ls) {
  free(ls->l);
  free(ls->mem);
  memset(ls, 0, sizeof *ls);
}

static uint64_t ld(const uint64_t *p) {
  return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static void add_counters(struct session_counters *to,
                         const struct session_counters *from) {
  const uint64_t *f = (const uint64_t *)from;
  uint64_t *t = (uint64_t *)to;
  for (size_t i = 0; i < sizeof *from / sizeof(uint64_t); i++)
    t[i] += ld(&f[i]);
}

struct totals_arg {
  const struct control_listener *ls;
  int n;
  struct session_counters *out;
};

static void add_live(void *arg, const struct session_shm *s) {
  struct totals_arg *a = arg;
  for (int i = 0; i < a->n; i++)
    if (!strncmp(a->ls[i].name, s->listener, sizeof s->listener)) {
      add_counters(&a->out[i], &s->counters);
      return;
    }
}

void control_totals(const struct control_view *v,
                    const struct control_listener *ls, int n,
                    struct session_counters *out) {
  for (int i = 0; i < n; i++) {
    memset(&out[i], 0, sizeof out[i]);
    add_counters(&out[i], &ls[i].stats->ended);
  }
  struct totals_arg a = {ls, n, out};
  if (v->each_session) v->each_session(v->opaque, add_live, &a);
}

/* ---- faults per second ---- */

#define RATE_MIN_INTERVAL_NS 100000000ull /* shorter: keep the last rate */

struct rate {
  uint64_t id;
  uint64_t t_ns;
  uint64_t faults;
  double per_sec;
  int seen;
};

struct control_rates {
  struct rate *a;
  size_t n, cap;
};

struct control_rates *control_rates_new(void) {
  return calloc(1, sizeof(struct control_rates));
}

void control_rates_free(struct control_rates *r) {
  if (!r) return;
  free(r->a);
  free(r);
}

/* Faults per second of a session: since the previous sample taken of it,
 * or since it started. */
static double fault_rate(struct control_rates *r, const struct session_shm *s,
                         uint64_t faults, uint64_t now_ns,
                         uint64_t now_unix_ns) {
  struct rate *e = NULL;
  for (size_t i = 0; r && i < r->n; i++)
    if (r->a[i].id == s->id) e = &r->a[i];
  if (e) {
    e->seen = 1;
    if (now_ns - e->t_ns < RATE_MIN_INTERVAL_NS) return e->per_sec;
    e->per_sec = faults >= e->faults ? (double)(faults - e->faults) * 1e9 /
                                           (double)(now_ns - e->t_ns)
                                     : 0;
    e->t_ns = now_ns;
    e->faults = faults;
    return e->per_sec;
  }
  uint64_t age =
      now_unix_ns > s->started_unix_ns ? now_unix_ns - s->started_unix_ns : 0;
  double rate = age >= 1000000 ? (double)faults * 1e9 / (double)age : 0;
  if (r && r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    struct rate *a = realloc(r->a, cap * sizeof *a);
    if (!a) return rate;
    r->a = a;
    r->cap = cap;
  }
  if (r)
    r->a[r->n++] = (struct rate){.id = s->id,
                                 .t_ns = now_ns,
                                 .faults = faults,
                                 .per_sec = rate,
                                 .seen = 1};
  return rate;
}

/* Forgets sessions not seen since the last call. */
static void rates_sweep(struct control_rates *r) {
  if (!r) return;
  size_t k = 0;
  for (size_t i = 0; i < r->n; i++)
    if (r->a[i].seen) {
      r->a[i].seen = 0;
      r->a[k++] = r->a[i];
    }
  r->n = k;
}

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
    if (!strcmp(item->string, "cmd")) continue;
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
  cJSON_AddItemToObject(o, k, cJSON_CreateNumber(v));
}

static void add_listener_head(cJSON *o, const struct control_listener *l) {
  cJSON_AddItemToObject(o, "name", cJSON_CreateString(l->name));
  cJSON_AddItemToObject(o, "socket", cJSON_CreateString(l->socket));
  cJSON_AddItemToObject(o, "source", cJSON_CreateString(l->source));
  cJSON_AddItemToObject(o, "accepting", cJSON_CreateBool(l->accepting));
  num(o, "sessions_live", (double)ld(&l->stats->sessions_live));
  num(o, "sessions_total", (double)ld(&l->stats->sessions_total));
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

static cJSON *session_json(const struct session_shm *s, struct control_rates *r,
                           uint64_t now_ns, uint64_t now_unix_ns) {
  cJSON *o = cJSON_CreateObject();
  char name[sizeof s->listener + 1];
  snprintf(name, sizeof name, "%.*s", (int)sizeof s->listener, s->listener);
  json_add_u64(o, "id", s->id);
  cJSON_AddItemToObject(o, "listener", cJSON_CreateString(name));
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
  cJSON_AddItemToObject(o, "started", cJSON_CreateString(when));
  json_add_u64(o, "started_unix_ns", s->started_unix_ns);
  const struct session_counters *c = &s->counters;
  uint64_t faults = ld(&c->faults);
  num(o, "pages_copied", (double)ld(&c->pages_copied));
  num(o, "zero_pages", (double)ld(&c->zero_pages));
  num(o, "bytes_copied", (double)ld(&c->bytes_copied));
  num(o, "faults", (double)faults);
  double rate = fault_rate(r, s, faults, now_ns, now_unix_ns);
  num(o, "faults_per_second", round(rate * 10) / 10);
  figures_json(o, s);
  cJSON_AddItemToObject(o, "latency", latency_json(c));
  return o;
}

static cJSON *respond_list(const struct control_view *v,
                           const struct control_listeners *ls,
                           struct control_rates *r, uint64_t now_ns,
                           uint64_t now_unix_ns) {
  struct session_counters *tot =
      calloc(ls->n > 0 ? (size_t)ls->n : 1, sizeof *tot);
  struct collect col = {0};
  if (!tot) return NULL;
  control_totals(v, ls->l, ls->n, tot);
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
    cJSON_AddItemToArray(la, l);
  }
  cJSON *ss = cJSON_AddArrayToObject(o, "sessions");
  for (size_t i = 0; i < col.n; i++)
    cJSON_AddItemToArray(ss, session_json(col.a[i], r, now_ns, now_unix_ns));
  rates_sweep(r);
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
};

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
      cJSON_AddItemToObject(o, qs[i].key, cJSON_CreateNull());
    else
      num(o, qs[i].key, b);
  }
  cJSON *bk = cJSON_AddArrayToObject(o, "buckets");
  for (int k = 0; k < LAT_BUCKETS; k++) {
    cJSON *e = cJSON_CreateObject();
    if (k < LAT_BUCKETS - 1)
      num(e, "below_us", (double)(4ull << k));
    else
      cJSON_AddItemToObject(e, "below_us", cJSON_CreateNull());
    num(e, "count", (double)c->lat_buckets[k]);
    cJSON_AddItemToArray(bk, e);
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
    cJSON_AddItemToObject(o, "instance", cJSON_CreateString(inst));
    cJSON *cs = cJSON_AddObjectToObject(o, "counters");
    uint64_t hits = 0, misses = 0;
    int has_hits = 0, has_misses = 0;
    for (uint32_t k = i; k < n; k++) {
      const struct plugin_counter *pc = &st->counters[k];
      if (strcmp(pc->instance, inst)) continue;
      uint64_t val = ld(&pc->value);
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
        cJSON_AddItemToObject(o, "hit_ratio", cJSON_CreateNull());
    }
    cJSON_AddItemToArray(a, o);
  }
  return a;
}

static cJSON *respond_stats(const struct control_view *v,
                            const struct control_listeners *ls) {
  struct session_counters *tot =
      calloc(ls->n > 0 ? (size_t)ls->n : 1, sizeof *tot);
  if (!tot) return NULL;
  control_totals(v, ls->l, ls->n, tot);
  cJSON *o = cJSON_CreateObject();
  cJSON *la = cJSON_AddArrayToObject(o, "listeners");
  for (int i = 0; i < ls->n; i++) {
    const struct control_listener *l = &ls->l[i];
    cJSON *j = cJSON_CreateObject();
    add_listener_head(j, l);
    num(j, "refused_peers", (double)ld(&l->stats->refused_peers));
    num(j, "handshake_errors", (double)ld(&l->stats->handshake_errors));
    num(j, "worker_restarts", (double)ld(&l->stats->worker_restarts));
    cJSON *cs = cJSON_AddObjectToObject(j, "counters");
    for (size_t k = 0; k < sizeof counter_fields / sizeof *counter_fields; k++)
      num(cs, counter_fields[k].name,
          (double)*(const uint64_t *)((const char *)&tot[i] +
                                      counter_fields[k].off));
    cJSON_AddItemToObject(j, "latency", latency_json(&tot[i]));
    cJSON_AddItemToObject(j, "sources", sources_json(l->stats));
    cJSON_AddItemToArray(la, j);
  }
  free(tot);
  return o;
}

static cJSON *error_json(const char *msg) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "error", cJSON_CreateString(msg));
  return o;
}

static cJSON *respond_call(const struct control_view *v,
                           const struct control_listeners *ls,
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
      return error_json(err);
    }
    if (!v->drain) return error_json("drain is not supported by this daemon");
    rc = v->drain(v->opaque, req->listener, err, sizeof err);
  }
  if (rc < 0) return error_json(err[0] ? err : "failed");
  cJSON *o = cJSON_CreateObject();
  cJSON_AddItemToObject(o, "ok", cJSON_CreateTrue());
  if (req->cmd == CONTROL_DRAIN)
    cJSON_AddItemToObject(o, "listener", cJSON_CreateString(req->listener));
  if (req->cmd == CONTROL_RELOAD && err[0]) /* which generation it got */
    cJSON_AddItemToObject(o, "message", cJSON_CreateString(err));
  return o;
}

char *control_respond(const struct control_view *v, struct control_rates *r,
                      const char *line, size_t len, uint64_t now_ns,
                      uint64_t now_unix_ns) {
  struct control_request req;
  struct control_listeners ls = {0};
  char err[512];
  cJSON *o = NULL;
  if (control_parse_request(line, len, &req, err, sizeof err) < 0) {
    o = error_json(err);
  } else if (req.cmd != CONTROL_METRICS && control_listeners_get(v, &ls) < 0) {
    o = NULL;
  } else if (req.cmd == CONTROL_LIST) {
    o = respond_list(v, &ls, r, now_ns, now_unix_ns);
  } else if (req.cmd == CONTROL_STATS) {
    o = respond_stats(v, &ls);
  } else if (req.cmd == CONTROL_METRICS) {
    char *text = metrics_render(v, NULL);
    if (text) {
      o = cJSON_CreateObject();
      cJSON_AddItemToObject(o, "metrics", cJSON_CreateString(text));
      free(text);
    }
  } else {
    o = respond_call(v, &ls, &req);
  }
  control_listeners_free(&ls);
  if (!o) return NULL;
  char *s = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return s;
}

/* ---- the server ---- */

struct client {
  int fd;
  char *in;
  size_t inlen, incap;
  char *out;
  size_t outlen, outoff;
  uint64_t deadline;
  int closing; /* close once out is sent */
  int writing; /* registered for EPOLLOUT */
  struct client *next;
};

struct control {
  int ep;
  int lfd; /* -1: no control socket */
  char *path;
  dev_t dev;
  ino_t ino;
  int tag_listen, tag_http;
  struct intake intake;
  struct metrics_http *http;
  const struct control_view *v;
  struct control_rates *rates;
  struct client *clients;
  int nclients;
};

static int open_socket(struct control *c, const char *path, char *err,
                       size_t errlen) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) {
    snprintf(err, errlen, "control socket %s: path longer than %zu bytes", path,
             sizeof a.sun_path - 1);
    return -1;
  }
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  char dir[sizeof a.sun_path];
  snprintf(dir, sizeof dir, "%s", path);
  const char *d = dirname(dir);
  if (mkdir(d, 0755) < 0 && errno != EEXIST) {
    snprintf(err, errlen, "control socket %s: cannot create %s: %s", path, d,
             strerror(errno));
    return -1;
  }
  char why[PATH_MAX + 128];
  if (sockfile_clear_stale(path, why, sizeof why) < 0) {
    snprintf(err, errlen, "control socket %s", why);
    return -1;
  }
  c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (c->lfd < 0) {
    snprintf(err, errlen, "control socket: %s", strerror(errno));
    return -1;
  }
  mode_t old = umask(0177); /* created 0600: never briefly open to others */
  int r = bind(c->lfd, (struct sockaddr *)&a, sizeof a);
  umask(old);
  struct stat st;
  if (r < 0 || listen(c->lfd, 16) < 0 || stat(path, &st) < 0) {
    snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
    if (r == 0) unlink(path);
    close(c->lfd);
    c->lfd = -1;
    return -1;
  }
  c->dev = st.st_dev;
  c->ino = st.st_ino;
  c->path = strdup(path);
  struct epoll_event e = {.events = EPOLLIN, .data.ptr = &c->tag_listen};
  epoll_ctl(c->ep, EPOLL_CTL_ADD, c->lfd, &e);
  log_info("control socket on %s", path);
  return 0;
}

int control_open(struct control **out, const struct daemon_conf *conf,
                 const struct control_view *view, char *err, size_t errlen) {
  *out = NULL;
  const char *path =
      conf->control_socket ? conf->control_socket : CONTROL_DEFAULT_SOCKET;
  if (!path[0] && !conf->metrics_listen) return 0;
  struct control *c = calloc(1, sizeof *c);
  if (!c) {
    snprintf(err, errlen, "control: out of memory");
    return -1;
  }
  c->lfd = -1;
  c->intake.what = "control socket";
  c->v = view;
  c->rates = control_rates_new();
  c->ep = epoll_create1(EPOLL_CLOEXEC);
  if (c->ep < 0 || !c->rates) {
    snprintf(err, errlen, "control: %s", strerror(errno));
    control_close(c);
    return -1;
  }
  if (path[0] && open_socket(c, path, err, errlen) < 0) {
    if (conf->control_socket) {
      control_close(c);
      return -1;
    }
    log_warn("%s; running without a control socket (set "
             "uffdkit.control_socket to choose another path)",
             err);
  }
  if (conf->metrics_listen) {
    c->http = metrics_http_start(conf->metrics_listen, view, err, errlen);
    if (!c->http) {
      control_close(c);
      return -1;
    }
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &c->tag_http};
    epoll_ctl(c->ep, EPOLL_CTL_ADD, metrics_http_fd(c->http), &e);
  }
  if (c->lfd < 0 && !c->http) {
    control_close(c);
    return 0;
  }
  *out = c;
  return 0;
}

int control_fd(const struct control *c) {
  return c ? c->ep : -1;
}

static void drop(struct control *c, struct client *cl) {
  for (struct client **pp = &c->clients; *pp; pp = &(*pp)->next)
    if (*pp == cl) {
      *pp = cl->next;
      break;
    }
  epoll_ctl(c->ep, EPOLL_CTL_DEL, cl->fd, NULL);
  close(cl->fd);
  free(cl->in);
  free(cl->out);
  free(cl);
  c->nclients--;
}

static void want(struct control *c, struct client *cl, int writing) {
  if (cl->writing == writing) return;
  cl->writing = writing;
  struct epoll_event e = {.events = writing ? EPOLLOUT : EPOLLIN,
                          .data.ptr = cl};
  epoll_ctl(c->ep, EPOLL_CTL_MOD, cl->fd, &e);
}

/* Sends what it can; returns -1 when the client is gone. */
static int flush_out(struct client *cl) {
  while (cl->outoff < cl->outlen) {
    ssize_t n = send(cl->fd, cl->out + cl->outoff, cl->outlen - cl->outoff,
                     MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN ? 0 : -1;
    }
    cl->outoff += (size_t)n;
  }
  free(cl->out);
  cl->out = NULL;
  cl->outlen = cl->outoff = 0;
  return 0;
}

static void queue_reply(struct client *cl, char *json) {
  static const char oom[] = "{\"error\":\"out of memory\"}";
  size_t n = json ? strlen(json) : sizeof oom - 1;
  cl->out = malloc(n + 1);
  if (!cl->out) {
    free(json);
    cl->closing = 1;
    return;
  }
  memcpy(cl->out, json ? json : oom, n);
  cl->out[n] = '\n';
  cl->outlen = n + 1;
  cl->outoff = 0;
  free(json);
}

static void reply_error(struct client *cl, const char *msg) {
  cJSON *o = error_json(msg);
  queue_reply(cl, cJSON_PrintUnformatted(o));
  cJSON_Delete(o);
}

/* Answers the complete lines buffered, one at a time, until a reply does
 * not fit in the socket.  Returns -1 when the client is to be dropped. */
static int serve_client(struct control *c, struct client *cl, int eof) {
  for (;;) {
    if (flush_out(cl) < 0) return -1;
    if (cl->out) {
      want(c, cl, 1);
      return 0;
    }
    want(c, cl, 0);
    if (cl->closing) return -1;
    char *nl = cl->inlen ? memchr(cl->in, '\n', cl->inlen) : NULL;
    size_t len = nl ? (size_t)(nl - cl->in) : cl->inlen;
    if (!nl && !(eof && cl->inlen)) {
      if (eof) return -1;
      if (cl->inlen > CONTROL_MAX_REQUEST) {
        char msg[64];
        snprintf(msg, sizeof msg, "request longer than %d bytes",
                 CONTROL_MAX_REQUEST);
        reply_error(cl, msg);
        cl->closing = 1;
        continue;
      }
      return 0;
    }
    if (len && cl->in[len - 1] == '\r') len--;
    char *r =
        control_respond(c->v, c->rates, cl->in, len, clock_mono_ns(), clock_unix_ns());
    queue_reply(cl, r);
    size_t used = nl ? (size_t)(nl - cl->in) + 1 : cl->inlen;
    memmove(cl->in, cl->in + used, cl->inlen - used);
    cl->inlen -= used;
    cl->deadline = clock_mono_ns() + CONTROL_CLIENT_TIMEOUT_MS * 1000000ull;
  }
}

static void on_client(struct control *c, struct client *cl) {
  int eof = 0;
  while (!cl->writing && !cl->closing) {
    if (cl->incap - cl->inlen < 4096) {
      size_t cap = cl->incap ? cl->incap * 2 : 4096;
      if (cap > CONTROL_MAX_REQUEST + 4096) cap = CONTROL_MAX_REQUEST + 4096;
      if (cap == cl->incap)
        break; /* full: serve_client answers the oversize request */
      char *p = realloc(cl->in, cap);
      if (!p) {
        drop(c, cl);
        return;
      }
      cl->in = p;
      cl->incap = cap;
    }
    ssize_t n =
        recv(cl->fd, cl->in + cl->inlen, cl->incap - cl->inlen, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;
    if (n <= 0) {
      eof = 1;
      break;
    }
    cl->inlen += (size_t)n;
    if (memchr(cl->in + cl->inlen - n, '\n', (size_t)n) ||
        cl->inlen > CONTROL_MAX_REQUEST)
      break; /* answer before reading more */
  }
  if (serve_client(c, cl, eof) < 0) drop(c, cl);
}

static void set_listening(struct control *c, int on) {
  struct epoll_event e = {.events = on ? EPOLLIN : 0,
                          .data.ptr = &c->tag_listen};
  epoll_ctl(c->ep, EPOLL_CTL_MOD, c->lfd, &e);
}

static void on_accept(struct control *c) {
  for (;;) {
    int fd = intake_accept(&c->intake, c->lfd);
    if (fd < 0) {
      if (errno != EAGAIN) set_listening(c, 0); /* out of descriptors */
      return;
    }
    struct ucred cr = {0};
    socklen_t cl = sizeof cr;
    const char *why = NULL;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
        (cr.uid != 0 && cr.uid != geteuid()))
      why = "{\"error\":\"permission denied: only root and the daemon's user "
            "may use the control socket\"}\n";
    else if (c->nclients >= CONTROL_MAX_CLIENTS)
      why = "{\"error\":\"too many control connections; try again\"}\n";
    if (why) {
      if (send(fd, why, strlen(why), MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug("control socket: %s", strerror(errno));
      close(fd);
      continue;
    }
    struct client *n = calloc(1, sizeof *n);
    if (!n) {
      close(fd);
      continue;
    }
    n->fd = fd;
    n->deadline = clock_mono_ns() + CONTROL_CLIENT_TIMEOUT_MS * 1000000ull;
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = n};
    if (epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &e) < 0) {
      close(fd);
      free(n);
      continue;
    }
    n->next = c->clients;
    c->clients = n;
    c->nclients++;
  }
}

void control_run(struct control *c) {
  if (!c) return;
  if (c->lfd >= 0 && intake_resume_due(&c->intake)) set_listening(c, 1);
  struct epoll_event ev[16];
  int n = epoll_wait(c->ep, ev, 16, 0);
  int http = 0;
  for (int i = 0; i < n; i++) {
    if (ev[i].data.ptr == &c->tag_listen)
      on_accept(c);
    else if (ev[i].data.ptr == &c->tag_http)
      http = 1;
    else
      on_client(c, ev[i].data.ptr);
  }
  /* libmicrohttpd wants a run after every wake-up while it has a timeout
   * (that is, open connections), not only when its fd is ready. */
  if (c->http && (http || metrics_http_timeout(c->http) >= 0))
    metrics_http_run(c->http);
  uint64_t t = clock_mono_ns();
  for (struct client *cl = c->clients, *next; cl; cl = next) {
    next = cl->next;
    if (t >= cl->deadline) drop(c, cl);
  }
}

int control_timeout(const struct control *c, int timeout_ms) {
  if (!c) return timeout_ms;
  int t = intake_timeout(&c->intake, timeout_ms);
  if (c->clients) {
    uint64_t now = clock_mono_ns(), first = UINT64_MAX;
    for (const struct client *cl = c->clients; cl; cl = cl->next)
      if (cl->deadline < first) first = cl->deadline;
    int ms = first <= now ? 0 : (int)((first - now) / 1000000 + 1);
    if (t < 0 || ms < t) t = ms;
  }
  if (c->http) {
    int ms = metrics_http_timeout(c->http);
    if (ms >= 0 && (t < 0 || ms < t)) t = ms;
  }
  return t;
}

void control_close(struct control *c) {
  if (!c) return;
  while (c->clients)
    drop(c, c->clients);
  metrics_http_stop(c->http);
  if (c->lfd >= 0) {
    close(c->lfd);
    struct stat st;
    if (c->path && stat(c->path, &st) == 0 && st.st_dev == c->dev &&
        st.st_ino == c->ino)
      unlink(c->path);
  }
  free(c->path);
  if (c->ep >= 0) close(c->ep);
  control_rates_free(c->rates);
  free(c);
}
