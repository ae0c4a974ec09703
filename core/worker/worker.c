#include "worker.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "config.h"
#include "fault.h"
#include "figures.h"
#include "host.h"
#include "install.h"
#include "ipc.h"
#include "log.h"
#include "mem.h"
#include "pinned.h"
#include "plugin.h"
#include "pool.h"
#include "session.h"
#include "wgen.h"
#include "wrestore.h"

struct worker {
  int ipc;
  pthread_mutex_t lock;
  struct session *sessions;
  int reaper; /* eventfd: a session thread has finished */
  int supervisor_gone;
};

static struct worker W;

static void close_fds(const int fds[4]) {
  for (int i = 0; i < 4; i++)
    if (fds[i] >= 0) close(fds[i]);
}

static void send_end(uint64_t id, int reason) {
  struct ipc_msg m = {.type = IPC_END, .id = id, .code = reason};
  if (!W.supervisor_gone) ipc_send(W.ipc, &m, NULL, 0);
}

/* A session's first source error, for the supervisor's watchers. */
static void send_error(struct session *s, const char *why) {
  struct ipc_msg m = {.type = IPC_SOURCE_ERROR, .id = s->id};
  if (!W.supervisor_gone) ipc_send_why(W.ipc, &m, why);
}

static void log_ended(struct session *s) {
  char fig[512];
  figures_text(s->shm, fig, sizeof fig);
  log_info("session %llu (pid %d) on %s ended: %llu faults, %llu pages "
           "copied, %llu zero pages; %s",
           (unsigned long long)s->id, s->info.pid, s->wl->conf->name,
           (unsigned long long)s->shm->counters.faults,
           (unsigned long long)s->shm->counters.pages_copied,
           (unsigned long long)s->shm->counters.zero_pages, fig);
}

/* Runs the fault loop, then waits for the session's pool jobs, reports
 * the end and queues the thread to be joined. */
static void *session_thread(void *arg) {
  struct session *s = arg;
  fault_loop(s);
  session_unheld(s);
  stack_close_session(s->wl->stack, &s->info);
  if (s->end_reason == END_SHUTDOWN)
    log_info("session %llu (pid %d) on %s: worker stopping; the supervisor "
             "keeps the session for the next one",
             (unsigned long long)s->id, s->info.pid, s->wl->conf->name);
  else
    log_ended(s);
  if (s->end_reason != END_SHUTDOWN) send_end(s->id, s->end_reason);
  __atomic_store_n(&s->finished, 1, __ATOMIC_RELEASE);
  uint64_t one = 1;
  if (write(W.reaper, &one, sizeof one) < 0)
    log_warn("reaper eventfd: %s", strerror(errno));
  return s;
}

static void start_session_on(const struct ipc_msg *m, int fds[4],
                             struct worker_listener *wl) {
  struct session *s = wl ? session_new(wl, m->id, fds) : NULL;
  if (!wl) close_fds(fds);
  if (!s) {
    send_end(m->id, END_REFUSED);
    return;
  }
  install_pin_source(s);
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setstacksize(&a, 256 << 10);
  pthread_mutex_lock(&W.lock);
  if (pthread_create(&s->thread, &a, session_thread, s) != 0) {
    pthread_mutex_unlock(&W.lock);
    session_log(LOG_ERROR, s, "cannot start its thread");
    session_free(s);
    send_end(m->id, END_REFUSED);
  } else {
    s->next = W.sessions;
    W.sessions = s;
    pthread_mutex_unlock(&W.lock);
    log_info("session %llu (pid %d) on %s: %u regions, %u-byte pages",
             (unsigned long long)s->id, s->info.pid, wl->conf->name,
             s->info.nregions, s->ps);
  }
  pthread_attr_destroy(&a);
}

static void start_session(const struct ipc_msg *m, int fds[4]) {
  char name[sizeof m->name + 1];
  snprintf(name, sizeof name, "%.*s", (int)sizeof m->name, m->name);
  struct worker_listener *wl = wgen_listener(m->code, name);
  if (!wl) wl = wrestore_find(name);
  if (!wl && wrestore_defer(m, fds)) return; /* its source is starting */
  start_session_on(m, fds, wl);
}

/* Joins the threads of sessions that ended.  Only finished ones: a session
 * whose loop has left may still wait for a pool job stuck in a slow read,
 * and joining it would stall every other session's start. */
static void reap(int all) {
  uint64_t v;
  if (read(W.reaper, &v, sizeof v) < 0 && errno != EAGAIN)
    log_warn("reaper: %s", strerror(errno));
  pthread_mutex_lock(&W.lock);
  struct session **pp = &W.sessions;
  while (*pp) {
    struct session *s = *pp;
    if (all || __atomic_load_n(&s->finished, __ATOMIC_ACQUIRE)) {
      *pp = s->next;
      pthread_mutex_unlock(&W.lock);
      pthread_join(s->thread, NULL);
      session_free(s);
      pthread_mutex_lock(&W.lock);
    } else {
      pp = &s->next;
    }
  }
  pthread_mutex_unlock(&W.lock);
}

static void stop_all(void) {
  pthread_mutex_lock(&W.lock);
  uint64_t one = 1;
  for (struct session *s = W.sessions; s; s = s->next)
    if (write(s->stopfd, &one, sizeof one) < 0)
      log_warn("stopping session %llu: %s", (unsigned long long)s->id,
               strerror(errno));
  pthread_mutex_unlock(&W.lock);
  reap(1);
}

/* Builds wl's stack from conf (the plugins found in plugin_dir) and its
 * pool.  0, or -1 with why in err. */
