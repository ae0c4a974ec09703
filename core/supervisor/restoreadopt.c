/* Per-restore listeners handed over by the previous supervisor (an
 * upgrade, or systemd's fd store after a restart). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sv.h"

/* ---- upgrade ---- */

/* r from a text memfd handed over; its listener's counters were adopted
 * (S-<id>) and its socket is L-<id>, or gone (closed). */
static struct restore *adopt_one(struct sv *v, struct handed *h, int n,
                                 const char *id, int fd, int sock) {
  char head[4096] = "";
  ssize_t got = pread(fd, head, sizeof head - 1, 0);
  char tmpl[64] = "", *vars = NULL;
  int gen = 0, one_shot = 1;
  unsigned long long exp = 0, created = 0;
  if (got <= 0 ||
      sscanf(head, "# restore %63s %d %d %llu %llu", tmpl, &gen, &one_shot,
             &exp, &created) != 5 ||
      !(vars = strstr(head, "\n# vars ")))
    return NULL;
  struct restore *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->fd = -1;
  r->text_fd = fd;
  r->serial = restore_next_serial(v);
  snprintf(r->id, sizeof r->id, "%s", id);
  snprintf(r->template, sizeof r->template, "%s", tmpl);
  r->vars = cJSON_ParseWithOpts(vars + 8, NULL, 0);
  r->gen = gen_by_id(v, (uint32_t)gen);
  r->one_shot = one_shot;
  r->expires_unix_ns = exp;
  r->created_unix_ns = created;
  struct conf_err err;
  char what[96];
  snprintf(what, sizeof what, "restore %s", id);
  r->l = find_listener(v, id);
  if (!r->gen || !r->l || conf_load_fd(&r->conf, fd, what, &err) < 0) {
    r->text_fd = -1;
    r->l = NULL;
    cJSON_Delete(r->vars);
    conf_free(&r->conf);
    free(r);
    return NULL;
  }
  r->l->restore = r;
  r->l->conf = &r->conf.listeners[0];
  r->l->gen = r->gen;
  r->state = R_CLOSED;
  restore_pins_init(r);
  pinlist_adopt(&r->pins, h, n);
  if (sock >= 0) {
    fcntl(sock, F_SETFL, O_NONBLOCK);
    install_listener(v, r->l, sock, r->l->conf->socket);
    r->state = R_LISTENING;
  }
  return r;
}

void restore_adopt(struct sv *v, struct handed *h, int n) {
  for (int i = 0; i < n; i++) {
    if (h[i].fd < 0 || strncmp(h[i].name, "R-", 2)) continue;
    const char *id = h[i].name + 2;
    char want[96];
    int sock = handover_take(h, n, fdname('L', id, want, sizeof want));
    struct restore *r = adopt_one(v, h, n, id, h[i].fd, sock);
    if (!r) {
      log_error("restore %s handed over is unusable; dropping it", id);
      close_if(sock);
      continue;
    }
    h[i].fd = -1;
    fcntl(r->text_fd, F_SETFD, FD_CLOEXEC);
    restore_list(v, r);
    log_info("restore %s (template %s) kept", r->id, r->template);
  }
}
