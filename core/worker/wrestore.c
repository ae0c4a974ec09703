#include "wrestore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"
#include "stack.h"

struct wrestore {
  struct worker_listener wl;
  struct daemon_conf conf; /* the expanded listener, its only one */
  int removed;             /* freed once no session uses it */
  struct wrestore *next;
};

static struct wrestore *restores;

static void reply(int ipc, const char *name, const char *why) {
  struct ipc_msg m = {.type = why ? IPC_RESTORE_ERR : IPC_RESTORE_OK};
  snprintf(m.name, sizeof m.name, "%s", name);
  int fd = -1;
  if (why) {
    fd = memfd_create("uffdkit-why", MFD_CLOEXEC);
    if (fd >= 0 && write(fd, why, strlen(why)) < 0) log_warn("memfd: write");
  }
  if (ipc_send(ipc, &m, &fd, 1) < 0)
    log_warn("restore %s: cannot answer", name);
  if (fd >= 0) close(fd);
}

static void destroy(struct wrestore *r) {
  pool_free(r->wl.pool);
  stack_destroy(r->wl.stack);
  if (r->wl.stats) munmap(r->wl.stats, sizeof *r->wl.stats);
  conf_free(&r->conf);
  free(r);
}

/* Builds the listener of text fd; NULL with why in err. */
static struct wrestore *build(const char *name, int stats_fd, int text_fd,
                              const char *plugin_dir, char *err,
                              size_t errlen) {
  struct wrestore *r = calloc(1, sizeof *r);
  if (!r) {
    snprintf(err, errlen, "out of memory");
    return NULL;
  }
  char what[96];
  snprintf(what, sizeof what, "restore %s", name);
  struct conf_err e;
  int bad = conf_load_fd(&r->conf, text_fd, what, &e);
  if (bad || r->conf.n_listeners != 1 ||
      strcmp(r->conf.listeners[0].name, name)) {
    if (bad)
      conf_err_text(&e, err, errlen);
    else
      snprintf(err, errlen, "%s: not one listener", what);
    conf_free(&r->conf);
    free(r);
    return NULL;
  }
  r->wl.conf = &r->conf.listeners[0];
  r->wl.stats = stats_fd >= 0 ? listener_stats_map(stats_fd) : NULL;
  if (!r->wl.stats) {
    snprintf(err, errlen, "%s: no counters", what);
  } else if (worker_listener_build(&r->wl, &r->conf, plugin_dir, err, errlen) ==
             0) {
    return r;
  }
  destroy(r);
  return NULL;
}

static void add(int ipc, const char *plugin_dir, const char *name,
                int fds[IPC_MAX_FDS]) {
  struct wrestore *r = NULL;
  char err[2048] = "";
  if (wrestore_find(name)) {
    reply(ipc, name, NULL);
    return;
  }
  r = build(name, fds[0], fds[1], plugin_dir, err, sizeof err);
  if (!r) {
    log_error("%s", err);
    reply(ipc, name, err);
    return;
  }
  r->next = restores;
  restores = r;
  reply(ipc, name, NULL);
}

void wrestore_msg(int ipc, const char *plugin_dir, const struct ipc_msg *m,
                  int fds[IPC_MAX_FDS], wrestore_used_fn used) {
  char name[sizeof m->name + 1];
  snprintf(name, sizeof name, "%.*s", (int)sizeof m->name, m->name);
  if (m->type == IPC_RESTORE) add(ipc, plugin_dir, name, fds);
  for (int i = 0; i < IPC_MAX_FDS; i++)
    if (fds[i] >= 0) close(fds[i]);
  if (m->type != IPC_UNRESTORE) return;
  for (struct wrestore *r = restores; r; r = r->next)
    if (!r->removed && !strcmp(r->wl.conf->name, name)) r->removed = 1;
  wrestore_sweep(used);
}

struct worker_listener *wrestore_find(const char *name) {
  for (struct wrestore *r = restores; r; r = r->next)
    if (!r->removed && !strncmp(r->wl.conf->name, name, 63)) return &r->wl;
  return NULL;
}

void wrestore_sweep(wrestore_used_fn used) {
  for (struct wrestore **pp = &restores; *pp;) {
    struct wrestore *r = *pp;
    if (r->removed && !used(&r->wl)) {
      *pp = r->next;
      destroy(r);
    } else {
      pp = &r->next;
    }
  }
}

void wrestore_free_all(void) {
  while (restores) {
    struct wrestore *r = restores;
    restores = r->next;
    destroy(r);
  }
}
