/* Per-restore listeners in the supervisor: serve, stop, expiry, one_shot,
 * their events, and keeping them across worker restarts and upgrades. */
#include "restores.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "figures.h"
#include "log.h"
#include "notify.h"
#include "sockdir.h"
#include "sv.h"
#include "template.h"

uint64_t restore_unix_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct restore *restore_by_id(struct sv *v, const char *id) {
  for (struct restore *r = v->restores; r; r = r->next)
    if (!strcmp(r->id, id)) return r;
  return NULL;
}

void restore_pins_init(struct restore *r) {
  char what[96];
  snprintf(what, sizeof what, "restore %s", r->id);
  pinlist_init(&r->pins, 'D', 'K', r->id, what);
}

const char *restore_template(const struct sv_listener *l) {
  return l->restore ? l->restore->template : NULL;
}

static void num(cJSON *o, const char *k, double n) {
  json_put(o, k, cJSON_CreateNumber(n));
}

/* ---- removal ---- */

static void forget_listener(struct sv *v, struct sv_listener *l) {
  char n[96];
  close_listener(v, l);
  notify_fdstore_remove(fdname('S', l->name, n, sizeof n));
  for (struct sv_listener **pp = &v->ls; *pp; pp = &(*pp)->next)
    if (*pp == l) {
      *pp = l->next;
      break;
    }
  munmap(l->stats, sizeof *l->stats);
  close_if(l->stats_fd);
  free(l);
}

void restore_list(struct sv *v, struct restore *r) {
  r->next = v->restores;
  v->restores = r;
  v->nrestores++;
  r->gen->restores++;
}

static void unlist(struct sv *v, struct restore *r) {
  for (struct restore **pp = &v->restores; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      break;
    }
  v->nrestores--;
}

static void free_restore(struct sv *v, struct restore *r) {
  char n[96];
  notify_fdstore_remove(fdname('R', r->id, n, sizeof n));
  if (r->fd >= 0) {
    close(r->fd);
    unlink(r->conf.listeners[0].socket);
  }
  if (r->l) forget_listener(v, r->l);
  pinlist_free(&r->pins);
  close_if(r->text_fd);
  cJSON_Delete(r->vars);
  conf_free(&r->conf);
  free(r);
}

/* Its worker forgets r (a start still running is cleaned up once over). */
static void unrestore(const struct restore *r) {
  struct ipc_msg m = {.type = IPC_UNRESTORE, .code = (int32_t)r->serial};
  snprintf(m.name, sizeof m.name, "%s", r->id);
  if (r->gen->w->ipc >= 0) ipc_send(r->gen->w->ipc, &m, NULL, 0);
}

/* r is gone: its totals go to its template, its worker forgets it. */
static void remove_restore(struct sv *v, struct restore *r) {
  struct tmpl_total *t = restore_totals(v, r->template);
  const struct listener_stats *st = r->l->stats;
  if (t) {
    session_counters_add(&t->c, &st->ended);
    t->sessions_total += st->sessions_total;
    t->refused_peers += st->refused_peers;
    t->handshake_errors += st->handshake_errors;
  }
  unrestore(r);
  log_info("restore %s removed", r->id);
  restore_emit(v, r, restore_event(r, "removed"));
  unlist(v, r);
  struct gen *g = r->gen;
  g->restores--;
  free_restore(v, r);
  if (!v->stopping) maybe_retire(v, g);
}

void restore_close(struct sv *v, struct restore *r, const char *why) {
  if (r->state == R_CLOSED) return;
  close_listener(v, r->l);
  r->state = R_CLOSED;
  cJSON *e = restore_event(r, "closed");
  json_put(e, "reason", cJSON_CreateString(why));
  restore_emit(v, r, e);
  restore_settle(v, r->l);
}

/* Removal waits for restore_tick(): callers may still hold l. */
void restore_settle(struct sv *v, struct sv_listener *l) {
  (void)v;
  (void)l;
}

/* ---- serve ---- */

uint32_t restore_next_serial(struct sv *v) {
  if (!++v->restore_serial) v->restore_serial = 1; /* 0: none */
  return v->restore_serial;
}

static int fail(char *err, size_t len, const char **code, const char *c,
                const char *fmt, const char *a) {
  snprintf(err, len, fmt, a);
  *code = c;
  return -1;
}

