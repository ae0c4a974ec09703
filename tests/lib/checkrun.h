/* The one way a Check unit test runs its suite. */
#ifndef UFFDKIT_TESTS_CHECKRUN_H
#define UFFDKIT_TESTS_CHECKRUN_H

#include <check.h>

/* Runs every test of s (each forked, as Check does by default), or those
 * CK_RUN_CASE names, prints the summary and frees s: 0 if all passed and
 * at least one ran, else 1, for main to return. */
int ufk_check_run(Suite *s);

#endif
