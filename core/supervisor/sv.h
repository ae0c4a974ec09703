/* The supervisor's own state, shared by its parts: supervisor.c (sockets,
 * handshakes, sessions, the main loop), generation.c (configuration
 * generations, their workers, reload) and upgrade.c (handing everything
 * to the next process on SIGUSR2, and adopting it there).  Not an API:
 * only these files include it. */
#ifndef UFFDKIT_CORE_SV_H
#define UFFDKIT_CORE_SV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "clock.h"
#include "config.h"
#include "control.h"
#include "handover.h"
#include "handshake.h"
#include "intake.h"
#include "log.h"
#include "pinlist.h"
#include "restores.h"
#include "shm.h"
#include "supervisor.h"

enum kind { K_LISTENER, K_PENDING, K_WORKER, K_SIGNAL, K_CONTROL };

/* The worker process.  One serves every live generation: a reload sends
 * the new generation to it, and it keeps the stacks of the listeners whose
 * source did not change (their instances and caches). */
struct wproc {
  enum kind kind; /* K_WORKER: its ipc socket in epoll */
  pid_t pid;
  int ipc;
  uint64_t started;
  uint64_t restart_at; /* 0: none scheduled */
  uint64_t restart_delay;
};

/* A generation of the configuration.  A reload makes a new one; sessions
 * stay with the generation they started in, so a reload never changes
 * what a live VM is served, even across a worker crash.  A generation
 * with no sessions that is not current is retired. */
struct gen {
  int id;
  struct daemon_conf *conf;
  int config_fd;
  struct wproc *w; /* the worker serving it */
  int sent;        /* to the running worker, which builds it */
  int ready;       /* its sources started in the running worker */
  int ever_ready;
  int failed_starts; /* starts in a row that failed */
  uint64_t retry_at; /* 0: none scheduled */
  uint64_t retry_delay;
  int sessions;
  int restores;        /* per-restore listeners made from its templates */
  struct pinlist pins; /* data files its sources opened: F-/N-<gen>-<n> */
  struct gen *next;
};

/* A listener, by name, across generations. */
struct sv_listener {
  enum kind kind;
  char name[64];
  const struct listener_conf *conf; /* of gen */
  struct gen *gen;
  int fd; /* -1: not accepting (drained, removed, or not yet active) */
  char bound_path[108]; /* a socket path (sun_path); "": none */
  int stats_fd;
  struct listener_stats *stats;
  int pending;
  int live;
  int drained;          /* closed by `ctl drain`: stays closed until a reload */
  char what[80];        /* "listener NAME", for intake's messages */
  struct intake intake; /* accepting, paused while descriptors run out */
  /* Every message a peer can trigger: refused at once, or while in
   * its handshake; one limit each. */
  struct log_limit lim_refused, lim_rejected;
  int staged; /* bound for a generation whose worker is not ready yet */
  char staged_path[108];
  const struct gen *staged_gen; /* the generation it was bound for */
  struct restore *restore;      /* a per-restore listener's (restores.h) */
  struct sv_listener *next;
};

struct pending {
  enum kind kind;
  struct sv_listener *l;
  int conn, uffd, pidfd;
  struct ucred cred;
  uint64_t deadline;
  char *buf;
  size_t len;
  struct hs_scan scan; /* how far buf was scanned */
  struct pending *next;
};

struct sv_session {
  uint64_t id;
  struct sv_listener *l;
  struct gen *gen;
  int fds[4]; /* conn, uffd, pidfd, shm */
  struct session_shm *shm;
  size_t shm_len;
  int error_told; /* a source error was sent to watchers */
  struct sv_session *next;
};

/* One log line about session s, as the worker writes them: the prefix
 * "session ID (pid PID) on LISTENER" it carries, then fmt, the rest of the
 * sentence (": what happened", or " verb ...").  _limited: through one of
 * its listener's limits. */