/* The vars of req as template_var (pointing into req). */
static int get_vars(const cJSON *req, struct template_var *out, char *err,
                    size_t len, const char **code) {
  const cJSON *vars = cJSON_GetObjectItemCaseSensitive(req, "vars");
  int n = 0;
  const cJSON *item;
  cJSON_ArrayForEach(item, vars) {
    if (n == TEMPLATE_MAX_VARS)
      return fail(err, len, code, "bad_variable",
                  "more than %s variables given", "16");
    out[n++] = (struct template_var){item->string, item->valuestring};
  }
  return n;
}

/* The id of a new restore: the one asked for, or one made up. */
static int pick_id(struct sv *v, const cJSON *req, const char *tmpl, char *id,
                   char *err, size_t len, const char **code) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(req, "id");
  if (j) {
    struct conf_err e;
    if (template_check_value("id", j->valuestring, 63, &e) < 0) {
      conf_err_text(&e, err, len);
      *code = "bad_request";
      return -1;
    }
    snprintf(id, 64, "%s", j->valuestring);
  } else {
    snprintf(id, 64, "%.46s-%016llx", tmpl, (unsigned long long)++v->next_id);
  }
  if (find_listener(v, id))
    return fail(err, len, code, "exists",
                "\"%s\" is already the name of a listener", id);
  return 0;
}

static int check_uid(const struct template_conf *t, const cJSON *req,
                     uid_t *uid, char *err, size_t len, const char **code) {
  const cJSON *u = cJSON_GetObjectItemCaseSensitive(req, "uid");
  if (!u) return 0;
  *uid = (uid_t)u->valuedouble;
  for (int i = 0; i < t->n_serve_uids; i++)
    if (t->serve_uids[i] == *uid) return 1;
  snprintf(err, len, "uid %u is not in template %s's serve_uids",
           (unsigned)*uid, t->name);
  *code = "denied";
  return -1;
}

/* The text held for r: two comment lines libconfig skips, saying what
 * an upgraded supervisor needs to adopt r, then the listener. */
static int hold_text(struct restore *r, const char *text) {
  char *vars = cJSON_PrintUnformatted(r->vars);
  char *all = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&all, &len);
  if (!m || !vars) {
    if (m) fclose(m);
    free(vars);
    return -1;
  }
  fprintf(m, "# restore %s %d %d %llu %llu\n# vars %s\n%s", r->template,
          r->gen->id, r->one_shot, (unsigned long long)r->expires_unix_ns,
          (unsigned long long)r->created_unix_ns, vars, text);
  fclose(m);
  free(vars);
  r->text_fd = memfd_create("uffdkit-restore", MFD_CLOEXEC);
  int ok = r->text_fd >= 0 && write(r->text_fd, all, len) == (ssize_t)len;
  free(all);
  return ok ? 0 : -1;
}

static void send_restore(struct restore *r) {
  struct ipc_msg m = {.type = IPC_RESTORE,
                      .id = (uint64_t)r->gen->id,
                      .code = (int32_t)r->serial};
  snprintf(m.name, sizeof m.name, "%s", r->id);
  int fds[2] = {r->l->stats_fd, r->text_fd};
  /* A worker still starting gets it once ready (restore_worker_ready). */
  if (!r->gen->ready) return;
  struct ipc_msg pin = {.type = IPC_PIN, .id = r->serial};
  snprintf(pin.name, sizeof pin.name, "%s", r->id);
  /* A later worker's source opens the same files. */
  pinlist_send(&r->pins, r->gen->w->ipc, &pin);
  if (ipc_send(r->gen->w->ipc, &m, fds, 2) < 0)
    log_warn("restore %s: could not hand to the worker: %s", r->id,
             strerror(errno));
}

/* Expands and loads r's listener; 0, or -1 with err and code. */
static int make_conf(struct sv *v, struct restore *r,
                     const struct template_conf *t, const cJSON *req, char *err,
                     size_t len, const char **code) {
  struct template_var vars[TEMPLATE_MAX_VARS];
  int n = get_vars(req, vars, err, len, code);
  uid_t uid = 0;
  int has_uid = n < 0 ? -1 : check_uid(t, req, &uid, err, len, code);
  if (has_uid < 0) return -1;
  struct conf_err e;
  char *text = template_expand(v->current->conf, t, r->id, vars, n,
                               has_uid ? &uid : NULL, &e);
  if (!text) {
    conf_err_text(&e, err, len);
    *code = "bad_variable";
    return -1;
  }
  char what[96];
  snprintf(what, sizeof what, "restore %s", r->id);
  /* conf_load_string initialises the config itself (failing or not). */
  config_destroy(&r->conf.cfg);
  int rc = conf_load_string(&r->conf, text, what, &e);
  if (rc < 0) conf_err_text(&e, err, len);
  if (rc == 0) rc = hold_text(r, text);
  free(text);
  if (rc < 0) *code = "bad_variable";
  return rc;
}

