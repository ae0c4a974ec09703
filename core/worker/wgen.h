/* The configuration generations a worker serves.  One worker serves every
 * live generation: the supervisor sends each one (its pinned files, its
 * listeners' counters, then its text as IPC_GEN); the worker builds it on
 * a thread of its own, so sessions keep starting meanwhile, sharing every
 * stack that did not change (stacks.h), and answers IPC_READY or
 * IPC_GEN_ERR with the generation's id.  IPC_UNGEN retires one; it is
 * freed once no session uses it. */
#ifndef UFFDKIT_CORE_WGEN_H
#define UFFDKIT_CORE_WGEN_H

#include "ipc.h"
#include "pinned.h"
#include "session.h"

typedef int (*wgen_used_fn)(const struct worker_listener *wl);

/* ipc: the supervisor; plugin_dir: the command line's, or NULL (each
 * generation's own); level_fixed, json_fixed: the log level, the log
 * format were given on the command line (else the newest generation's
 * apply). */
void wgen_init(int ipc, const char *plugin_dir, int level_fixed,
               int json_fixed);
/* Readable when a build has finished: then call wgen_built(). */
int wgen_event_fd(void);
void wgen_built(void);
/* IPC_PIN, IPC_LISTENER, IPC_GEN, IPC_UNGEN; takes fds. */
void wgen_msg(const struct ipc_msg *m, int fds[IPC_MAX_FDS]);

/* The listener name of generation gen, if that generation is built. */
struct worker_listener *wgen_listener(int gen, const char *name);
/* Generation gen's pins and plugin search path (for its restores); the
 * newest built generation's if gen is not built. */
struct pinset *wgen_pins(int gen);
const char *wgen_plugin_dir(int gen);

/* Frees the generations retired whose last session has gone. */
void wgen_sweep(wgen_used_fn used);
void wgen_free_all(void);

#endif
