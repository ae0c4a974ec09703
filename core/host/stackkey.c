/* The canonical form of what a listener's stack is built from, so that a
 * reload can tell a listener whose source did not change: the same key
 * means the same plugins with the same settings, however the file spells
 * them (spacing, comments, @include, the order of a group's members,
 * 0x10 or 16). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stack.h"

static void canon(FILE *out, const config_setting_t *s);

static int by_name(const void *a, const void *b) {
  const char *x = config_setting_name(*(config_setting_t *const *)a);
  const char *y = config_setting_name(*(config_setting_t *const *)b);
  return strcmp(x ? x : "", y ? y : "");
}

/* Members of a group are sorted by name: their order means nothing. */
static void canon_group(FILE *out, const config_setting_t *s) {
  int n = config_setting_length(s);
  config_setting_t **m = n ? calloc((size_t)n, sizeof *m) : NULL;
  for (int i = 0; i < n && m; i++)
    m[i] = config_setting_get_elem(s, (unsigned)i);
  if (m) qsort(m, (size_t)n, sizeof *m, by_name);
  fputc('{', out);
  for (int i = 0; i < n && m; i++) {
    const char *name = config_setting_name(m[i]);
    fprintf(out, "%zu:%s=", strlen(name), name);
    canon(out, m[i]);
    fputc(';', out);
  }
  fputc('}', out);
  free(m);
}

static void canon(FILE *out, const config_setting_t *s) {
  if (!s) {
    fputs("-", out);
    return;
  }
  switch (config_setting_type(s)) {
  case CONFIG_TYPE_GROUP:
    canon_group(out, s);
    return;
  case CONFIG_TYPE_LIST:
  case CONFIG_TYPE_ARRAY:
    fputc('(', out);
    for (int i = 0; i < config_setting_length(s); i++) {
      canon(out, config_setting_get_elem(s, (unsigned)i));
      fputc(',', out);
    }
    fputc(')', out);
    return;
  case CONFIG_TYPE_INT:
  case CONFIG_TYPE_INT64:
    fprintf(out, "i%lld", (long long)config_setting_get_int64(s));
    return;
  case CONFIG_TYPE_FLOAT:
    fprintf(out, "f%.17g", config_setting_get_float(s));
    return;
  case CONFIG_TYPE_BOOL:
    fputs(config_setting_get_bool(s) ? "t" : "n", out);
    return;
  case CONFIG_TYPE_STRING: {
    const char *v = config_setting_get_string(s);
    fprintf(out, "s%zu:%s", strlen(v), v); /* length first: no escaping */
    return;
  }
  default:
    fputs("?", out);
  }
}

char *stack_key(const struct listener_conf *l, const char *plugin_dir) {
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  if (!out) return NULL;
  const char *dir = plugin_dir ? plugin_dir : "";
  fprintf(out, "%zu:%s %zu:%s ", strlen(l->name), l->name, strlen(dir), dir);
  canon(out, l->source);
  fputc(' ', out);
  canon(out, l->layers);
  if (fclose(out) != 0) {
    free(buf);
    return NULL;
  }
  return buf;
}