#define SV_LOG_PREFIX "session %llu (pid %d) on %s"
#define SV_LOG_ARGS(s) (unsigned long long)(s)->id, (s)->shm->pid, (s)->l->name
#define sv_log(level, s, fmt, ...)                                             \
  log_msg(level, SV_LOG_PREFIX fmt, SV_LOG_ARGS(s), ##__VA_ARGS__)
#define sv_log_limited(lim, level, s, fmt, ...)                                \
  log_limited(lim, level, SV_LOG_PREFIX fmt, SV_LOG_ARGS(s), ##__VA_ARGS__)

struct sv {
  const struct supervisor_opts *opts;
  int ep;
  int sigfd;
  enum kind sig_kind;
  struct gen *gens;
  struct gen *current;
  struct gen *loading; /* a reload waiting for its worker's READY */
  int reload_again;    /* a reload asked for while one was loading */
  struct gen *dead;    /* freed after the epoll batch that may name them */
  int next_gen;
  struct wproc w;
  struct sv_listener *ls;
  struct pending *pending;
  struct sv_session *sessions;
  uint64_t next_id;
  int exe_fd; /* the binary we run: workers are started from it */
  int stopping;
  int failed;
  int upgrade;          /* SIGUSR2 seen: re-execute once no handshake is open */
  int upgrade_logged;   /* the wait for handshakes was logged */
  uint64_t ended;       /* sessions whose VM went, for exit_when_idle */
  uint64_t watchdog_ns; /* 0: no watchdog */
  uint64_t watchdog_at;
  enum kind control_kind;
  struct control *ctl;
  struct control_view view;
  struct restore *restores; /* restores.c */
  int nrestores;
  uint32_t restore_serial; /* the last given (restores.h) */
  struct tmpl_total *totals;
  int ntotals;
};

/* A template's counters of per-restore listeners removed, and serves. */
struct tmpl_total {
  char name[64];
  uint64_t serves_total, serve_errors;
  uint64_t sessions_total, refused_peers, handshake_errors;
  struct session_counters c;
};

/* Kinds of a session's descriptors, in the order of sv_session.fds:
 * connection, uffd, pidfd, shared state. */
extern const char session_fd_kind[4];

/* supervisor.c (the main loop) and listeners.c */
void ep_add(struct sv *v, int fd, uint32_t ev, void *ptr);
void close_if(int fd);
int apply_access(const struct sv_listener *l, const struct listener_conf *c,
                 char *err, size_t errlen);
void ep_del(struct sv *v, int fd);
const char *fdname(char kind, const char *what, char *buf, size_t len);
void store_fd(const int *fd, int n, const char *name);
void close_listener(struct sv *v, struct sv_listener *l);
int bind_listener(const struct listener_conf *c, char *err, size_t errlen);
void install_listener(struct sv *v, struct sv_listener *l, int fd,
                      const char *path);
int open_listener(struct sv *v, struct sv_listener *l);
struct sv_listener *find_listener(struct sv *v, const char *name);
struct sv_listener *listener_record(struct sv *v, const char *name,
                                    int stats_fd);
struct sv_listener *get_listener(struct sv *v, const char *name);

/* sessions.c */
void on_accept(struct sv *v, struct sv_listener *l);
void on_pending(struct sv *v, struct pending *p);
void free_pending(struct sv *v, struct pending *p, int close_conn);
void expire_pending(struct sv *v);
void resume_due(struct sv *v);
void end_session(struct sv *v, uint64_t id, int reason);
struct sv_session *add_session(struct sv *v, struct sv_listener *l,
                               const int fds[4], struct session_shm *shm,
                               size_t len);

/* generation.c */
struct gen *make_gen(struct sv *v, struct daemon_conf *conf, int id,
                     int config_fd);
struct gen *new_gen(struct sv *v, struct daemon_conf *conf);
void free_gen(struct sv *v, struct gen *g);
void free_dead_gens(struct sv *v);
struct gen *gen_by_id(struct sv *v, uint32_t id);
int gen_live(const struct sv *v, const struct gen *g);
void maybe_retire(struct sv *v, struct gen *g);
int point_listeners(struct sv *v, struct gen *g);
void unstage(struct sv *v, const struct gen *g);
int stage_all(struct sv *v, struct gen *g, char *err, size_t errlen);
void gen_ready(struct sv *v, struct gen *g);
void reload_failed(struct sv *v, struct gen *g);
int reload(struct sv *v, char *msg, size_t len);
void reload_queued(struct sv *v);

/* workerproc.c: the worker process */
void spawn_worker(struct sv *v);
void stop_worker(struct sv *v);
void send_gen(struct sv *v, struct gen *g);
void send_session(struct sv_session *s);
void on_worker_msg(struct sv *v);
void kill_session_vm(struct sv_session *s);
void on_child(struct sv *v);
void restart_due(struct sv *v);
uint64_t worker_next_due(const struct sv *v);

/* upgrade.c */
struct gen *adopt_gens(struct sv *v, struct handed *h, int n);
void adopt_stats(struct sv *v, struct handed *h, int n);
void adopt_listeners(struct sv *v, const struct daemon_conf *c,
                     struct handed *h, int n);
void adopt_sessions(struct sv *v, struct handed *h, int n);
void upgrade(struct sv *v);
void upgrade_when_idle(struct sv *v);

#endif
