#include "ipc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

ssize_t ipc_sendmsg_fds(int sock, struct msghdr *mh, const int *fds, int n) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * IPC_SENDMSG_MAX_FDS)];
    struct cmsghdr align;
  } u;
  if (n < 0 || n > IPC_SENDMSG_MAX_FDS) {
    errno = EINVAL;
    return -1;
  }
  if (n) {
    mh->msg_control = u.buf;
    mh->msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
    struct cmsghdr *c = CMSG_FIRSTHDR(mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
  }
  ssize_t r;
  do
    r = sendmsg(sock, mh, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  return r;
}

int ipc_send(int sock, const struct ipc_msg *m, const int *fds, int nfds) {
  struct ipc_msg copy = *m;
  int send_fds[IPC_MAX_FDS], n = 0;
  copy.fdmask = 0;
  for (int i = 0; i < nfds && i < IPC_MAX_FDS; i++)
    if (fds[i] >= 0) {
      copy.fdmask |= 1u << i;
      send_fds[n++] = fds[i];
    }
  struct iovec iov = {.iov_base = &copy, .iov_len = sizeof copy};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  ssize_t r = ipc_sendmsg_fds(sock, &mh, send_fds, n);
  return r == (ssize_t)sizeof copy ? 0 : -1;
}

int ipc_recv(int sock, struct ipc_msg *m, int fds[IPC_MAX_FDS]) {
  union {
    char buf[CMSG_SPACE(sizeof(int) * IPC_MAX_FDS)];
    struct cmsghdr align;
  } u;
  struct iovec iov = {.iov_base = m, .iov_len = sizeof *m};
  struct msghdr mh = {.msg_iov = &iov,
                      .msg_iovlen = 1,
                      .msg_control = u.buf,
                      .msg_controllen = sizeof u.buf};
  for (int i = 0; i < IPC_MAX_FDS; i++)
    fds[i] = -1;
  ssize_t r;
  do
    r = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r <= 0) return (int)r;
  int got[IPC_MAX_FDS], n = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
      int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < k && n < IPC_MAX_FDS; i++)
        memcpy(&got[n++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
  if (r != (ssize_t)sizeof *m) {
    for (int i = 0; i < n; i++)
      close(got[i]);
    errno = EPROTO;
    return -1;
  }
  for (int i = 0, j = 0; i < IPC_MAX_FDS; i++)
    if ((m->fdmask & (1u << i)) && j < n) fds[i] = got[j++];
  return 1;
}

int ipc_send_why(int sock, const struct ipc_msg *m, const char *why) {
  int fd = why ? memfd_create("uffdkit-why", MFD_CLOEXEC) : -1;
  size_t len = why ? strlen(why) : 0;
  if (fd >= 0 && write(fd, why, len) != (ssize_t)len) {
    close(fd); /* the receiver says something failed, without why */
    fd = -1;
  }
  int r = ipc_send(sock, m, &fd, 1);
  if (fd >= 0) close(fd);
  return r;
}

const char *ipc_why(int fd, char *buf, size_t len, const char *dflt) {
  snprintf(buf, len, "%s", dflt);
  ssize_t n = fd >= 0 && len > 1 ? pread(fd, buf, len - 1, 0) : -1;
  if (n > 0) buf[n] = 0;
  return buf;
}
