/* What the configuration tests share: the config loaded, its error, the
 * helpers that load and check (test_config.c) and the error cases
 * (test_config_errors.c). */
#ifndef UFFDKIT_TEST_CONFTEST_H
#define UFFDKIT_TEST_CONFTEST_H

#include <check.h>
#include <stddef.h>

#include "config.h"
#include "conftext.h"

extern struct daemon_conf C;
extern char ERR[2048];
extern int loaded; /* C holds a config to free */

int load(const char *text);
void loads(const char *text);
void refused(const char *text, int line, ...);
void teardown(void);

struct conf_case {
  const char *name; /* the test case (TCase) */
  const TTest *test;
};
void add_cases(Suite *s, const struct conf_case *cases, size_t n);

/* Errors, ranges, native_types and value_lines. */
void add_error_cases(Suite *s);

#endif
