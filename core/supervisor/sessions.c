/* Connections on the listening sockets: intake and peer checks, the
 * handshake, and the sessions the supervisor keeps for every restore. */
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

#define MAX_FDS_IN_HANDSHAKE 16

static const char *session_fdname(uint64_t id, int i, char *buf, size_t len) {
  char n[32];
  snprintf(n, sizeof n, "%llu", (unsigned long long)id);
  return fdname(session_fd_kind[i], n, buf, len);
}

/* ---- sessions ---- */

void end_session(struct sv *v, uint64_t id, int reason) {
  for (struct sv_session **pp = &v->sessions; *pp; pp = &(*pp)->next) {
    struct sv_session *s = *pp;
    if (s->id != id) continue;
    *pp = s->next;
    restore_ended(v, s, reason);
    session_counters_add(&s->l->stats->ended, &s->shm->counters);
    __atomic_fetch_sub(&s->l->stats->sessions_live, 1, __ATOMIC_RELAXED);
    s->l->live--;
    s->gen->sessions--;
    if (reason != END_SHUTDOWN) v->ended++;
    if (reason == END_REFUSED && s->shm->source_identity[0]) {
      /* A worker took it over but cannot serve it: with its uffd closed
       * the VM would fault in zeros, so it is killed. */
      sv_log(LOG_ERROR, s,
             " could not be taken over by a new worker; killing the VM");
      kill_session_vm(s);
    } else if (reason == END_REFUSED) {
      sv_log_limited(&s->l->lim_rejected, LOG_WARN, s,
                     " was refused by its source");
    }
    munmap(s->shm, s->shm_len);
    for (int i = 0; i < 4; i++) {
      char n[96];
      if (s->fds[i] >= 0)
        notify_fdstore_remove(session_fdname(s->id, i, n, sizeof n));
      close_if(s->fds[i]);
    }
    struct gen *g = s->gen;
    free(s);
    if (!v->stopping) maybe_retire(v, g);
    return;
  }
}

static int fill_shm(struct sv *v, struct pending *p, const struct handshake *h,
                    struct session_shm **out, size_t *len) {
  uint64_t npages = 0;
  for (uint32_t i = 0; i < h->nregions; i++)
    npages += h->regions[i].size / h->page_size;
  int fd = session_shm_create(npages, out, len);
  if (fd < 0) return -1;
  struct session_shm *m = *out;
  m->id = ++v->next_id;
  snprintf(m->listener, sizeof m->listener, "%s", p->l->name);
  m->pid = p->cred.pid;
  m->uid = p->cred.uid;
  m->page_size = h->page_size;
  m->nregions = h->nregions;
  m->keeps_socket = (uint32_t)h->keeps_socket;
  m->started_unix_ns = clock_unix_ns();
  uint64_t first = 0;
  for (uint32_t i = 0; i < h->nregions; i++) {
    m->regions[i] = (struct shm_region){.base = h->regions[i].base,
                                        .size = h->regions[i].size,
                                        .offset = h->regions[i].offset,
                                        .first_page = first};
    first += h->regions[i].size / h->page_size;
  }
  return fd;
}

