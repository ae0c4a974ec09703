/* The listening sockets: binding, access, epoll registration, and the
 * record of each listener that outlives generations. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "handover.h"
#include "handshake.h"
#include "intake.h"
#include "ipc.h"
#include "log.h"
#include "notify.h"
#include "peer.h"
#include "selfexe.h"
#include "shm.h"
#include "sockfile.h"
#include "sv.h"

/* ---- listening sockets ---- */

/* Mode and owner of the socket file l->fd is bound to, as c says: on that
 * node only, never through a path someone may have swapped. */
int apply_access(const struct sv_listener *l, const struct listener_conf *c,
                 char *err, size_t errlen) {
  char why[PATH_MAX + 128];
  if (sockfile_apply(l->fd, c, why, sizeof why) == 0) return 0;
  snprintf(err, errlen, "listener %s: %s", c->name, why);
  return -1;
}

void ep_del(struct sv *v, int fd) {
  epoll_ctl(v->ep, EPOLL_CTL_DEL, fd, NULL);
}

/* The name a descriptor is stored and handed over under. */
const char *fdname(char kind, const char *what, char *buf, size_t len) {
  snprintf(buf, len, "%c-%s", kind, what);
  return buf;
}

/* Puts a descriptor in systemd's fd store (a no-op outside systemd); a
 * refusal means it would not survive a service restart: say so. */
void store_fd(const int *fd, int n, const char *name) {
  if (notify_fdstore(fd, n, name) < 0)
    log_warn("fd store refused %s (%s): it will not survive a service "
             "restart (FileDescriptorStoreMax?)",
             name, strerror(errno));
}

/* Kinds of a session's descriptors, in the order of sv_session.fds:
 * connection, uffd, pidfd, shared state. */
const char session_fd_kind[4] = {'C', 'U', 'P', 'M'};

void close_listener(struct sv *v, struct sv_listener *l) {
  char n[96];
  if (l->fd < 0) return;
  notify_fdstore_remove(fdname('L', l->name, n, sizeof n));
  ep_del(v, l->fd);
  close(l->fd);
  l->fd = -1;
  if (l->bound_path[0]) unlink(l->bound_path);
  l->bound_path[0] = 0;
}

/* A socket bound at c->socket with its mode and owner, listening; the
 * descriptor, or -1 with the reason in err (a path not ours is never
 * unlinked). */
int bind_listener(const struct listener_conf *c, char *err, size_t errlen) {
  char why[PATH_MAX + 128];
  int fd = sockfile_open(c, why, sizeof why);
  if (fd < 0) {
    snprintf(err, errlen, "listener %s: %s", c->name, why);
    return -1;
  }
  log_info("listener %s on %s (mode %04o)", c->name, c->socket, c->socket_mode);
  return fd;
}

/* l accepts on fd, bound at path, from now on. */
void install_listener(struct sv *v, struct sv_listener *l, int fd,
                      const char *path) {
  l->fd = fd;
  snprintf(l->bound_path, sizeof l->bound_path, "%s", path);
  ep_add(v, fd, EPOLLIN, l);
  char n[96];
  store_fd(&fd, 1, fdname('L', l->name, n, sizeof n));
}

int open_listener(struct sv *v, struct sv_listener *l) {
  char err[PATH_MAX + 256] = "";
  int fd = bind_listener(l->conf, err, sizeof err);
  if (fd < 0) {
    log_error("%s", err);
    return -1;
  }
  install_listener(v, l, fd, l->conf->socket);
  return 0;
}

struct sv_listener *find_listener(struct sv *v, const char *name) {
  for (struct sv_listener *l = v->ls; l; l = l->next)
    if (!strcmp(l->name, name)) return l;
  return NULL;
}

/* The record of listener `name`, made if new, with its counters: those
 * handed over in stats_fd if >= 0, else new ones. */
struct sv_listener *listener_record(struct sv *v, const char *name,
                                    int stats_fd) {
  struct sv_listener *l = find_listener(v, name);
  if (l) return l;
  l = calloc(1, sizeof *l);
  l->kind = K_LISTENER;
  l->fd = -1;
  l->staged = -1;
  snprintf(l->name, sizeof l->name, "%s", name);
  snprintf(l->what, sizeof l->what, "listener %s", name);
  l->intake.what = l->what;
  l->stats_fd = stats_fd;
  if (stats_fd >= 0)
    l->stats = listener_stats_map(stats_fd);
  else
    l->stats_fd = listener_stats_create(&l->stats);
  if (l->stats_fd < 0 || !l->stats) {
    log_error("listener %s: cannot set up its counters: %s", name,
              strerror(errno));
    close_if(l->stats_fd);
    free(l);
    return NULL;
  }
  char n[96];
  store_fd(&l->stats_fd, 1, fdname('S', name, n, sizeof n));
  l->next = v->ls;
  v->ls = l;
  return l;
}

struct sv_listener *get_listener(struct sv *v, const char *name) {
  return listener_record(v, name, -1);
}