static void serve_settings(struct restore *r, const struct template_conf *t,
                           const cJSON *req) {
  const cJSON *o = cJSON_GetObjectItemCaseSensitive(req, "one_shot");
  const cJSON *e = cJSON_GetObjectItemCaseSensitive(req, "expiry_ms");
  r->one_shot = o ? cJSON_IsTrue(o) : t->one_shot;
  uint64_t ns = e ? (uint64_t)e->valuedouble * 1000000ull : t->expiry_ns;
  r->created_unix_ns = restore_unix_now();
  r->expires_unix_ns = ns ? r->created_unix_ns + ns : 0;
  const cJSON *vars = cJSON_GetObjectItemCaseSensitive(req, "vars");
  r->vars = cJSON_Duplicate(vars, 1);
}

/* Binds r's socket, in a directory made safely; 0 or -1. */
static int bind_restore(struct restore *r, char *err, size_t len,
                        const char **code) {
  const struct listener_conf *c = &r->conf.listeners[0];
  char why[1024];
  if (sockdir_make(c->socket, why, sizeof why) < 0) {
    snprintf(err, len, "restore %s: %s", r->id, why);
    *code = "socket_failed";
    return -1;
  }
  r->fd = bind_listener(c, err, len);
  if (r->fd < 0) *code = "socket_failed";
  return r->fd < 0 ? -1 : 0;
}

int restore_serve(void *opaque, uint64_t client, const cJSON *req, char *err,
                  size_t len, const char **code) {
  struct sv *v = opaque;
  const char *name =
      cJSON_GetObjectItemCaseSensitive(req, "template")->valuestring;
  if (v->stopping || v->upgrade || !v->current ||
      (!v->current->ready && !v->current->w->pid))
    return fail(err, len, code, "unavailable",
                "the daemon cannot serve now (%s)",
                v->stopping || v->upgrade ? "stopping or upgrading"
                                          : "its worker is down");
  const struct template_conf *t = template_find(v->current->conf, name);
  if (!t)
    return fail(err, len, code, "unknown_template",
                "no template named \"%s\" in the configuration", name);
  struct tmpl_total *tt = restore_totals(v, t->name);
  if (v->nrestores >= v->current->conf->max_restores) {
    if (tt) tt->serve_errors++;
    snprintf(err, len, "max_restores (%lld) per-restore listeners are live",
             (long long)v->current->conf->max_restores);
    *code = "limit";
    return -1;
  }
  struct restore *r = calloc(1, sizeof *r);
  if (!r) {
    if (tt) tt->serve_errors++;
    return fail(err, len, code, "failed", "out of memory%s", "");
  }
  r->fd = r->text_fd = -1;
  r->client = client;
  r->gen = v->current;
  r->serial = restore_next_serial(v);
  r->start_timeout_ns = t->start_timeout_ns;
  r->start_by_ns = clock_mono_ns() + t->start_timeout_ns;
  snprintf(r->template, sizeof r->template, "%s", t->name);
  serve_settings(r, t, req);
  config_init(&r->conf.cfg);
  if (pick_id(v, req, t->name, r->id, err, len, code) < 0 ||
      make_conf(v, r, t, req, err, len, code) < 0 ||
      bind_restore(r, err, len, code) < 0 || !(r->l = get_listener(v, r->id))) {
    if (!*err) snprintf(err, len, "cannot set up the restore");
    if (tt) tt->serve_errors++;
    free_restore(v, r);
    return -1;
  }
  r->l->restore = r;
  r->l->conf = &r->conf.listeners[0];
  r->l->gen = r->gen;
  restore_pins_init(r);
  restore_list(v, r);
  char n[96];
  store_fd(&r->text_fd, 1, fdname('R', r->id, n, sizeof n));
  send_restore(r);
  return 0;
}

/* ---- the worker's answers ---- */

