#include "plugin.h"

#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hosterror.h"
#include "mem.h"
#include "pluginpath.h"

static struct plugin *loaded;
/* Stacks are built on more than one thread of a worker (a reload's beside
 * a restore's): each plugin is loaded once. */
static pthread_mutex_t loaded_lock = PTHREAD_MUTEX_INITIALIZER;

static int valid_name(const char *s) {
  if (!s || !*s || strlen(s) > 40) return 0;
  for (; *s; s++)
    if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-')
      return 0;
  return 1;
}

/* The checks nbdkit taught: version, size, required callbacks, name. */
static int check_plugin(const char *path, const struct ufk_plugin *p,
                        struct conf_err *err) {
  if (p->abi_major != UFK_ABI_MAJOR)
    return conf_err_at(err, path, -1, 0,
                       "plugin ABI major %u, this daemon speaks %u: rebuild "
                       "the plugin against this uffdkit",
                       p->abi_major, UFK_ABI_MAJOR);
  if (p->abi_minor > UFK_ABI_MINOR)
    return conf_err_at(err, path, -1, 0,
                       "plugin needs ABI %u.%u, this daemon has %u.%u: "
                       "upgrade uffdkit",
                       p->abi_major, p->abi_minor, UFK_ABI_MAJOR,
                       UFK_ABI_MINOR);
  if (p->struct_size < offsetof(struct ufk_plugin, caps))
    return conf_err_at(err, path, -1, 0, "plugin struct size %u is too small",
                       p->struct_size);
  if (!valid_name(p->name))
    return conf_err_at(err, path, -1, 0,
                       "plugin name must be 1-40 of [a-z0-9-]");
  const char *missing = !p->create     ? "create"
                        : !p->get_size ? "get_size"
                        : !p->read     ? "read"
                                       : NULL;
  if (missing)
    return conf_err_at(err, path, -1, 0,
                       "plugin '%s' lacks the required callback %s", p->name,
                       missing);
  if (p->thread_model > UFK_THREAD_PARALLEL)
    return conf_err_at(err, path, -1, 0, "unknown thread model %u",
                       p->thread_model);
  return 0;
}

/* The plugin's struct, from its entry point; NULL with err set. */
static const struct ufk_plugin *entry_of(void *dl, const char *path,
                                         struct conf_err *err) {
  const struct ufk_plugin *(*entry)(void);
  *(void **)&entry = dlsym(dl, UFFDKIT_ENTRY_SYMBOL);
  const struct ufk_plugin *p = entry ? entry() : NULL;
  if (!p)
    conf_err_at(err, path, -1, 0, "not a uffdkit plugin (no %s symbol)",
                UFFDKIT_ENTRY_SYMBOL);
  else if (p->struct_size < offsetof(struct ufk_plugin, load))
    conf_err_at(err, path, -1, 0, "plugin struct size %u is too small",
                p->struct_size);
  else
    return p;
  return NULL;
}

int plugin_open_file(const char *path, struct plugin *out,
                     struct conf_err *err) {
  memset(out, 0, sizeof *out);
  /* Before dlopen: a library's constructors run as it loads. */
  if (plugin_file_trusted(path, err) < 0) return -1;
  void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!dl) return conf_err_set(err, "%s", dlerror()); /* names the file */
  const struct ufk_plugin *p = entry_of(dl, path, err);
  if (!p) {
    dlclose(dl);
    return -1;
  }
  size_t n = p->struct_size < sizeof out->p ? p->struct_size : sizeof out->p;
  memcpy(&out->p, p, n);
  if (out->p.abi_minor < 2) out->p.release = NULL; /* 1.2's */
  if (check_plugin(path, &out->p, err) < 0) {
    dlclose(dl);
    return -1;
  }
  out->dl = dl;
  out->path = xstrdup(path);
  out->name = xstrdup(out->p.name);
  return 0;
}

