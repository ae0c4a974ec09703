/* A fake struct ufk_host for plugin unit tests.
 *
 *   const struct ufk_plugin *p = fakehost_load("build/lib/.../libmmap.so");
 *   struct ufk_config *c = fakehost_config(p->params, (const char *[]){
 *       "path=/tmp/x", NULL});
 *   void *inst = p->create(c, NULL);
 *
 * Settings are "key=value" strings; a key given several times is a list.
 * Values are checked against the plugin's param table as the daemon does
 * (unknown key or bad type: fakehost_config returns NULL and sets the error).
 */
#ifndef UFFDKIT_TESTS_FAKEHOST_H
#define UFFDKIT_TESTS_FAKEHOST_H

#include <uffdkit/plugin.h>

const struct ufk_host *fakehost(void);

/* dlopens a plugin, checks its ABI and calls its load() with fakehost():
 * the table of a daemon of ABI minor FAKEHOST_ABI_MINOR when set in the
 * environment, else of this one. */
const struct ufk_plugin *fakehost_load(const char *path);

struct ufk_config *fakehost_config(const struct ufk_param *params,
                                   const char *const *kv);
void fakehost_config_free(struct ufk_config *c);

/* Nested sources: a test registers the ufk_next to return for a group key. */
typedef struct ufk_next *(*fakehost_source_fn)(const char *key,
                                               const char *const *vars,
                                               void *opaque);
void fakehost_set_source_open(fakehost_source_fn fn, void *opaque);

/* The last error a plugin reported with host->error, and its errno. */
const char *fakehost_last_error(void);
int fakehost_last_errno(void);
void fakehost_clear_error(void);

/* Value of counter `name` of any instance (summed), 0 if never created. */
uint64_t fakehost_counter(const char *name);

#endif