static void started(struct sv *v, struct restore *r) {
  const struct listener_conf *c = &r->conf.listeners[0];
  install_listener(v, r->l, r->fd, c->socket);
  r->fd = -1;
  r->state = R_LISTENING;
  struct tmpl_total *t = restore_totals(v, r->template);
  if (t) t->serves_total++;
  log_info("restore %s (template %s) listening on %s", r->id, r->template,
           c->socket);
  cJSON *e = restore_event(r, "listening");
  json_put(e, "template", cJSON_CreateString(r->template));
  json_put(e, "socket", cJSON_CreateString(c->socket));
  num(e, "generation", r->gen->id);
  restore_emit(v, r, e);
  cJSON *a = cJSON_CreateObject();
  json_put(a, "ok", cJSON_CreateTrue());
  json_put(a, "id", cJSON_CreateString(r->id));
  json_put(a, "socket", cJSON_CreateString(c->socket));
  json_put(a, "template", cJSON_CreateString(r->template));
  num(a, "generation", r->gen->id);
  control_reply(v->ctl, r->client, a);
  r->client = 0;
}

/* A serve that will not be: nothing is left behind (its socket file
 * included) before the client hears of the failure. */
static void serve_failed(struct sv *v, struct restore *r, const char *why,
                         const char *code) {
  struct tmpl_total *t = restore_totals(v, r->template);
  if (t) t->serve_errors++;
  uint64_t client = r->client;
  unlist(v, r);
  r->gen->restores--;
  free_restore(v, r);
  control_reply(v->ctl, client, control_error(why, code));
}

static void not_started(struct sv *v, struct restore *r, int why_fd) {
  char why[2048];
  ipc_why(why_fd, why, sizeof why, "the source failed to start");
  log_error("restore %s: %s", r->id, why);
  if (r->state == R_STARTING) {
    serve_failed(v, r, why, "source_failed");
    return;
  }
  /* A new worker cannot start it again: no VM may connect any more. */
  restore_failed_closed(v, r, why);
  restore_close(v, r, "failed");
}

void restore_worker_msg(struct sv *v, struct gen *g, const struct ipc_msg *m,
                        const int *fds) {
  if (m->type == IPC_SOURCE_ERROR) {
    restore_source_error(v, m->id, fds[0]);
    return;
  }
  char id[sizeof m->name + 1];
  snprintf(id, sizeof id, "%.*s", (int)sizeof m->name, m->name);
  struct restore *r = restore_by_id(v, id);
  if (!r || r->gen != g || (uint32_t)m->code != r->serial) return;
  if (m->type == IPC_RESTORE_OK && r->state == R_STARTING)
    started(v, r);
  else if (m->type == IPC_RESTORE_ERR)
    not_started(v, r, fds[0]);
}

void restore_pin(struct sv *v, const struct ipc_msg *m, int fds[IPC_MAX_FDS]) {
  char id[sizeof m->name + 1];
  snprintf(id, sizeof id, "%.*s", (int)sizeof m->name, m->name);
  struct restore *r = restore_by_id(v, id);
  /* Not the pins of an earlier restore of this id whose start timed out. */
  if (r && (uint32_t)m->id == r->serial) {
    pinlist_add(&r->pins, fds[0], fds[1]);
  } else { /* removed meanwhile: nobody needs it */
    close_if(fds[0]);
    close_if(fds[1]);
  }
  fds[0] = fds[1] = -1;
}

void restore_worker_died(struct sv *v) {
  for (struct restore *r = v->restores, *n; r; r = n) {
    n = r->next;
    if (r->state != R_STARTING || ++r->deaths < RESTORE_MAX_DEATHS) continue;
    char why[256];
    snprintf(why, sizeof why,
             "restore %s: the worker died %d times while its source was "
             "starting (see the daemon's log); not served",
             r->id, r->deaths);
    log_error("%s", why);
    serve_failed(v, r, why, "worker_failed");
  }
}

void restore_worker_ready(struct sv *v, struct gen *g) {
  for (struct restore *r = v->restores; r; r = r->next)
    if (r->gen == g) send_restore(r);
}

/* ---- stop, expiry, source errors ---- */

int restore_name_clash(struct sv *v, const struct daemon_conf *c, char *err,
                       size_t len) {
  for (int i = 0; i < c->n_listeners; i++)
    if (restore_by_id(v, c->listeners[i].name)) {
      snprintf(err, len,
               "%s: listener %s has the name of a live per-restore listener; "
               "stop it first or rename the listener",
               c->file, c->listeners[i].name);
      return -1;
    }
  return 0;
}

int restore_drain(struct sv *v, struct sv_listener *l) {
  log_info("restore %s drained; %d live sessions keep running", l->restore->id,
           l->live);
  restore_close(v, l->restore, "stopped");
  return 0;
}

