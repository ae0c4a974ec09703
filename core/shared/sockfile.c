#include "sockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

int sockfile_clear_stale(const char *path, char *err, size_t errlen) {
  struct stat st;
  if (lstat(path, &st) < 0) {
    if (errno == ENOENT) return 0;
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(err, errlen, "%s exists and is not a socket; not touching it",
             path);
    return -1;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
  int r = fd < 0 ? -1 : connect(fd, (struct sockaddr *)&a, sizeof a);
  int e = errno;
  if (fd >= 0) close(fd);
  if (r == 0) {
    snprintf(err, errlen, "%s: another process is listening on it", path);
    return -1;
  }
  if (e != ECONNREFUSED) {
    snprintf(err, errlen, "%s: cannot tell whether it is in use: %s", path,
             strerror(e));
    return -1;
  }
  log_info("%s: replacing a stale socket", path);
  if (unlink(path) == 0) return 0;
  snprintf(err, errlen, "%s: %s", path, strerror(errno));
  return -1;
}

static int resolve_owner(const struct listener_conf *c, uid_t *uid, gid_t *gid,
                         char *err, size_t errlen) {
  *uid = (uid_t)-1;
  *gid = (gid_t)-1;
  if (c->socket_owner) {
    struct passwd *pw = getpwnam(c->socket_owner);
    if (!pw) {
      snprintf(err, errlen, "socket_owner '%s' is not a user", c->socket_owner);
      return -1;
    }
    *uid = pw->pw_uid;
  }
  if (c->socket_group) {
    struct group *gr = getgrnam(c->socket_group);
    if (!gr) {
      snprintf(err, errlen, "socket_group '%s' is not a group",
               c->socket_group);
      return -1;
    }
    *gid = gr->gr_gid;
  }
  return 0;
}

/* The device and inode of the file node socket fd is bound to, as the
 * kernel knows it (UNIX_DIAG_VFS).  0, or -1 with errno. */
static int bound_node(int fd, dev_t *dev, uint32_t *ino) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -1;
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) return -1;
  struct {
    struct nlmsghdr h;
    struct unix_diag_req r;
  } req = {.h = {.nlmsg_len = sizeof req,
                 .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                 .nlmsg_flags = NLM_F_REQUEST},
           .r = {.sdiag_family = AF_UNIX,
                 .udiag_states = ~0u,
                 .udiag_ino = (uint32_t)st.st_ino,
                 .udiag_show = UDIAG_SHOW_VFS,
                 .udiag_cookie = {~0u, ~0u}}};
  union {
    char b[1024];
    struct nlmsghdr align;
  } ans;
  ssize_t n = -1;
  if (send(nl, &req, sizeof req, 0) == (ssize_t)sizeof req)
    n = recv(nl, ans.b, sizeof ans.b, 0);
  int e = errno;
  close(nl);
  errno = e;
  if (n < 0) return -1;
  struct nlmsghdr *h = &ans.align;
  if (!NLMSG_OK(h, (size_t)n) || h->nlmsg_type == NLMSG_ERROR) {
    errno = h->nlmsg_type == NLMSG_ERROR
                ? -((struct nlmsgerr *)NLMSG_DATA(h))->error
                : EPROTO;
    return -1;
  }
  struct unix_diag_msg *m = NLMSG_DATA(h);
  size_t left = h->nlmsg_len - NLMSG_LENGTH(sizeof *m);
  for (struct nlattr *a = (struct nlattr *)(m + 1);
       left >= sizeof *a && a->nla_len >= sizeof *a && a->nla_len <= left;
       left -= NLA_ALIGN(a->nla_len),
                     a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len))) {
    if (a->nla_type != UNIX_DIAG_VFS) continue;
    struct unix_diag_vfs *v = (struct unix_diag_vfs *)(a + 1);
    /* The kernel's dev_t: major in the top 12 bits, minor below. */
    *dev = makedev(v->udiag_vfs_dev >> 20, v->udiag_vfs_dev & 0xfffff);
    *ino = v->udiag_vfs_ino;
    return 0;
  }
  errno = ENOENT; /* not bound to a path */
  return -1;
}

