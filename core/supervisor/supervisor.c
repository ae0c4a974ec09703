#include "supervisor.h"

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

void ep_add(struct sv *v, int fd, uint32_t ev, void *ptr) {
  struct epoll_event e = {.events = ev, .data.ptr = ptr};
  if (epoll_ctl(v->ep, EPOLL_CTL_ADD, fd, &e) < 0)
    log_error("epoll_ctl(%d): %s", fd, strerror(errno));
}

void close_if(int fd) {
  if (fd >= 0) close(fd);
}

/* ---- drain ---- */

static int drain(struct sv *v, const char *name, char *err, size_t errlen) {
  struct sv_listener *l = find_listener(v, name);
  if (!l || l->fd < 0) {
    snprintf(err, errlen, "no accepting listener named '%s'", name);
    return -1;
  }
  if (l->restore) return restore_drain(v, l);
  close_listener(v, l);
  l->drained = 1;
  log_info("listener %s drained: no new sessions; %d live ones keep running",
           name, l->live);
  return 0;
}

/* ---- the control socket's view ---- */

static void ctl_each_listener(void *opaque, stats_listener_fn fn, void *arg) {
  struct sv *v = opaque;
  for (struct sv_listener *l = v->ls; l; l = l->next) {
    const struct listener_conf *c =
        v->current ? conf_find_listener(v->current->conf, l->name) : NULL;
    char source[256] = "";
    if (l->restore) c = l->conf;
    if (c) conf_stack_name(c, source, sizeof source);
    struct stats_listener cl = {.name = l->name,
                                .socket = l->bound_path[0] ? l->bound_path
                                          : c              ? c->socket
                                                           : "",
                                .source = source,
                                .accepting = l->fd >= 0 || l->staged >= 0,
                                .template = restore_template(l),
                                .stats = l->stats};
    fn(arg, &cl);
  }
}

static void ctl_each_session(void *opaque, stats_session_fn fn, void *arg) {
  struct sv *v = opaque;
  for (struct sv_session *s = v->sessions; s; s = s->next)
    fn(arg, s->shm);
}

static int ctl_reload(void *opaque, char *err, size_t len) {
  return reload(opaque, err, len);
}

static int ctl_drain(void *opaque, const char *listener, char *err,
                     size_t len) {
  return drain(opaque, listener, err, len);
}

static int setup_control(struct sv *v) {
  v->view = (struct control_view){.stats = {.each_listener = ctl_each_listener,
                                            .each_session = ctl_each_session,
                                            .metrics_extra = restore_metrics,
                                            .opaque = v},
                                  .reload = ctl_reload,
                                  .drain = ctl_drain,
                                  .serve = restore_serve,
                                  .stop = restore_stop,
                                  .extend = restore_extend,
                                  .opaque = v};
  char err[1024];
  if (control_open(&v->ctl, v->current->conf, &v->view, err, sizeof err) < 0) {
    log_error("%s", err);
    return -1;
  }
  v->control_kind = K_CONTROL;
  if (v->ctl) ep_add(v, control_fd(v->ctl), EPOLLIN, &v->control_kind);
  return 0;
}

/* ---- main loop ---- */

static int next_timeout_ms(struct sv *v) {
  uint64_t t = clock_mono_ns(), next = UINT64_MAX;
  for (struct pending *p = v->pending; p; p = p->next)
    if (p->deadline < next) next = p->deadline;
  uint64_t w = worker_next_due(v);
  if (w < next) next = w;
  if (v->watchdog_at && v->watchdog_at < next) next = v->watchdog_at;
  int ms = next == UINT64_MAX ? -1
           : next <= t        ? 0
                              : (int)((next - t) / 1000000 + 1);
  for (struct sv_listener *l = v->ls; l; l = l->next)
    ms = intake_timeout(&l->intake, ms);
  return restore_timeout(v, ms);
}

static void on_signal(struct sv *v) {
  struct signalfd_siginfo si;
  char err[1024];
  while (read(v->sigfd, &si, sizeof si) == sizeof si) {
    if (si.ssi_signo == SIGCHLD) {
      on_child(v);
    } else if (si.ssi_signo == SIGHUP) {
      if (reload(v, err, sizeof err) < 0) log_error("reload: %s", err);
    } else if (si.ssi_signo == SIGUSR2) {
      v->upgrade = 1;
    } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
      log_info("stopping (signal %u)", si.ssi_signo);
      v->stopping = 1;
    }
  }
}

/* With exit_when_idle: whether to stop now, a session having ended with
 * none live or in its handshake (an upgrade waiting goes first). */
static int idle_done(struct sv *v) {
  if (!v->opts->exit_when_idle || !v->ended || v->sessions || v->pending ||
      v->upgrade)
    return 0;
  log_info("exiting: a session ended and no other is live or in its "
           "handshake (--exit-when-idle)");
  return 1;
}

