/* The file node of a listener's Unix socket.  Its directory may be
 * writable by a less-privileged user (a jailer's VM uid, for which
 * socket_owner exists), who can swap the node for a symlink or a hard
 * link at any time: so mode and owner are never set through the path.
 * They are set only on the node this process's socket is bound to, as
 * the kernel reports it (sock_diag: device and inode), reached without
 * following a link. */
#ifndef UFFDKIT_CORE_SOCKFILE_H
#define UFFDKIT_CORE_SOCKFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* A socket file left by an earlier run is removed if nothing listens on
 * it; anything that is not a socket is never touched.  0, or -1 with the
 * reason in err. */
int sockfile_clear_stale(const char *path, char *err, size_t errlen);

/* A socket bound at c->socket with c->socket_mode (never wider, even for
 * a moment) and c->socket_owner/socket_group, listening.  Returns the
 * descriptor, or -1 with the reason in err (nothing left at the path). */
int sockfile_open(const struct listener_conf *c, char *err, size_t errlen);

/* Sets c's mode and owner on the node at c->socket, if it is the node fd
 * is bound to; otherwise (replaced, a symlink...) leaves it alone and
 * returns -1 with the reason in err. */
int sockfile_apply(int fd, const struct listener_conf *c, char *err,
                   size_t errlen);

#endif
