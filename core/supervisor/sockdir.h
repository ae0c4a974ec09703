/* The directory of a per-restore socket, made safely: each component is
 * reached without following a symbolic link, missing ones are created
 * 0755, and the last must be ours or root's and not writable by others
 * (unless sticky), so nobody else can swap the socket's node. */
#ifndef UFFDKIT_CORE_SOCKDIR_H
#define UFFDKIT_CORE_SOCKDIR_H

#include <stddef.h>

/* 0, or -1 with the reason in err. */
int sockdir_make(const char *socket_path, char *err, size_t errlen);

#endif
