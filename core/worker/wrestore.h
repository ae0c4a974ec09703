/* The worker's side of per-restore listeners: each IPC_RESTORE brings the
 * expanded configuration of one listener, whose stack is built at once and
 * reported (IPC_RESTORE_OK, or IPC_RESTORE_ERR with the reason). */
#ifndef UFFDKIT_CORE_WRESTORE_H
#define UFFDKIT_CORE_WRESTORE_H

#include "ipc.h"
#include "session.h"

typedef int (*wrestore_used_fn)(const struct worker_listener *wl);

/* Handles IPC_RESTORE, IPC_UNRESTORE and IPC_PIN (a restore's pinned
 * file, sent before its IPC_RESTORE); takes fds. */
void wrestore_msg(int ipc, const char *plugin_dir, const struct ipc_msg *m,
                  int fds[IPC_MAX_FDS], wrestore_used_fn used);
/* The per-restore listener named name, or NULL. */
struct worker_listener *wrestore_find(const char *name);
/* Frees the listeners removed whose last session has gone. */
void wrestore_sweep(wrestore_used_fn used);
void wrestore_free_all(void);

/* worker.c: builds wl's stack and pool from conf. */
int worker_listener_build(struct worker_listener *wl,
                          const struct daemon_conf *conf,
                          const char *plugin_dir, char *err, size_t errlen);

#endif
