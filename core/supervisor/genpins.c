/* The data files of each configuration generation, kept by the supervisor
 * for the generation's whole life (see pinned.h): received from its first
 * worker, given to every later one before it builds its sources, put in
 * systemd's fd store and handed over at an upgrade as F-<gen>-<n> (the
 * file) and N-<gen>-<n> (its path and flags). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "notify.h"
#include "sv.h"

static void names(const struct gen *g, int i, char f[96], char m[96]) {
  char what[32];
  snprintf(what, sizeof what, "%d-%d", g->id, i);
  fdname('F', what, f, 96);
  fdname('N', what, m, 96);
}

void genpin_add(struct gen *g, int fd, int meta) {
  struct gen_pin *p =
      fd >= 0 && meta >= 0
          ? realloc(g->pins, (size_t)(g->npins + 1) * sizeof *g->pins)
          : NULL;
  if (!p) {
    log_warn("configuration generation %d: a pinned file came without its "
             "descriptors; its next workers open it by path",
             g->id);
    close_if(fd);
    close_if(meta);
    return;
  }
  g->pins = p;
  p[g->npins] = (struct gen_pin){.fd = fd, .meta = meta};
  char f[96], m[96];
  names(g, g->npins, f, m);
  store_fd(&fd, 1, f);
  store_fd(&meta, 1, m);
  g->npins++;
}

void genpin_send(const struct gen *g) {
  for (int i = 0; i < g->npins; i++) {
    struct ipc_msg m = {.type = IPC_PIN, .id = (uint64_t)g->id};
    int fds[2] = {g->pins[i].fd, g->pins[i].meta};
    if (ipc_send(g->w->ipc, &m, fds, 2) < 0)
      log_warn("configuration generation %d: could not pass a pinned file "
               "to its worker: %s",
               g->id, strerror(errno));
  }
}

void genpin_free(struct gen *g) {
  for (int i = 0; i < g->npins; i++) {
    char f[96], m[96];
    names(g, i, f, m);
    notify_fdstore_remove(f);
    notify_fdstore_remove(m);
    close(g->pins[i].fd);
    close(g->pins[i].meta);
  }
  free(g->pins);
  g->pins = NULL;
  g->npins = 0;
}

static int take(struct handed *h, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (h[i].fd >= 0 && !strcmp(h[i].name, name)) {
      int fd = h[i].fd;
      h[i].fd = -1;
      return fd;
    }
  return -1;
}

/* After adopt_gens: each generation's pinned files, in their order. */
void genpin_adopt(struct sv *v, struct handed *h, int n) {
  for (struct gen *g = v->gens; g; g = g->next)
    for (int i = 0;; i++) {
      char f[96], m[96];
      names(g, i, f, m);
      int fd = take(h, n, f), meta = take(h, n, m);
      if (fd < 0 && meta < 0) break;
      genpin_add(g, fd, meta);
    }
}
