/* The events of per-restore listeners, for `watch`: how one is made and
 * sent, and those of their peers and sessions: connected, failed
 * (refused, a handshake error, a source error), ready and ended
 * (docs/control-protocol.md). */
#include <stdio.h>
#include <unistd.h>

#include "figures.h"
#include "restores.h"
#include "sv.h"

cJSON *restore_event(const struct restore *r, const char *kind) {
  cJSON *e = cJSON_CreateObject();
  json_put(e, "event", cJSON_CreateString(kind));
  json_put(e, "id", cJSON_CreateString(r->id));
  json_add_u64(e, "time_unix_ns", restore_unix_now());
  return e;
}

void restore_emit(struct sv *v, const struct restore *r, cJSON *e) {
  control_event(v->ctl, r->id, e);
}

static void num(cJSON *o, const char *k, double n) {
  json_put(o, k, cJSON_CreateNumber(n));
}

void restore_connected(struct sv *v, struct sv_listener *l,
                       const struct ucred *cr, const char *refused) {
  struct restore *r = l->restore;
  if (!r) return;
  cJSON *e = restore_event(r, refused ? "failed" : "connected");
  num(e, "pid", cr->pid);
  num(e, "uid", cr->uid);
  num(e, "gid", cr->gid);
  if (refused) {
    json_put(e, "error", cJSON_CreateString(refused));
    json_put(e, "policy", cJSON_CreateString("refused"));
    json_put(e, "session", cJSON_CreateNull());
  }
  restore_emit(v, r, e);
  if (refused) return;
  r->expires_unix_ns = 0;
  if (r->one_shot) restore_close(v, r, "one_shot");
}

void restore_failed_closed(struct sv *v, const struct restore *r,
                           const char *why) {
  cJSON *e = restore_event(r, "failed");
  json_put(e, "error", cJSON_CreateString(why));
  json_put(e, "policy", cJSON_CreateString("closed"));
  json_put(e, "session", cJSON_CreateNull());
  restore_emit(v, r, e);
}

void restore_rejected(struct sv *v, struct sv_listener *l, const char *why) {
  if (l->restore) restore_failed_closed(v, l->restore, why);
}

void restore_ready(struct sv *v, struct sv_session *s) {
  struct restore *r = s->l->restore;
  if (!r) return;
  const struct session_shm *m = s->shm;
  uint64_t mem = 0;
  for (uint32_t i = 0; i < m->nregions && i < CONF_MAX_REGIONS; i++)
    mem += m->regions[i].size;
  cJSON *e = restore_event(r, "ready");
  json_add_u64(e, "session", s->id);
  num(e, "pid", m->pid);
  num(e, "regions", m->nregions);
  num(e, "page_size", m->page_size);
  num(e, "memory_bytes", (double)mem);
  restore_emit(v, r, e);
}

void restore_ended(struct sv *v, struct sv_session *s, int reason) {
  struct restore *r = s->l->restore;
  if (!r) return;
  static const char *const reasons[] = {"exited", "refused", "failed",
                                        "shutdown"};
  const char *why =
      reason >= 0 && reason <= END_SHUTDOWN ? reasons[reason] : "exited";
  if (r->stopped && reason != END_SHUTDOWN) why = "stopped";
  cJSON *e = restore_event(r, "ended");
  json_add_u64(e, "session", s->id);
  json_put(e, "reason", cJSON_CreateString(why));
  json_put(e, "counters", control_counters_json(&s->shm->counters));
  restore_emit(v, r, e);
}

/* ---- source errors ---- */

/* The failed event of session s's source error. */
static void tell(struct sv *v, struct sv_session *s, const char *why) {
  struct restore *r = s->l->restore;
  static const char *const policies[] = {"kill", "sigbus", "hang"};
  int p = r->conf.listeners[0].on_source_error;
  s->error_told = 1;
  cJSON *e = restore_event(r, "failed");
  json_put(e, "error", cJSON_CreateString(why));
  json_put(e, "policy",
           cJSON_CreateString(p >= 0 && p <= 2 ? policies[p] : "kill"));
  json_add_u64(e, "session", s->id);
  restore_emit(v, r, e);
}

void restore_source_error(struct sv *v, uint64_t id, int why_fd) {
  char why[1024];
  ipc_why(why_fd, why, sizeof why, "the source failed a read");
  for (struct sv_session *s = v->sessions; s; s = s->next)
    if (s->id == id && s->l->restore && !s->error_told) tell(v, s, why);
}

/* A worker that died before it could say why: the counter in shared
 * memory says there was an error. */
void restore_tell_source_errors(struct sv *v) {
  for (struct sv_session *s = v->sessions; s; s = s->next)
    if (s->l->restore && !s->error_told &&
        __atomic_load_n(&s->shm->counters.source_errors, __ATOMIC_RELAXED))
      tell(v, s, "the source failed a read");
}
