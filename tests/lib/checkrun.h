/* The one way a Check unit test runs its suite. */
#ifndef UFFDKIT_TESTS_CHECKRUN_H
#define UFFDKIT_TESTS_CHECKRUN_H

#include <check.h>

/* Runs every test of s (each forked, as Check does by default), or those
 * CK_RUN_CASE names, prints the summary and frees s: 0 if all passed and
 * at least one ran, else 1, for main to return. */
int ufk_check_run(Suite *s);

/* A test run on its own: its test case has its name, so CK_RUN_CASE (one
 * ctest entry per test) picks it. */
struct ufk_check_case {
  const char *name;
  const TTest *test;
};

/* Adds one test case per entry of c[0..n) to s, each with the fixture
 * setup/teardown (either may be NULL, run in the test's own process) and
 * a timeout of `timeout` seconds (0: Check's). */
void ufk_check_cases(Suite *s, const struct ufk_check_case *c, size_t n,
                     SFun setup, SFun teardown, double timeout);

#endif