/* Mode and owner on the node open as `node` (O_PATH): through its
 * /proc/self/fd link, which reaches that very inode. */
static int set_access(int node, const struct stat *st, unsigned mode, uid_t uid,
                      gid_t gid) {
  if ((uid != (uid_t)-1 && uid != st->st_uid) ||
      (gid != (gid_t)-1 && gid != st->st_gid))
    if (fchownat(node, "", uid, gid, AT_EMPTY_PATH) < 0) return -1;
  if ((st->st_mode & 07777) == mode) return 0;
  char p[64];
  snprintf(p, sizeof p, "/proc/self/fd/%d", node);
  return chmod(p, mode);
}

int sockfile_apply(int fd, const struct listener_conf *c, char *err,
                   size_t errlen) {
  uid_t uid;
  gid_t gid;
  if (resolve_owner(c, &uid, &gid, err, errlen) < 0) return -1;
  int node = open(c->socket, O_PATH | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (node < 0 || fstat(node, &st) < 0) {
    snprintf(err, errlen, "%s: %s", c->socket, strerror(errno));
    if (node >= 0) close(node);
    return -1;
  }
  int want = (st.st_mode & 07777) != c->socket_mode ||
             (uid != (uid_t)-1 && uid != st.st_uid) ||
             (gid != (gid_t)-1 && gid != st.st_gid);
  dev_t dev = 0;
  uint32_t ino = 0;
  int r = 0;
  if (!S_ISSOCK(st.st_mode)) {
    snprintf(err, errlen,
             "%s is no longer a socket (replaced by someone who can write "
             "its directory?); its mode and owner are left alone",
             c->socket);
    r = -1;
  } else if (want && bound_node(fd, &dev, &ino) < 0) {
    snprintf(err, errlen,
             "%s: cannot tell which file node the socket is bound to "
             "(sock_diag: %s); mode and owner not applied",
             c->socket, strerror(errno));
    r = -1;
  } else if (want && (st.st_dev != dev || (uint32_t)st.st_ino != ino)) {
    snprintf(err, errlen,
             "%s is not the socket this process bound (replaced by someone "
             "who can write its directory?); its mode and owner are left "
             "alone",
             c->socket);
    r = -1;
  } else if (want && set_access(node, &st, c->socket_mode, uid, gid) < 0) {
    snprintf(err, errlen, "%s: %s", c->socket, strerror(errno));
    r = -1;
  }
  close(node);
  return r;
}

int sockfile_open(const struct listener_conf *c, char *err, size_t errlen) {
  uid_t uid;
  gid_t gid;
  if (resolve_owner(c, &uid, &gid, err, errlen) < 0) return -1;
  if (sockfile_clear_stale(c->socket, err, errlen) < 0) return -1;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof a.sun_path, "%s", c->socket);
  /* Created with its final mode: never briefly open to others. */
  mode_t old = umask(0777 & ~c->socket_mode);
  int r = fd < 0 ? -1 : bind(fd, (struct sockaddr *)&a, sizeof a);
  umask(old);
  if (r < 0) {
    snprintf(err, errlen, "%s: %s", c->socket, strerror(errno));
    if (fd >= 0) close(fd);
    return -1; /* not ours: never unlinked */
  }
  if (sockfile_apply(fd, c, err, errlen) < 0) {
    unlink(c->socket); /* a symlink put there is removed, not followed */
    close(fd);
    return -1;
  }
  if (listen(fd, 128) < 0) {
    snprintf(err, errlen, "%s: %s", c->socket, strerror(errno));
    unlink(c->socket);
    close(fd);
    return -1;
  }
  return fd;
}
