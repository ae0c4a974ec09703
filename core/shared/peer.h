/* Who is on the other end of a VMM connection, and what may be done to
 * it: the allow lists, the identity of its process (a pidfd, or a pid),
 * and signalling it.  Decisions are pure functions so they can be
 * unit-tested without a peer in another pid namespace. */
#ifndef UFFDKIT_CORE_PEER_H
#define UFFDKIT_CORE_PEER_H

#include <sys/socket.h>
#include <sys/types.h>

#include "config.h"

/* 1 if cr passes allow_uids and allow_gids (each list, when set, must
 * hold the peer's id: both must match). */
int peer_allowed(const struct listener_conf *c, const struct ucred *cr);

/* A pidfd of the peer on conn: SO_PEERPIDFD names the very process that
 * connected; older kernels fall back to pidfd_open on its pid.  -1 with
 * errno ESRCH if the peer is already gone, -1 with errno 0 if its process
 * cannot be named from here (pid 0: another pid namespace, on a kernel
 * without SO_PEERPIDFD). */
int peer_pidfd(int conn, pid_t pid);

/* NULL if a session with this peer can be served, else why not.  A peer
 * with no pidfd can be served only if its session ends by hang-up
 * (keeps_socket: Firecracker 1.12 and later); an older one would never be
 * seen to end. */
const char *peer_refusal(pid_t pid, int pidfd, int keeps_socket);

/* 1 if the peer's process can be signalled (a pidfd, or a pid > 0). */
int peer_can_signal(pid_t pid, int pidfd);

/* Sends sig to the peer through pidfd, else to pid.  Never signals a
 * pid <= 0 (that would be a process group, or every process): -1 with
 * errno ESRCH instead. */
int peer_signal(int pidfd, pid_t pid, int sig);

#endif
