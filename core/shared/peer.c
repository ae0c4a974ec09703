#include "peer.h"

#include <errno.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5 */
#endif

int peer_allowed(const struct listener_conf *c, const struct ucred *cr) {
  int uid_ok = !c->n_allow_uids, gid_ok = !c->n_allow_gids;
  for (int i = 0; i < c->n_allow_uids; i++)
    uid_ok |= c->allow_uids[i] == cr->uid;
  for (int i = 0; i < c->n_allow_gids; i++)
    gid_ok |= c->allow_gids[i] == cr->gid;
  return uid_ok && gid_ok;
}

int peer_pidfd(int conn, pid_t pid) {
  int fd = -1;
  socklen_t len = sizeof fd;
  if (getsockopt(conn, SOL_SOCKET, SO_PEERPIDFD, &fd, &len) == 0 && fd >= 0)
    return fd;
  if (errno == ESRCH) return -1;
  if (pid <= 0) {
    errno = 0;
    return -1;
  }
  return (int)syscall(SYS_pidfd_open, pid, 0);
}

const char *peer_refusal(pid_t pid, int pidfd, int keeps_socket) {
  if (pidfd >= 0 || keeps_socket) return NULL;
  return pid <= 0
             ? "its process cannot be identified (no pid: another pid "
               "namespace on a kernel without SO_PEERPIDFD), and with a "
               "handshake before Firecracker 1.12 its end could not be seen"
             : "no pidfd of its process could be had, and with a handshake "
               "before Firecracker 1.12 its end could not be seen";
}

int peer_can_signal(pid_t pid, int pidfd) {
  return pidfd >= 0 || pid > 0;
}

int peer_signal(int pidfd, pid_t pid, int sig) {
  if (pidfd >= 0)
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
  if (pid <= 0) {
    errno = ESRCH;
    return -1;
  }
  return kill(pid, sig);
}