void plugin_close_file(struct plugin *p) {
  if (p->dl) dlclose(p->dl);
  free(p->path);
  free(p->name);
  memset(p, 0, sizeof *p);
}

/* A name with a '/' is a path; otherwise the first lib<name>.so on the
 * search path.  0 if found; -1 with err saying where it was looked for. */
static int plugin_find(const char *dirs, const char *name, char *path,
                       size_t len, struct conf_err *err) {
  if (strchr(name, '/')) {
    snprintf(path, len, "%s", name);
    return 0;
  }
  char d[PLUGIN_PATH_MAX][PATH_MAX], tried[1024] = "";
  int n = plugin_search_path(dirs, d, PLUGIN_PATH_MAX);
  for (int i = 0; i < n; i++) {
    int w = snprintf(path, len, "%s/lib%s.so", d[i], name);
    if (w > 0 && (size_t)w < len && access(path, F_OK) == 0) return 0;
    size_t k = strlen(tried);
    if (snprintf(tried + k, sizeof tried - k, "%s%s", i ? ":" : "", d[i]) < 0)
      break;
  }
  return conf_err_set(
      err, "no plugin '%s' in %s (uffdkit --list-plugins lists them)", name,
      tried);
}

static struct plugin *load_locked(const char *dir, const char *name,
                                  const struct ufk_host *host,
                                  struct conf_err *err) {
  char path[PATH_MAX];
  if (plugin_find(dir, name, path, sizeof path, err) < 0) return NULL;
  struct plugin *p;
  for (p = loaded; p; p = p->next)
    if (!strcmp(p->path, path)) break;
  if (!p) {
    struct plugin tmp;
    if (plugin_open_file(path, &tmp, err) < 0) return NULL;
    host_clear_error();
    if (tmp.p.load && tmp.p.load(host) < 0) {
      conf_err_at(err, path, -1, 0, "load failed: %s", host_last_error());
      plugin_close_file(&tmp);
      return NULL;
    }
    p = xmalloc(sizeof *p);
    *p = tmp;
    p->next = loaded;
    loaded = p;
  }
  return p;
}