void free_pending(struct sv *v, struct pending *p, int close_conn) {
  for (struct pending **pp = &v->pending; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  p->l->pending--;
  if (close_conn)
    close_if(p->conn);
  else
    ep_del(v, p->conn);
  free(p->buf);
  free(p);
}

static void reject(struct sv *v, struct pending *p, const char *why) {
  log_limited(&p->l->lim_rejected, LOG_WARN,
              "listener %s: closing connection from pid %d uid %d: %s",
              p->l->name, p->cred.pid, p->cred.uid, why);
  __atomic_fetch_add(&p->l->stats->handshake_errors, 1, __ATOMIC_RELAXED);
  restore_rejected(v, p->l, why);
  close_if(p->uffd);
  close_if(p->pidfd);
  free_pending(v, p, 1);
}

/* Adds a session whose fds and shared state are ready. */
struct sv_session *add_session(struct sv *v, struct sv_listener *l,
                               const int fds[4], struct session_shm *shm,
                               size_t len) {
  struct sv_session *s = calloc(1, sizeof *s);
  if (!s) return NULL; /* the caller still owns fds and shm */
  s->id = shm->id;
  s->l = l;
  s->gen = gen_by_id(v, shm->gen);
  if (!s->gen) s->gen = l->gen;
  shm->gen = (uint32_t)s->gen->id;
  memcpy(s->fds, fds, sizeof s->fds);
  s->shm = shm;
  s->shm_len = len;
  s->next = v->sessions;
  v->sessions = s;
  l->live++;
  s->gen->sessions++;
  __atomic_fetch_add(&l->stats->sessions_live, 1, __ATOMIC_RELAXED);
  for (int i = 0; i < 4; i++) {
    char n[96];
    if (fds[i] >= 0)
      store_fd(&fds[i], 1, session_fdname(s->id, i, n, sizeof n));
  }
  if (s->gen->ready) send_session(s);
  return s;
}

static void start_session(struct sv *v, struct pending *p,
                          const struct handshake *h) {
  struct session_shm *shm;
  size_t len;
  int shmfd = fill_shm(v, p, h, &shm, &len);
  if (shmfd < 0) {
    reject(v, p, "cannot allocate session state");
    return;
  }
  __atomic_fetch_add(&p->l->stats->sessions_total, 1, __ATOMIC_RELAXED);
  log_session(
      LOG_INFO, shm->id, "pid %d uid %d on %s, %u regions, page size %u%s",
      p->cred.pid, p->cred.uid, p->l->name, h->nregions, h->page_size,
      h->consumed < p->len ? " (extra bytes after the handshake kept)" : "");
  if (!peer_can_signal(p->cred.pid, p->pidfd) &&
      p->l->conf->on_source_error == ON_ERROR_KILL)
    log_session(LOG_WARN, shm->id,
                "the VMM's process cannot be identified (pid %d, no pidfd): "
                "on_source_error = kill cannot signal it and poisons the page "
                "instead (as sigbus); the session ends when it hangs up",
                p->cred.pid);
  int fds[4] = {p->conn, p->uffd, p->pidfd, shmfd};
  struct sv_session *s = add_session(v, p->l, fds, shm, len);
  if (!s) {
    munmap(shm, len);
    close(shmfd);
    reject(v, p, "out of memory");
    return;
  }
  free_pending(v, p, 0);
  restore_ready(v, s);
}

static int is_uffd(int fd) {
  char path[64], target[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n < 0) return 0;
  target[n] = 0;
  return !strcmp(target, "anon_inode:[userfaultfd]");
}

/* Why the descriptor a peer sent cannot serve a session, or NULL. */
static const char *uffd_refusal(int fd) {
  if (fd < 0) return "handshake came without a file descriptor";
  if (!is_uffd(fd)) return "the descriptor sent is not a userfaultfd";
  /* A blocking uffd would stall the fault loop in read() */
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || !(fl & O_NONBLOCK))
    return "the userfaultfd is blocking (created without O_NONBLOCK, which "
           "Firecracker always sets); it cannot be served";
  return NULL;
}

/* Keeps the first descriptor received, closes every other. */
static void take_fds(struct pending *p, struct msghdr *mh) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < n; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (p->uffd < 0)
        p->uffd = fd;
      else
        close(fd);
    }
  }
}

/* Judges what has arrived so far.  Returns 1 when the connection is
 * settled (accepted or rejected), 0 to wait for more. */
static int judge(struct sv *v, struct pending *p, ssize_t r, size_t max) {
  struct handshake h;
  char err[512];
  int st =
      handshake_feed(&p->scan, p->buf, p->len,
                     (uint32_t)p->l->conf->max_regions, &h, err, sizeof err);
  if (st == HS_INVALID) {
    reject(v, p, err);
  } else if (st == HS_COMPLETE) {
    const char *why = uffd_refusal(p->uffd);
    if (!why) why = peer_refusal(p->cred.pid, p->pidfd, h.keeps_socket);
    if (why)
      reject(v, p, why);
    else
      start_session(v, p, &h);
  } else if (r == 0) {
    snprintf(err, sizeof err,
             "connection closed after %zu bytes, before the handshake was "
             "complete",
             p->len);
    reject(v, p, err);
  } else if (p->len == max) {
    snprintf(err, sizeof err, "handshake longer than max_handshake_bytes (%zu)",
             max);
    reject(v, p, err);
  } else {
    return 0;
  }
  return 1;
}

