/* conf_load_string on arbitrary text.  A config that loads must hold only
 * values the supervisor and the worker can use as they are; one that does
 * not must say why.  conf_free must release everything either way (the leak
 * checker runs at exit of every input). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzzcheck.h"
#include "log.h"

static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n < 1 || n > 63) return 0;
  return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                   "0123456789._-") == n;
}

static void check_listener(const struct daemon_conf *c, int i) {
  const struct listener_conf *l = &c->listeners[i];
  CHECK(l->name && valid_name(l->name), "listener %d name", i);
  CHECK(l->socket && l->socket[0] && strlen(l->socket) < 108,
        "listener %s socket", l->name);
  CHECK(l->socket_mode <= 0777, "listener %s mode %o", l->name, l->socket_mode);
  CHECK(l->max_sessions >= 1, "listener %s max_sessions %lld", l->name,
        (long long)l->max_sessions);
  CHECK(l->max_regions >= 1 && l->max_regions <= CONF_MAX_REGIONS,
        "listener %s max_regions %lld", l->name, (long long)l->max_regions);
  CHECK(l->max_handshake_bytes >= 4096 && l->max_handshake_bytes <= 1u << 24,
        "listener %s max_handshake_bytes %llu", l->name,
        (unsigned long long)l->max_handshake_bytes);
  CHECK(l->fault_around >= 0 && l->fault_around <= 512,
        "listener %s fault_around %lld", l->name, (long long)l->fault_around);
  CHECK(l->spin_ns <= 10000000 || l->spin_ns == DURATION_AUTO,
        "listener %s spin %llu ns", l->name, (unsigned long long)l->spin_ns);
  CHECK(l->on_source_error >= ON_ERROR_KILL &&
            l->on_source_error <= ON_ERROR_HANG,
        "listener %s on_source_error %d", l->name, l->on_source_error);
  CHECK(l->wset_mode >= WSET_OFF && l->wset_mode <= WSET_AUTO,
        "listener %s prefetch mode %d", l->name, l->wset_mode);
  CHECK(l->wset_mode == WSET_OFF || l->wset_path,
        "listener %s: prefetch on without a path", l->name);
  CHECK(l->n_allow_uids >= 0 && l->n_allow_gids >= 0,
        "listener %s negative id counts", l->name);
  CHECK(!l->n_allow_uids || l->allow_uids, "listener %s uids", l->name);
  CHECK(!l->n_allow_gids || l->allow_gids, "listener %s gids", l->name);
  CHECK(l->source && config_setting_is_group(l->source),
        "listener %s source is not a group", l->name);
  const char *plugin = NULL;
  CHECK(config_setting_lookup_string(l->source, "plugin", &plugin) && plugin,
        "listener %s source without plugin", l->name);
  if (l->layers) {
    CHECK(config_setting_is_list(l->layers), "listener %s layers", l->name);
    for (int k = 0; k < config_setting_length(l->layers); k++) {
      config_setting_t *e = config_setting_get_elem(l->layers, (unsigned)k);
      const char *name = NULL;
      CHECK(config_setting_is_group(e) &&
                config_setting_lookup_string(e, "layer", &name),
            "listener %s layer %d", l->name, k);
    }
  }
  CHECK(conf_find_listener(c, l->name) == l, "listener %s not found by name",
        l->name);
  for (int j = 0; j < i; j++) {
    CHECK(strcmp(c->listeners[j].name, l->name), "name %s twice", l->name);
    CHECK(strcmp(c->listeners[j].socket, l->socket), "socket %s twice",
          l->socket);
  }
  char where[600];
  CHECK(conf_where(c, l->setting, where, sizeof where)[0], "empty where");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* libconfig opens the files @include names: keep the run hermetic. */
  if (size > 1 << 16 || memmem(data, size, "@include", 8)) return 0;
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  struct daemon_conf c;
  struct conf_err e;
  memset(&e, 0, sizeof e);
  int r = conf_load_string(&c, text, "fuzz.conf", &e);
  CHECK(r == 0 || r == -1, "returned %d", r);
  if (r < 0) {
    CHECK(e.msg[0], "failed without a message");
    CHECK(memchr(e.msg, 0, sizeof e.msg) && memchr(e.file, 0, sizeof e.file),
          "message not terminated");
  } else {
    CHECK(!strcmp(c.text, text), "text kept is not the text loaded");
    /* A file may hold only templates (per-restore listeners). */
    CHECK((c.n_listeners >= 1 && c.listeners) ||
              (c.n_listeners == 0 && c.n_templates >= 1 && c.templates),
          "%d listeners, %d templates", c.n_listeners, c.n_templates);
    CHECK(c.log_level >= LOG_ERROR && c.log_level <= LOG_DEBUG, "log level %d",
          c.log_level);
    CHECK(c.log_format &&
              (!strcmp(c.log_format, "text") || !strcmp(c.log_format, "json")),
          "log format");
    for (int i = 0; i < c.n_listeners; i++)
      check_listener(&c, i);
    CHECK(conf_find_listener(&c, "") == NULL, "empty name found");
  }
  conf_free(&c);
  free(text);
  return 0;
}