cJSON *restore_stop(void *opaque, const cJSON *req, char *err, size_t len,
                    const char **code) {
  struct sv *v = opaque;
  const char *id = cJSON_GetObjectItemCaseSensitive(req, "id")->valuestring;
  struct restore *r = restore_by_id(v, id);
  if (!r || r->state == R_STARTING) {
    fail(err, len, code, "not_found", "no per-restore listener \"%s\"", id);
    return NULL;
  }
  int keep =
      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req, "keep_sessions"));
  int n = r->l->live;
  if (!keep && n) {
    r->stopped = 1;
    for (struct sv_session *s = v->sessions; s; s = s->next)
      if (s->l == r->l) kill_session_vm(s);
    log_info("restore %s stopped: killing its %d VMs", r->id, n);
  } else {
    log_info("restore %s stopped; %d live sessions keep running", r->id, n);
  }
  cJSON *a = cJSON_CreateObject();
  json_put(a, "ok", cJSON_CreateTrue());
  json_put(a, "id", cJSON_CreateString(r->id));
  num(a, "sessions", n);
  restore_close(v, r, "stopped");
  return a;
}

/* r's source did not start in time: the serve is refused as any failed
 * serve (nothing left behind), and the worker told to drop the start. */
static void start_timed_out(struct sv *v, struct restore *r) {
  char why[512], took[32];
  uint64_t ns = r->start_timeout_ns;
  if (ns % 1000000000ull)
    snprintf(took, sizeof took, "%llums", (unsigned long long)(ns / 1000000));
  else
    snprintf(took, sizeof took, "%llus",
             (unsigned long long)(ns / 1000000000ull));
  snprintf(why, sizeof why,
           "restore %s: the source of template %s did not start within its "
           "start_timeout (%s); not served (the start is abandoned and "
           "cleaned up when it ends)",
           r->id, r->template, took);
  log_error("%s", why);
  unrestore(r);
  serve_failed(v, r, why, "start_timeout");
}

void restore_tick(struct sv *v) {
  uint64_t t = restore_unix_now(), mono = clock_mono_ns();
  for (struct restore *r = v->restores, *n; r; r = n) {
    n = r->next;
    if (r->state == R_STARTING && mono >= r->start_by_ns) {
      start_timed_out(v, r);
      continue;
    }
    if (r->state == R_LISTENING && r->expires_unix_ns &&
        t >= r->expires_unix_ns) {
      log_info("restore %s expired: no VM connected in time", r->id);
      restore_close(v, r, "expired");
    }
  }
  for (struct restore *r = v->restores, *n; r; r = n) {
    n = r->next;
    if (r->state == R_CLOSED && !r->l->live && !r->l->pending)
      remove_restore(v, r);
  }
  if (v->restores) restore_tell_source_errors(v);
}

int restore_timeout(struct sv *v, int ms) {
  uint64_t t = restore_unix_now(), next = UINT64_MAX;
  for (struct restore *r = v->restores; r; r = r->next)
    if (r->state == R_LISTENING && r->expires_unix_ns &&
        r->expires_unix_ns < next)
      next = r->expires_unix_ns;
  /* Source errors are read from shared memory: looked at each second. */
  for (struct sv_session *s = v->sessions; s && next - t > 1000000000ull;
       s = s->next)
    if (s->l->restore && !s->error_told) next = t + 1000000000ull;
  int w = next == UINT64_MAX ? -1
          : next <= t        ? 0
                             : (int)((next - t) / 1000000 + 1);
  uint64_t mono = clock_mono_ns();
  for (struct restore *r = v->restores; r; r = r->next)
    if (r->state == R_STARTING) {
      int s = r->start_by_ns <= mono
                  ? 0
                  : (int)((r->start_by_ns - mono) / 1000000 + 1);
      if (w < 0 || s < w) w = s;
    }
  return w >= 0 && (ms < 0 || w < ms) ? w : ms;
}

int restore_starting(const struct sv *v) {
  for (const struct restore *r = v->restores; r; r = r->next)
    if (r->state == R_STARTING) return 1;
  return 0;
}

void restore_shutdown(struct sv *v) {
  while (v->restores) {
    struct restore *r = v->restores;
    if (r->client)
      control_reply(v->ctl, r->client,
                    control_error("the daemon is stopping", "unavailable"));
    unlist(v, r);
    r->gen->restores--;
    free_restore(v, r);
  }
  free(v->totals);
  v->totals = NULL;
  v->ntotals = 0;
}