static int run_loop(struct sv *v) {
  struct epoll_event ev[32];
  while (!v->stopping && !v->failed) {
    int n =
        epoll_wait(v->ep, ev, 32, control_timeout(v->ctl, next_timeout_ms(v)));
    if (n < 0 && errno != EINTR) return -1;
    for (int i = 0; i < n; i++) {
      enum kind *k = ev[i].data.ptr;
      if (*k == K_SIGNAL)
        on_signal(v);
      else if (*k == K_LISTENER)
        on_accept(v, (struct sv_listener *)k);
      else if (*k == K_PENDING)
        on_pending(v, (struct pending *)k);
      else if (*k == K_WORKER)
        on_worker_msg(v);
    }
    free_dead_gens(v);
    control_run(v->ctl);
    expire_pending(v);
    restore_tick(v);
    resume_due(v);
    restart_due(v);
    if (v->watchdog_ns && clock_mono_ns() >= v->watchdog_at) {
      notify_watchdog();
      v->watchdog_at = clock_mono_ns() + v->watchdog_ns;
    }
    if (v->upgrade) upgrade_when_idle(v);
    if (idle_done(v)) break;
  }
  return v->failed ? -1 : 0;
}

static void shutdown_all(struct sv *v) {
  notify_stopping();
  int live = 0;
  for (struct sv_session *s = v->sessions; s; s = s->next)
    live++;
  if (live)
    log_warn("stopping with %d live sessions: their VMs can no longer fault "
             "in memory",
             live);
  for (struct sv_listener *l = v->ls; l; l = l->next)
    close_listener(v, l);
  unstage(v, NULL);
  stop_worker(v);
  while (v->sessions)
    end_session(v, v->sessions->id, END_SHUTDOWN);
  restore_shutdown(v);
  while (v->pending) {
    close_if(v->pending->uffd);
    close_if(v->pending->pidfd);
    free_pending(v, v->pending, 1);
  }
  while (v->gens)
    free_gen(v, v->gens);
  free_dead_gens(v);
  while (v->ls) {
    struct sv_listener *l = v->ls;
    v->ls = l->next;
    munmap(l->stats, sizeof *l->stats);
    close_if(l->stats_fd);
    free(l);
  }
}

static int setup(struct sv *v, struct daemon_conf *conf) {
  v->exe_fd = selfexe_open();
  if (v->exe_fd < 0) {
    log_error("cannot open /proc/self/exe: %s", strerror(errno));
    return -1;
  }
  v->ep = epoll_create1(EPOLL_CLOEXEC);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR2);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  v->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  v->sig_kind = K_SIGNAL;
  ep_add(v, v->sigfd, EPOLLIN, &v->sig_kind);
  /* ids stay unique across runs */
  v->next_id = clock_unix_ns() / 1000000000ull << 20;
  struct handed *h = NULL;
  int nh = handover_collect(&h);
  if (nh > 0) adopt_stats(v, h, nh);
  struct gen *handed = nh > 0 ? adopt_gens(v, h, nh) : NULL;
  for (struct gen *g = nh > 0 ? v->gens : NULL; g; g = g->next)
    pinlist_adopt(&g->pins, h, nh);
  if (handed) { /* serve exactly what the previous process served */
    if (conf) {
      conf_free(conf);
      free(conf);
    }
    conf = handed->conf;
  } else if (!conf) {
    log_error("no usable configuration: the file does not load and none "
              "was handed over");
    free(h);
    return -1;
  }
  if (nh > 0) adopt_listeners(v, conf, h, nh);
  v->current = handed ? handed : new_gen(v, conf);
  int r = v->current ? point_listeners(v, v->current) : -1;
  if (nh > 0 && v->current) {
    restore_adopt(v, h, nh); /* before the sessions on their listeners */
    adopt_sessions(v, h, nh);
  }
  free(h);
  if (r == 0) r = setup_control(v);
  uint64_t wd = notify_watchdog_interval_us();
  v->watchdog_ns = wd * 500; /* half the interval, in ns */
  v->watchdog_at = wd ? clock_mono_ns() + v->watchdog_ns : 0;
  return r;
}

int supervisor_run(struct daemon_conf *conf, const struct supervisor_opts *o) {
  struct sv v = {.opts = o, .exe_fd = -1, .w = {.ipc = -1}};
  int rc = 1;
  if (setup(&v, conf) == 0) {
    spawn_worker(&v); /* every generation handed over, or the first */
    rc = v.w.pid && run_loop(&v) == 0 ? 0 : 1;
  } else if (!v.current && conf) {
    conf_free(conf);
    free(conf);
  }
  v.stopping = 1;
  control_close(v.ctl);
  v.ctl = NULL; /* events of the shutdown go nowhere */
  shutdown_all(&v);
  close_if(v.sigfd);
  close_if(v.ep);
  close_if(v.exe_fd);
  return rc;
}
