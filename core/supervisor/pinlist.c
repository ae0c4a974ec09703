#include "pinlist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "sv.h"

void pinlist_init(struct pinlist *l, char file, char meta, const char *prefix,
                  const char *what) {
  *l = (struct pinlist){.file = file, .meta = meta};
  snprintf(l->prefix, sizeof l->prefix, "%s", prefix);
  snprintf(l->what, sizeof l->what, "%s", what);
}

void pinlist_names(const struct pinlist *l, int i, char file[96],
                   char meta[96]) {
  char what[96];
  snprintf(what, sizeof what, "%s-%d", l->prefix, i);
  fdname(l->file, what, file, 96);
  fdname(l->meta, what, meta, 96);
}

int pinlist_add(struct pinlist *l, int fd, int meta) {
  int whole = fd >= 0 && meta >= 0;
  struct pin *p =
      whole ? realloc(l->pins, (size_t)(l->n + 1) * sizeof *l->pins) : NULL;
  if (!p) {
    log_warn("%s: %s; a new worker opens that file by path", l->what,
             whole ? "out of memory keeping a pinned file"
                   : "a pinned file came without its descriptors");
    close_if(fd);
    close_if(meta);
    return -1;
  }
  l->pins = p;
  p[l->n] = (struct pin){.fd = fd, .meta = meta};
  char f[96], m[96];
  pinlist_names(l, l->n, f, m);
  store_fd(&fd, 1, f);
  store_fd(&meta, 1, m);
  l->n++;
  return 0;
}

void pinlist_send(const struct pinlist *l, int ipc, const struct ipc_msg *m) {
  for (int i = 0; i < l->n; i++) {
    int fds[2] = {l->pins[i].fd, l->pins[i].meta};
    if (ipc_send(ipc, m, fds, 2) < 0)
      log_warn("%s: could not pass a pinned file to the worker: %s", l->what,
               strerror(errno));
  }
}

void pinlist_adopt(struct pinlist *l, struct handed *h, int n) {
  for (int i = 0;; i++) {
    char f[96], m[96];
    pinlist_names(l, i, f, m);
    int fd = handover_take(h, n, f), meta = handover_take(h, n, m);
    if (fd < 0 && meta < 0) break;
    pinlist_add(l, fd, meta);
  }
}

void pinlist_free(struct pinlist *l) {
  for (int i = 0; i < l->n; i++) {
    char f[96], m[96];
    pinlist_names(l, i, f, m);
    notify_fdstore_remove(f);
    notify_fdstore_remove(m);
    close(l->pins[i].fd);
    close(l->pins[i].meta);
  }
  free(l->pins);
  l->pins = NULL;
  l->n = 0;
}