void on_pending(struct sv *v, struct pending *p) {
  size_t max = p->l->conf->max_handshake_bytes;
  for (;;) {
    union {
      char b[CMSG_SPACE(sizeof(int) * MAX_FDS_IN_HANDSHAKE)];
      struct cmsghdr align;
    } cm;
    struct iovec iov = {.iov_base = p->buf + p->len, .iov_len = max - p->len};
    struct msghdr mh = {.msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = cm.b,
                        .msg_controllen = sizeof cm.b};
    ssize_t r = recvmsg(p->conn, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (r > 0 || mh.msg_controllen) take_fds(p, &mh);
    if (r < 0) {
      char why[128];
      snprintf(why, sizeof why, "receive failed: %s", strerror(errno));
      reject(v, p, why);
      return;
    }
    p->len += (size_t)r;
    if (judge(v, p, r, max)) return;
  }
}

/* Stops polling l while descriptors are exhausted (see intake.h). */
static void pause_accepting(struct sv *v, struct sv_listener *l) {
  struct epoll_event e = {.events = 0, .data.ptr = l};
  epoll_ctl(v->ep, EPOLL_CTL_MOD, l->fd, &e);
}

void resume_due(struct sv *v) {
  for (struct sv_listener *l = v->ls; l; l = l->next)
    if (intake_resume_due(&l->intake) && l->fd >= 0 && !v->upgrade) {
      struct epoll_event e = {.events = EPOLLIN, .data.ptr = l};
      epoll_ctl(v->ep, EPOLL_CTL_MOD, l->fd, &e);
    }
}

void on_accept(struct sv *v, struct sv_listener *l) {
  /* Closed by an earlier event of the same batch (a drain or a reload). */
  if (l->fd < 0) return;
  for (;;) {
    int conn = intake_accept(&l->intake, l->fd);
    if (conn < 0) {
      if (errno != EAGAIN) pause_accepting(v, l);
      return;
    }
    struct ucred cr = {0};
    socklen_t cl = sizeof cr;
    getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
    const char *why =
        !peer_allowed(l->conf, &cr) ? "not in allow_uids/allow_gids"
        : l->live + l->pending >= l->conf->max_sessions ? "max_sessions reached"
                                                        : NULL;
    if (why) {
      log_limited(&l->lim_refused, LOG_WARN,
                  "listener %s: refused pid %d uid %d gid %d: %s", l->name,
                  cr.pid, cr.uid, cr.gid, why);
      __atomic_fetch_add(&l->stats->refused_peers, 1, __ATOMIC_RELAXED);
      restore_connected(v, l, &cr, why);
      close(conn);
      continue;
    }
    struct pending *p = calloc(1, sizeof *p);
    char *buf = p ? malloc(l->conf->max_handshake_bytes) : NULL;
    if (!buf) {
      log_limited(&l->lim_refused, LOG_WARN,
                  "listener %s: closing connection from pid %d: out of memory",
                  l->name, cr.pid);
      restore_connected(v, l, &cr, "out of memory");
      free(p);
      close(conn);
      continue;
    }
    p->buf = buf;
    p->kind = K_PENDING;
    p->l = l;
    p->conn = conn;
    p->uffd = -1;
    p->cred = cr;
    p->pidfd = peer_pidfd(conn, cr.pid);
    p->deadline = clock_mono_ns() + l->conf->handshake_timeout_ns;
    if (p->pidfd < 0 && errno == ESRCH) {
      /* Without a pidfd a 1.1-1.11 session could never tell it ended. */
      log_limited(&l->lim_refused, LOG_WARN,
                  "listener %s: pid %d exited before its connection was "
                  "accepted; closing it",
                  l->name, cr.pid);
      close(conn);
      free(p->buf);
      free(p);
      continue;
    }
    p->next = v->pending;
    v->pending = p;
    l->pending++;
    ep_add(v, conn, EPOLLIN | EPOLLRDHUP, p);
    restore_connected(v, l, &cr, NULL); /* one_shot closes l */
    on_pending(v, p);
    if (l->fd < 0) return;
  }
}

void expire_pending(struct sv *v) {
  uint64_t t = clock_mono_ns();
  for (struct pending *p = v->pending, *n; p; p = n) {
    n = p->next;
    if (t >= p->deadline)
      reject(v, p, "no complete handshake before handshake_timeout");
  }
}
