/* A source and the layers in front of it, built from one listener's config
 * (or a nested source group), with the thread model and concurrency limit
 * of every level enforced here, in one place, and the callbacks a layer of
 * ABI 1.2 leaves NULL passed to the level below (see uffdkit-plugin(3)). */
#ifndef UFFDKIT_CORE_STACK_H
#define UFFDKIT_CORE_STACK_H

#include <stdint.h>
#include <uffdkit/plugin.h>

#include "config.h"
#include "shm.h"

struct stack;

/* Creates and starts the listener's stack; plugins loaded for it get host.
 * NULL with err at the file and line of the setting at fault: the
 * plugin's group when its file cannot be loaded or one of its callbacks
 * fails ("LISTENER/PLUGIN: " and the plugin's own message), the key when
 * a value is refused. */
struct stack *stack_build(const struct ufk_host *host,
                          const struct daemon_conf *conf,
                          const struct listener_conf *l, const char *plugin_dir,
                          struct listener_stats *stats, struct conf_err *err);
/* Validates settings only (create, no start), for --check-config; 0, or
 * -1 with err as stack_build's. */
int stack_check(const struct ufk_host *host, const struct daemon_conf *conf,
                const struct listener_conf *l, const char *plugin_dir,
                struct conf_err *err);
void stack_destroy(struct stack *s);

/* What l's stack is built from, in a canonical form (stackkey.c): its
 * name, the plugin search path, its source and its layers, with every
 * setting by value.  Two listeners with the same key get the same stack
 * from the same files.  A malloc'd string, or NULL. */
char *stack_key(const struct listener_conf *l, const char *plugin_dir);

int64_t stack_size(const struct stack *s);
uint32_t stack_flags(const struct stack *s); /* UFK_PLUGIN_FAST, _NOWAIT */
uint32_t stack_concurrency(const struct stack *s); /* 0: unlimited */
const char *stack_name(const struct stack *s);

int stack_read(struct stack *s, void *buf, uint64_t len, uint64_t off,
               uint32_t flags);
/* A pointer to len bytes at off, or NULL (then read).  Every pointer
 * returned goes back through stack_release once the bytes are copied. */
const void *stack_map(struct stack *s, uint64_t off, uint64_t len);
void stack_release(struct stack *s, const void *ptr, uint64_t off,
                   uint64_t len);
int stack_prefetch(struct stack *s, uint64_t off, uint64_t len);
/* 1 if the 4 KiB-aligned range [off, off+len) reads as zeros by the
 * source's own report (no read needed), else 0. */
int stack_is_zero(const struct stack *s, uint64_t off, uint64_t len);

/* What data the source serves (identity() of the top, passed through
 * layers; else plugin and size). */
void stack_identity(struct stack *s, char *buf, size_t len);

int stack_open_session(struct stack *s, const struct ufk_session_info *info);
void stack_close_session(struct stack *s, const struct ufk_session_info *info);

/* For host->source_open: a stack built from a group of a plugin's own
 * settings, started, returned as its top's ufk_next. */
struct ufk_config;
struct ufk_next *stack_open_nested(const struct ufk_host *host,
                                   const struct ufk_config *parent,
                                   const config_setting_t *group,
                                   const char *const *vars);
void stack_close_nested(struct ufk_next *n);

#endif
