/* What the configuration says about itself for people and for the
 * command line: a listener's stack as "http+cache+retry", and a
 * configuration written from `uffdkit [OPTIONS] SOCKET PLUGIN [KEY=VALUE]`. */
#include <ctype.h>
#include <libconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mem.h"

/* The name of plugin `ref` as written in a group: itself, or for a path
 * the file's name without "lib" and ".so". */
static void plugin_label(const char *ref, char *buf, size_t len) {
  const char *slash = strrchr(ref, '/');
  if (!slash) {
    snprintf(buf, len, "%s", ref);
    return;
  }
  const char *b = slash + 1;
  size_t n = strlen(b);
  if (!strncmp(b, "lib", 3) && n > 6 && !strcmp(b + n - 3, ".so")) {
    b += 3;
    n -= 6;
  }
  snprintf(buf, len, "%.*s", (int)n, b);
}

void conf_stack_name(const struct listener_conf *l, char *buf, size_t len) {
  const char *ref = NULL;
  char name[256];
  if (!l->source || !config_setting_lookup_string(l->source, "plugin", &ref))
    ref = "?";
  plugin_label(ref, name, sizeof name);
  size_t n = (size_t)snprintf(buf, len, "%s", name);
  int nl = l->layers ? config_setting_length(l->layers) : 0;
  for (int i = 0; i < nl && n < len; i++) {
    config_setting_t *g = config_setting_get_elem(l->layers, (unsigned)i);
    if (!g || !config_setting_lookup_string(g, "layer", &ref)) ref = "?";
    plugin_label(ref, name, sizeof name);
    n += (size_t)snprintf(buf + n, len - n, "+%s", name);
  }
}

/* Appends s to the memstream as a libconfig string literal. */
static void put_quoted(FILE *m, const char *s) {
  fputc('"', m);
  for (; *s; s++) {
    if (*s == '"' || *s == '\\') fputc('\\', m);
    fputc(*s, m);
  }
  fputc('"', m);
}

static int valid_key(const char *k, size_t n) {
  if (!n || !isalpha((unsigned char)k[0])) return 0;
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '-') return 0;
  return 1;
}

/* The uffdkit group of the command line's settings, as config text. */
static void put_globals(FILE *m, const struct cli_globals *g) {
  if (!g || (!g->control_socket && !g->metrics)) return;
  fputs("uffdkit = {", m);
  if (g->control_socket) {
    fputs(" control_socket = ", m);
    put_quoted(m, g->control_socket);
    fputc(';', m);
  }
  if (g->metrics) {
    fputs(" metrics = ", m);
    put_quoted(m, g->metrics);
    fputc(';', m);
  }
  fputs(" };\n", m);
}

/* c initialised empty, as after any failure to load. */
static int oom(struct daemon_conf *c, struct conf_err *err) {
  memset(c, 0, sizeof *c);
  config_init(&c->cfg);
  return conf_err_at(err, "command line", -1, 0, "out of memory");
}

int conf_from_cli(struct daemon_conf *c, const char *socket, const char *plugin,
                  char *const *kv, int nkv, const struct cli_globals *g,
                  struct conf_err *err) {
  char *text = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&text, &len);
  if (!m) return oom(c, err);
  put_globals(m, g);
  fputs("listeners = ( { name = ", m);
  put_quoted(m, g && g->name ? g->name : "cli");
  fputs("; socket = ", m);
  put_quoted(m, socket);
  fputs("; source = { plugin = ", m);
  put_quoted(m, plugin);
  fputs(";", m);
  for (int i = 0; i < nkv; i++) {
    const char *eq = strchr(kv[i], '=');
    if (!eq || !valid_key(kv[i], (size_t)(eq - kv[i]))) {
      fclose(m);
      free(text);
      memset(c, 0, sizeof *c);
      config_init(&c->cfg);
      conf_err_at(err, "command line", -1, 0,
                  "'%s' is not key=value with a key of "
                  "[A-Za-z][A-Za-z0-9_-]*",
                  kv[i]);
      return -1;
    }
    fprintf(m, " %.*s = ", (int)(eq - kv[i]), kv[i]);
    put_quoted(m, eq + 1);
    fputc(';', m);
  }
  fputs(" }; } );\n", m);
  if (memstream_done(m, &text) < 0) return oom(c, err);
  int r = conf_load_string(c, text, "command line", err);
  free(text);
  return r;
}
