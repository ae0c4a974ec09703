/* The binary the supervisor runs, and the one an upgrade would run.
 *
 * Workers are started from a descriptor of our own executable opened at
 * start, never from its path: a binary deleted, moved or replaced on disk
 * (a package upgrade) neither leaves workers unstartable nor mixes
 * versions.  An upgrade first checks the binary now at the path: it must
 * open, be executable and answer --handover-version with ours. */
#ifndef UFFDKIT_CORE_SELFEXE_H
#define UFFDKIT_CORE_SELFEXE_H

#include <stddef.h>

/* What the descriptor hand-over and the shared state look like; a binary
 * answering another value cannot take over from this one. */
#define HANDOVER_VERSION "uffdkit-handover 3"

/* A descriptor (O_CLOEXEC) of the executable this process runs, or -1. */
int selfexe_open(void);

/* execveat(fd, "", argv, environ, AT_EMPTY_PATH); returns only on error. */
int selfexe_exec(int fd, char *const *argv);

/* The binary at the path we were started from, checked as a successor:
 * returns a descriptor of it (path in path), or -1 with the reason in why.
 * Nothing of this process is changed by a failed check. */
int selfexe_successor(char *path, size_t pathlen, char *why, size_t whylen);

#endif