const struct plugin *plugin_get(const char *dir, const char *name,
                                int want_layer, const struct ufk_host *host,
                                struct conf_err *err) {
  pthread_mutex_lock(&loaded_lock);
  struct plugin *p = load_locked(dir, name, host, err);
  pthread_mutex_unlock(&loaded_lock);
  if (!p) return NULL;
  int is_layer = !!(p->p.flags & UFK_PLUGIN_LAYER);
  if (!strchr(name, '/') && strcmp(p->name, name))
    conf_err_at(err, p->path, -1, 0, "the plugin calls itself '%s', not '%s'",
                p->name, name);
  else if (is_layer != want_layer)
    conf_err_set(err, "'%s' is a %s, not a %s", name,
                 is_layer ? "layer" : "source",
                 want_layer ? "layer" : "source");
  else
    return p;
  return NULL;
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

struct listed {
  char name[48], kind[8], abi[24], desc[256];
};

static int by_name(const void *a, const void *b) {
  return strcmp(((const struct listed *)a)->name,
                ((const struct listed *)b)->name);
}

/* Adds one file to the list unless its name is already there (an earlier
 * directory on the search path wins).  -1 if it could not be loaded. */
static int list_file(const char *path, struct listed **v, size_t *n) {
  struct conf_err err;
  struct plugin p;
  if (plugin_open_file(path, &p, &err) < 0) {
    fprintf(stderr, "uffdkit: %s\n", conf_err_str(&err));
    return -1;
  }
  int seen = 0;
  for (size_t i = 0; i < *n; i++)
    seen |= !strcmp((*v)[i].name, p.p.name);
  struct listed *grown = seen ? *v : realloc(*v, (*n + 1) * sizeof **v);
  if (!seen && grown) {
    struct listed *l = &grown[(*n)++];
    snprintf(l->name, sizeof l->name, "%s", p.p.name);
    snprintf(l->kind, sizeof l->kind, "%s",
             p.p.flags & UFK_PLUGIN_LAYER ? "layer" : "source");
    snprintf(l->abi, sizeof l->abi, "%u.%u", p.p.abi_major, p.p.abi_minor);
    snprintf(l->desc, sizeof l->desc, "%s",
             p.p.description ? p.p.description : "");
    *v = grown;
  }
  plugin_close_file(&p);
  return seen || grown ? 0 : -1;
}

static int list_dir(const char *dir, struct listed **v, size_t *n) {
  struct dirent **e;
  int k = scandir(dir, &e, NULL, alphasort), rc = 0;
  if (k < 0) {
    fprintf(stderr, "uffdkit: %s: %s\n", dir, strerror(errno));
    return -1;
  }
  for (int i = 0; i < k; i++) {
    const char *f = e[i]->d_name;
    if (!strncmp(f, "lib", 3) && has_suffix(f, ".so")) {
      char path[PATH_MAX];
      int w = snprintf(path, sizeof path, "%s/%s", dir, f);
      if (w < 0 || (size_t)w >= sizeof path || list_file(path, v, n) < 0)
        rc = -1;
    }
    free(e[i]);
  }
  free(e);
  return rc;
}

int plugin_list(const char *dirs, int json) {
  char d[PLUGIN_PATH_MAX][PATH_MAX];
  int nd = plugin_search_path(dirs, d, PLUGIN_PATH_MAX), rc = 0;
  struct listed *v = NULL;
  size_t n = 0;
  for (int i = 0; i < nd; i++)
    if (list_dir(d[i], &v, &n) < 0) rc = 1;
  qsort(v, n, sizeof *v, by_name);
  if (!json)
    printf("%-12s %-7s %-8s %s\n", "NAME", "KIND", "ABI", "DESCRIPTION");
  for (size_t i = 0; i < n; i++)
    if (json)
      printf("%s{\"name\":\"%s\",\"kind\":\"%s\",\"abi\":\"%s\"}",
             i ? "," : "[", v[i].name, v[i].kind, v[i].abi);
    else
      printf("%-12s %-7s %-8s %s\n", v[i].name, v[i].kind, v[i].abi, v[i].desc);
  if (json) printf("%s]\n", n ? "" : "[");
  free(v);
  return rc;
}

static const char *type_name(uint32_t t) {
  static const char *const n[] = {"?",    "string",   "int",         "bool",
                                  "size", "duration", "string list", "group"};
  return t < sizeof n / sizeof *n ? n[t] : "?";
}

/* Every callback the plugin sets, in the struct's order. */
static void print_callbacks(const struct ufk_plugin *u) {
  const struct {
    const char *name;
    int set;
  } cb[] = {{"load", !!u->load},       {"unload", !!u->unload},
            {"create", !!u->create},   {"start", !!u->start},
            {"destroy", !!u->destroy}, {"open", !!u->open},
            {"close", !!u->close},     {"get_size", !!u->get_size},
            {"read", !!u->read},       {"map", !!u->map},
            {"extents", !!u->extents}, {"prefetch", !!u->prefetch},
            {"caps", !!u->caps},       {"identity", !!u->identity},
            {"release", !!u->release}};
  printf("callbacks:");
  for (size_t i = 0; i < sizeof cb / sizeof *cb; i++)
    if (cb[i].set) printf(" %s", cb[i].name);
  printf("\n");
}

int plugin_describe(const char *dir, const char *name) {
  char path[PATH_MAX];
  struct conf_err err;
  struct plugin p;
  if (plugin_find(dir, name, path, sizeof path, &err) < 0 ||
      plugin_open_file(path, &p, &err) < 0) {
    fprintf(stderr, "uffdkit: %s\n", conf_err_str(&err));
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
  print_callbacks(u);
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
