/* Per-restore listeners, made from a template by the control request
 * `serve` and removed by `stop`, expiry or their one VM leaving (see
 * docs/control-protocol.md).  Each is a listener like those of the
 * configuration (a struct sv_listener with its counters, socket and
 * sessions), plus its expanded configuration text, held in a memfd so
 * that a new worker, an upgraded supervisor or a restarted service starts
 * its source again. */
#ifndef UFFDKIT_CORE_RESTORES_H
#define UFFDKIT_CORE_RESTORES_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "config.h"
#include "handover.h"
#include "ipc.h"
#include "pinlist.h"

struct sv;
struct gen;
struct sv_listener;
struct sv_session;
struct session_counters;
struct tmpl_total;

enum restore_state { R_STARTING, R_LISTENING, R_CLOSED };

struct restore {
  char id[64];
  char template[64];
  cJSON *vars;
  struct gen *gen; /* whose template it was made from, whose worker serves */
  struct daemon_conf conf; /* the expanded listener, its only one */
  int text_fd;             /* a memfd: header lines and conf's text */
  struct sv_listener *l;
  enum restore_state state;
  int fd; /* bound, not yet accepting, while R_STARTING */
  int one_shot;
  int stopped;              /* its live sessions were killed by stop */
  uint64_t expires_unix_ns; /* 0: never; cleared once a VM connected */
  uint64_t created_unix_ns;
  uint64_t client;     /* the control client waiting for the serve answer */
  int deaths;          /* workers that died while its source was starting */
  struct pinlist pins; /* data files its source opened: D-/K-<id>-<n> */
  uint64_t start_timeout_ns; /* its template's start_timeout */
  uint64_t start_by_ns;      /* while R_STARTING: refused then (monotonic) */
  /* Tells its worker's messages from those of an earlier restore of the
   * same id whose start timed out and goes on in the worker. */
  uint32_t serial;
  struct restore *next;
};

/* The control view's serve, stop, extend and metrics_extra. */
int restore_serve(void *sv, uint64_t client, const cJSON *req, char *err,
                  size_t len, const char **code);
cJSON *restore_stop(void *sv, const cJSON *req, char *err, size_t len,
                    const char **code);
void restore_extend(void *sv, const char *cmd, cJSON *answer);
void restore_metrics(void *sv, FILE *out);

/* The template of a per-restore listener, or NULL. */
const char *restore_template(const struct sv_listener *l);

/* Hooks of the supervisor. */
void restore_worker_ready(struct sv *v, struct gen *g);
/* g's worker died: a serve that waited through RESTORE_MAX_DEATHS of them
 * is answered with an error (its source may be what kills them). */
void restore_worker_died(struct sv *v);
#define RESTORE_MAX_DEATHS 3
void restore_worker_msg(struct sv *v, struct gen *g, const struct ipc_msg *m,
                        const int *fds);
/* Takes the descriptors of an IPC_PIN naming a restore: a data file its
 * source opened. */
void restore_pin(struct sv *v, const struct ipc_msg *m, int fds[IPC_MAX_FDS]);
void restore_connected(struct sv *v, struct sv_listener *l,
                       const struct ucred *cr, const char *refused);
void restore_rejected(struct sv *v, struct sv_listener *l, const char *why);
void restore_ready(struct sv *v, struct sv_session *s);
void restore_ended(struct sv *v, struct sv_session *s, int reason);
void restore_settle(struct sv *v, struct sv_listener *l);
/* -1 with why in err when a listener of c has the id of a live
 * per-restore listener (a reload bringing it is refused), else 0. */
int restore_name_clash(struct sv *v, const struct daemon_conf *c, char *err,
                       size_t len);
/* `drain` of a per-restore listener: stop, its sessions kept.  0. */
int restore_drain(struct sv *v, struct sv_listener *l);
/* Expiry and source errors; the ms until it must run again folded into
 * ms (-1: none). */
void restore_tick(struct sv *v);
int restore_timeout(struct sv *v, int ms);
void restore_shutdown(struct sv *v);
/* Whether a serve waits for its source (an upgrade waits for it). */
int restore_starting(const struct sv *v);

/* Shared by restores.c, restoreview.c and restoreadopt.c. */
struct tmpl_total *restore_totals(struct sv *v, const char *name);
/* Counts r among the live restores of v and of its generation. */
void restore_list(struct sv *v, struct restore *r);
/* r's pin list, empty, named after r->id (D-/K-<id>-<n>). */
void restore_pins_init(struct restore *r);
struct restore *restore_by_id(struct sv *v, const char *id);
/* A serial for a new restore (made or adopted). */
uint32_t restore_next_serial(struct sv *v);
uint64_t restore_unix_now(void);
/* An event of r of this kind, with id and time; restore_emit sends it to
 * watchers (and frees it). */
cJSON *restore_event(const struct restore *r, const char *kind);
void restore_emit(struct sv *v, const struct restore *r, cJSON *e);
/* Closes r's socket (event closed, reason why); removed once idle. */
void restore_close(struct sv *v, struct restore *r, const char *why);

/* restoreevents.c: a failed event of r with why, its policy "closed" (no
 * VM connects to r any more). */
void restore_failed_closed(struct sv *v, const struct restore *r,
                           const char *why);
/* A failed event for each per-restore session whose source failed a read,
 * once, found in shared memory. */
void restore_tell_source_errors(struct sv *v);
/* The worker's IPC_SOURCE_ERROR: session id's first source error, its
 * reason in the memfd why_fd; told to watchers at once. */
void restore_source_error(struct sv *v, uint64_t id, int why_fd);

/* upgrade: adopts the restores handed over (R-<id>), before sessions. */
void restore_adopt(struct sv *v, struct handed *h, int n);

#endif