int worker_listener_build(struct worker_listener *wl,
                          const struct daemon_conf *conf,
                          const char *plugin_dir, struct conf_err *err) {
  wl->stack =
      stack_build(host_table(), conf, wl->conf, plugin_dir, wl->stats, err);
  if (!wl->stack) return -1;
  uint32_t f = stack_flags(wl->stack);
  if (!(f & UFK_PLUGIN_FAST)) {
    uint32_t c = stack_concurrency(wl->stack);
    int threads = c == 0 || c > 32 ? 32 : (int)c;
    wl->pool = pool_new(wl->conf->name, threads);
  } else {
    /* Memory-speed sources serve 4 KiB faults inline; two threads copy
     * 2 MiB pages beside the fault loop (see hand_off in fault.c). */
    wl->pool = pool_new(wl->conf->name, 2);
  }
  char name[256];
  conf_stack_name(wl->conf, name, sizeof name);
  log_info("listener %s: %s, %lld bytes%s", wl->conf->name, name,
           (long long)stack_size(wl->stack),
           f & UFK_PLUGIN_FAST ? ", served inline" : "");
  return 0;
}

static int listener_used(const struct worker_listener *wl);

static void handle_ipc(void) {
  struct ipc_msg m;
  int fds[IPC_MAX_FDS];
  for (;;) {
    int r = ipc_recv(W.ipc, &m, fds);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
      log_error("supervisor is gone; serving the live sessions until they "
                "end");
      W.supervisor_gone = 1;
      return;
    }
    if (r < 0) return;
    if (m.type == IPC_SESSION) {
      start_session(&m, fds);
    } else if (m.type == IPC_RESTORE || m.type == IPC_UNRESTORE ||
               (m.type == IPC_PIN && m.name[0])) {
      /* A restore's files are its own (its pinset), not its generation's. */
      wrestore_msg(W.ipc, wgen_plugin_dir((int)m.id), &m, fds, listener_used);
    } else if (m.type == IPC_PIN || m.type == IPC_LISTENER ||
               m.type == IPC_GEN || m.type == IPC_UNGEN) {
      wgen_msg(&m, fds);
      if (m.type == IPC_UNGEN) wgen_sweep(listener_used);
    } else {
      close_fds(fds);
    }
  }
}

/* Whether a session of the worker still serves wl. */
static int listener_used(const struct worker_listener *wl) {
  int used = 0;
  pthread_mutex_lock(&W.lock);
  for (struct session *s = W.sessions; s && !used; s = s->next)
    used = s->wl == wl;
  pthread_mutex_unlock(&W.lock);
  return used;
}

static int live_sessions(void) {
  int n = 0;
  pthread_mutex_lock(&W.lock);
  for (struct session *s = W.sessions; s; s = s->next)
    n++;
  pthread_mutex_unlock(&W.lock);
  return n;
}

static void loop(int sigfd) {
  for (;;) {
    struct pollfd pf[5] = {
        {.fd = W.supervisor_gone ? -1 : W.ipc, .events = POLLIN},
        {.fd = sigfd, .events = POLLIN},
        {.fd = W.reaper, .events = POLLIN},
        {.fd = wgen_event_fd(), .events = POLLIN},
        {.fd = wrestore_fd(), .events = POLLIN},
    };
    if (poll(pf, 5, -1) < 0 && errno != EINTR) return;
    if (pf[4].revents & POLLIN)
      wrestore_done(W.ipc, start_session_on, listener_used);
    if (pf[1].revents & POLLIN) return; /* SIGTERM/SIGINT */
    if (pf[2].revents & POLLIN) {
      reap(0);
      wrestore_sweep(listener_used);
      wgen_sweep(listener_used);
    }
    if (pf[3].revents & POLLIN) wgen_built();
    if (pf[0].revents) handle_ipc();
    if (W.supervisor_gone && live_sessions() == 0) return;
  }
}

int worker_main(int argc, char **argv) {
  static const struct option opts[] = {
      {"worker", no_argument, NULL, 'w'},
      {"ipc-fd", required_argument, NULL, 'i'},
      {"log-level", required_argument, NULL, 'l'},
      {"log-format", required_argument, NULL, 'f'},
      {"plugin-dir", required_argument, NULL, 'p'},
      {NULL, 0, NULL, 0},
  };
  const char *plugin_dir = NULL;
  int opt, level = -1, json = -1;
  W.ipc = -1;
  while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    if (opt == 'i')
      W.ipc = atoi(optarg);
    else if (opt == 'l')
      level = log_level_from_name(optarg);
    else if (opt == 'f')
      json = !strcmp(optarg, "json");
    else if (opt == 'p')
      plugin_dir = optarg;
  }
  log_set_process("uffdkit-worker");
  if (W.ipc < 0) return 2;
  /* Given on the command line, or each generation's once built. */
  if (level >= 0) log_set_level(level);
  if (json >= 0) log_set_json(json);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigprocmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  int sigfd = signalfd(-1, &set, SFD_CLOEXEC);
  pthread_mutex_init(&W.lock, NULL);
  W.reaper = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  install_on_error(send_error);
  wgen_init(W.ipc, plugin_dir, level >= 0, json >= 0);
  loop(sigfd);
  stop_all();
  if (wrestore_building()) { /* a source still starting may never return */
    log_info("stopping with %d sources still starting", wrestore_building());
    _exit(0);
  }
  wgen_free_all();
  wrestore_free_all();
  plugin_unload_all();
  return 0;
}
