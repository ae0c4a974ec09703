/* The data files of each per-restore listener, kept by the supervisor for
 * the restore's life only: received from the worker that started its
 * source (IPC_PIN carrying the restore's id and serial), given to every
 * later worker before the restore is built again, put in systemd's fd
 * store and handed over at an upgrade as D-<id>-<n> (the file) and
 * K-<id>-<n> (its path and flags), and closed when the restore is
 * removed.  The generation's own files are in genpins.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ipc.h"
#include "log.h"
#include "notify.h"
#include "sv.h"

static void names(const struct restore *r, int i, char d[96], char k[96]) {
  char what[80];
  restore_pins_name(r, i, what);
  fdname('D', what, d, 96);
  fdname('K', what, k, 96);
}

static void add(struct restore *r, int fd, int meta) {
  struct gen_pin *p =
      fd >= 0 && meta >= 0
          ? realloc(r->pins, (size_t)(r->npins + 1) * sizeof *r->pins)
          : NULL;
  if (!p) {
    log_warn("restore %s: a pinned file came without its descriptors; a "
             "new worker opens it by path",
             r->id);
    close_if(fd);
    close_if(meta);
    return;
  }
  r->pins = p;
  p[r->npins] = (struct gen_pin){.fd = fd, .meta = meta};
  char d[96], k[96];
  names(r, r->npins, d, k);
  store_fd(&fd, 1, d);
  store_fd(&meta, 1, k);
  r->npins++;
}

void restore_pin(struct sv *v, const struct ipc_msg *m, int fds[IPC_MAX_FDS]) {
  char id[sizeof m->name + 1];
  snprintf(id, sizeof id, "%.*s", (int)sizeof m->name, m->name);
  struct restore *r = restore_by_id(v, id);
  /* Not the pins of an earlier restore of this id whose start timed out. */
  if (r && (uint32_t)m->id == r->serial) {
    add(r, fds[0], fds[1]);
  } else { /* removed meanwhile: nobody needs it */
    close_if(fds[0]);
    close_if(fds[1]);
  }
  fds[0] = fds[1] = -1;
}

void restore_pins_send(const struct restore *r) {
  struct ipc_msg m = {.type = IPC_PIN, .id = r->serial};
  snprintf(m.name, sizeof m.name, "%s", r->id);
  for (int i = 0; i < r->npins; i++) {
    int fds[2] = {r->pins[i].fd, r->pins[i].meta};
    if (ipc_send(r->gen->w->ipc, &m, fds, 2) < 0)
      log_warn("restore %s: could not pass a pinned file to the worker: %s",
               r->id, strerror(errno));
  }
}

void restore_pins_free(struct restore *r) {
  for (int i = 0; i < r->npins; i++) {
    char d[96], k[96];
    names(r, i, d, k);
    notify_fdstore_remove(d);
    notify_fdstore_remove(k);
    close(r->pins[i].fd);
    close(r->pins[i].meta);
  }
  free(r->pins);
  r->pins = NULL;
  r->npins = 0;
}

void restore_pins_name(const struct restore *r, int i, char what[80]) {
  snprintf(what, 80, "%s-%d", r->id, i);
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

void restore_pins_adopt(struct restore *r, struct handed *h, int n) {
  for (int i = 0;; i++) {
    char d[96], k[96];
    names(r, i, d, k);
    int fd = take(h, n, d), meta = take(h, n, k);
    if (fd < 0 && meta < 0) break;
    add(r, fd, meta);
  }
}
