#include "plugin.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

#ifndef UFFDKIT_PLUGIN_SUBDIR
#error "UFFDKIT_PLUGIN_SUBDIR must be defined by the build"
#endif

static struct plugin *loaded;

const char *plugin_default_dir(void) {
  static char dir[PATH_MAX];
  if (dir[0]) return dir;
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0) return UFFDKIT_PLUGIN_SUBDIR;
  exe[n] = 0;
  /* <prefix>/bin/uffdkit → <prefix>/<libdir>/uffdkit/plugins */
  snprintf(dir, sizeof dir, "%s/../%s", dirname(exe), UFFDKIT_PLUGIN_SUBDIR);
  char real[PATH_MAX];
  if (realpath(dir, real)) snprintf(dir, sizeof dir, "%s", real);
  return dir;
}

static int valid_name(const char *s) {
  if (!s || !*s || strlen(s) > 40) return 0;
  for (; *s; s++)
    if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-')
      return 0;
  return 1;
}

/* The checks nbdkit taught: version, size, required callbacks, name. */
static int check_plugin(const char *path, const struct ufk_plugin *p, char *err,
                        size_t errlen) {
  if (p->abi_major != UFK_ABI_MAJOR) {
    snprintf(err, errlen,
             "%s: plugin ABI major %u, this daemon speaks %u: rebuild the "
             "plugin against this uffdkit",
             path, p->abi_major, UFK_ABI_MAJOR);
    return -1;
  }
  if (p->abi_minor > UFK_ABI_MINOR) {
    snprintf(err, errlen,
             "%s: plugin needs ABI %u.%u, this daemon has %u.%u: upgrade "
             "uffdkit",
             path, p->abi_major, p->abi_minor, UFK_ABI_MAJOR, UFK_ABI_MINOR);
    return -1;
  }
  if (p->struct_size < offsetof(struct ufk_plugin, caps)) {
    snprintf(err, errlen, "%s: plugin struct size %u is too small", path,
             p->struct_size);
    return -1;
  }
  if (!valid_name(p->name)) {
    snprintf(err, errlen, "%s: plugin name must be 1-40 of [a-z0-9-]", path);
    return -1;
  }
  const char *missing = !p->create     ? "create"
                        : !p->get_size ? "get_size"
                        : !p->read     ? "read"
                                       : NULL;
  if (missing) {
    snprintf(err, errlen, "%s: plugin '%s' lacks the required callback %s",
             path, p->name, missing);
    return -1;
  }
  if (p->thread_model > UFK_THREAD_PARALLEL) {
    snprintf(err, errlen, "%s: unknown thread model %u", path, p->thread_model);
    return -1;
  }
  return 0;
}

int plugin_open_file(const char *path, struct plugin *out, char *err,
                     size_t errlen) {
  memset(out, 0, sizeof *out);
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!dl) {
    snprintf(err, errlen, "%s", dlerror());
    return -1;
  }
  const struct ufk_plugin *(*entry)(void);
  *(void **)&entry = dlsym(dl, UFFDKIT_ENTRY_SYMBOL);
  const struct ufk_plugin *p = entry ? entry() : NULL;
  if (!p) {
    snprintf(err, errlen, "%s: not a uffdkit plugin (no %s symbol)", path,
             UFFDKIT_ENTRY_SYMBOL);
    dlclose(dl);
    return -1;
  }
  if (p->struct_size < offsetof(struct ufk_plugin, load)) {
    snprintf(err, errlen, "%s: plugin struct size %u is too small", path,
             p->struct_size);
    dlclose(dl);
    return -1;
  }
  size_t n = p->struct_size < sizeof out->p ? p->struct_size : sizeof out->p;
  memcpy(&out->p, p, n);
  if (check_plugin(path, &out->p, err, errlen) < 0) {
    dlclose(dl);
    return -1;
  }
  out->dl = dl;
  out->path = strdup(path);
  out->name = strdup(out->p.name);
  return 0;
}

void plugin_close_file(struct plugin *p) {
  if (p->dl) dlclose(p->dl);
  free(p->path);
  free(p->name);
  memset(p, 0, sizeof *p);
}

static void plugin_path(const char *dir, const char *name, char *buf,
                        size_t len) {
  if (strchr(name, '/'))
    snprintf(buf, len, "%s", name);
  else
    snprintf(buf, len, "%s/lib%s.so", dir, name);
}

