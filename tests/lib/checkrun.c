#include "checkrun.h"

#include <stdio.h>
#include <stdlib.h>

int ufk_check_run(Suite *s) {
  SRunner *r = srunner_create(s);
  srunner_run_all(r, CK_NORMAL);
  int ran = srunner_ntests_run(r), failed = srunner_ntests_failed(r);
  srunner_free(r);
  /* CK_RUN_CASE or CK_RUN_SUITE naming nothing runs nothing, which Check
   * counts as a pass: a test that cannot fail. */
  if (ran == 0) {
    const char *c = getenv("CK_RUN_CASE"), *su = getenv("CK_RUN_SUITE");
    fprintf(stderr, "no test ran (CK_RUN_CASE=%s, CK_RUN_SUITE=%s)\n",
            c ? c : "", su ? su : "");
    return 1;
  }
  return failed ? 1 : 0;
}

void ufk_check_cases(Suite *s, const struct ufk_check_case *c, size_t n,
                     SFun setup, SFun teardown, double timeout) {
  for (size_t i = 0; i < n; i++) {
    TCase *tc = tcase_create(c[i].name);
    if (setup || teardown) tcase_add_checked_fixture(tc, setup, teardown);
    if (timeout > 0) tcase_set_timeout(tc, timeout);
    tcase_add_test(tc, c[i].test);
    suite_add_tcase(s, tc);
  }
}
