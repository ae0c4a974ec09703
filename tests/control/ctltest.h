/* What the control unit tests share: a synthetic view the control socket
 * and the metrics read (test_control.c), checks of text and JSON, and the
 * test cases of each file. */
#ifndef UFFDKIT_TEST_CTLTEST_H
#define UFFDKIT_TEST_CTLTEST_H

#include <check.h>
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"
#include "ctl.h"
#include "metrics.h"

#define MAX_L 4
#define MAX_S 4

/* The view: listeners L with their stats ST, sessions S. */
extern struct stats_listener L[MAX_L];
extern struct listener_stats *ST[MAX_L];
extern int NL;
extern struct session_shm *S[MAX_S];
extern int NS;
extern int reload_calls, drain_calls, reload_fails;
extern char drained[64];
extern struct control_view V;

int do_reload(void *o, char *err, size_t len);
int do_drain(void *o, const char *name, char *err, size_t len);
void add_listener(const char *name, const char *sock, const char *src);
struct session_shm *add_session(uint64_t id, const char *listener, int pid);
void counter(struct listener_stats *st, const char *name, const char *inst,
             const char *help, uint64_t v);
void setup(void);
void teardown(void);
/* Listener "a" (1 live session) and "b" (none), with plugin counters. */
void standard_view(void);

int has_line(const char *text, const char *line);
int count_substr(const char *text, const char *sub);
#define ck_line(text, line)                                                    \
  ck_assert_msg(has_line(text, line), "missing line: %s\n--- in:\n%s", line,   \
                text)

char *render(void);
cJSON *respond(const char *req, uint64_t now, uint64_t unix_now,
               struct stats_rates *r);
const char *error_of(const cJSON *j);

/* Made by main, removed when all have run (test_control_socket.c). */
extern char basedir[64];
char *make_dir(char *buf, size_t len, const char *prefix);

TCase *metrics_tcase(void);  /* test_control_metrics.c */
TCase *requests_tcase(void); /* test_control_requests.c */
TCase *socket_tcase(void);   /* test_control_socket.c */

#endif
