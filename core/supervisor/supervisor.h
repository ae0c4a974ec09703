/* The supervisor process: owns the sockets, the uffds and each session's
 * shared state, never loads a plugin, and restarts the worker. */
#ifndef UFFDKIT_CORE_SUPERVISOR_H
#define UFFDKIT_CORE_SUPERVISOR_H

#include "config.h"

struct supervisor_opts {
  const char *log_level; /* command-line override, or NULL */
  const char *log_format;
  const char *plugin_dir;  /* command-line override, or NULL */
  const char *config_path; /* the file, or NULL when from the command line */
  char **argv;             /* to re-execute on SIGUSR2 (upgrade) */
  /* Exit once a session has ended and none is live or in its handshake. */
  int exit_when_idle;
};

/* Runs until SIGTERM/SIGINT (or idle, with exit_when_idle).  Takes ownership of
 * conf (from malloc); conf may be NULL when the previous process hands its
 * configuration over. SIGHUP reloads the config file; SIGUSR2 re-executes the
 * binary (an upgrade) keeping every socket and session.  Returns the exit
 * status. */
int supervisor_run(struct daemon_conf *conf, const struct supervisor_opts *o);

#endif