const struct plugin *plugin_get(const char *dir, const char *name,
                                int want_layer, char *err, size_t errlen) {
  char path[PATH_MAX];
  plugin_path(dir, name, path, sizeof path);
  struct plugin *p;
  for (p = loaded; p; p = p->next)
    if (!strcmp(p->path, path)) break;
  if (!p) {
    struct plugin tmp;
    if (access(path, F_OK) < 0 && !strchr(name, '/')) {
      snprintf(err, errlen,
               "no plugin '%s' in %s (uffdkit --list-plugins lists them)", name,
               dir);
      return NULL;
    }
    if (plugin_open_file(path, &tmp, err, errlen) < 0) return NULL;
    if (tmp.p.load && tmp.p.load(host_table()) < 0) {
      snprintf(err, errlen, "%s: load failed: %s", path, host_last_error());
      plugin_close_file(&tmp);
      return NULL;
    }
    p = malloc(sizeof *p);
    *p = tmp;
    p->next = loaded;
    loaded = p;
  }
  if (!strchr(name, '/') && strcmp(p->name, name)) {
    snprintf(err, errlen, "%s calls itself '%s', not '%s'", path, p->name,
             name);
    return NULL;
  }
  int is_layer = !!(p->p.flags & UFK_PLUGIN_LAYER);
  if (is_layer != want_layer) {
    snprintf(err, errlen, "'%s' is a %s, not a %s", name,
             is_layer ? "layer" : "source", want_layer ? "layer" : "source");
    return NULL;
  }
  return p;
}

void plugin_unload_all(void) {
  while (loaded) {
    struct plugin *p = loaded;
    loaded = p->next;
    if (p->p.unload) p->p.unload();
    plugin_close_file(p);
    free(p);
  }
}

static int has_suffix(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && !strcmp(s + a - b, suf);
}

int plugin_list(const char *dir, int json) {
  DIR *d = opendir(dir);
  if (!d) {
    fprintf(stderr, "uffdkit: %s: %s\n", dir, strerror(errno));
    return 1;
  }
  struct dirent *e;
  int rc = 0, first = 1;
  if (json)
    printf("[");
  else
    printf("%-12s %-7s %-8s %s\n", "NAME", "KIND", "ABI", "DESCRIPTION");
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "lib", 3) || !has_suffix(e->d_name, ".so")) continue;
    char path[PATH_MAX], err[1024];
    struct plugin p;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (plugin_open_file(path, &p, err, sizeof err) < 0) {
      fprintf(stderr, "uffdkit: %s\n", err);
      rc = 1;
      continue;
    }
    const char *kind = p.p.flags & UFK_PLUGIN_LAYER ? "layer" : "source";
    if (json)
      printf("%s{\"name\":\"%s\",\"kind\":\"%s\",\"abi\":\"%u.%u\"}",
             first ? "" : ",", p.p.name, kind, p.p.abi_major, p.p.abi_minor);
    else
      printf("%-12s %-7s %u.%-6u %s\n", p.p.name, kind, p.p.abi_major,
             p.p.abi_minor, p.p.description ? p.p.description : "");
    first = 0;
    plugin_close_file(&p);
  }
  if (json) printf("]\n");
  closedir(d);
  return rc;
}

static const char *type_name(uint32_t t) {
  static const char *const n[] = {"?",    "string",   "int",         "bool",
                                  "size", "duration", "string list", "group"};
  return t < sizeof n / sizeof *n ? n[t] : "?";
}

int plugin_describe(const char *dir, const char *name) {
  char path[PATH_MAX], err[1024];
  struct plugin p;
  plugin_path(dir, name, path, sizeof path);
  if (plugin_open_file(path, &p, err, sizeof err) < 0) {
    fprintf(stderr, "uffdkit: %s\n", err);
    return 1;
  }
  const struct ufk_plugin *u = &p.p;
  printf("name: %s\nkind: %s\nversion: %s\nfile: %s\nabi: %u.%u "
         "(struct size %u)\nthread model: %s\nflags:%s%s%s\n",
         u->name, u->flags & UFK_PLUGIN_LAYER ? "layer" : "source",
         u->version ? u->version : "-", path, u->abi_major, u->abi_minor,
         u->struct_size,
         u->thread_model == UFK_THREAD_PARALLEL ? "parallel" : "serial",
         u->flags & UFK_PLUGIN_FAST ? " fast" : "",
         u->flags & UFK_PLUGIN_NOWAIT ? " nowait" : "",
         u->flags & (UFK_PLUGIN_FAST | UFK_PLUGIN_NOWAIT) ? "" : " -");
  printf("callbacks:%s%s%s%s%s%s\n", u->map ? " map" : "",
         u->extents ? " extents" : "", u->prefetch ? " prefetch" : "",
         u->open ? " open" : "", u->caps ? " caps" : "", " read get_size");
  if (u->description) printf("description: %s\n", u->description);
  printf("settings:\n");
  for (const struct ufk_param *k = u->params; k && k->key; k++)
    printf("  %-22s %-11s %s%s%s\n      %s\n", k->key, type_name(k->type),
           k->flags & UFK_PARAM_REQUIRED ? "required" : "default: ",
           k->flags & UFK_PARAM_REQUIRED ? ""
           : k->default_value            ? k->default_value
                                         : "(none)",
           k->flags & UFK_PARAM_SECRET ? " (secret)" : "",
           k->help ? k->help : "");
  plugin_close_file(&p);
  return 0;
}
