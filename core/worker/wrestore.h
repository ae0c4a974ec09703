/* The worker's side of per-restore listeners: each IPC_RESTORE brings the
 * expanded configuration of one listener, whose stack is built on a thread
 * of its own (a source slow to start delays no other) and reported by the
 * loop once built (IPC_RESTORE_OK, or IPC_RESTORE_ERR with the reason).
 * Sessions handed over for it meanwhile wait for the build. */
#ifndef UFFDKIT_CORE_WRESTORE_H
#define UFFDKIT_CORE_WRESTORE_H

#include "ipc.h"
#include "session.h"

typedef int (*wrestore_used_fn)(const struct worker_listener *wl);
/* Starts the session of m on wl; NULL: refuses it (closing fds). */
typedef void (*wrestore_start_fn)(const struct ipc_msg *m, int fds[4],
                                  struct worker_listener *wl);

/* Handles IPC_RESTORE, IPC_UNRESTORE and IPC_PIN (a restore's pinned
 * file, sent before its IPC_RESTORE); takes fds. */
void wrestore_msg(int ipc, const char *plugin_dir, const struct ipc_msg *m,
                  int fds[IPC_MAX_FDS], wrestore_used_fn used);
/* An eventfd readable when builds have ended: then call wrestore_done,
 * which answers the supervisor and starts the sessions that waited. */
int wrestore_fd(void);
void wrestore_done(int ipc, wrestore_start_fn start, wrestore_used_fn used);
/* Keeps the session of m (taking fds) if its restore is being built:
 * 1, else 0. */
int wrestore_defer(const struct ipc_msg *m, int fds[4]);
/* How many builds are running. */
int wrestore_building(void);
/* The per-restore listener named name, built, or NULL. */
struct worker_listener *wrestore_find(const char *name);
/* Frees the listeners removed whose last session has gone. */
void wrestore_sweep(wrestore_used_fn used);
void wrestore_free_all(void);

/* worker.c: builds wl's stack and pool from conf; 0, or -1 with err. */
int worker_listener_build(struct worker_listener *wl,
                          const struct daemon_conf *conf,
                          const char *plugin_dir, struct conf_err *err);

#endif
