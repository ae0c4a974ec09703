/* CHECK(cond, fmt, ...): an invariant of a fuzz target; when it does not
 * hold, says which and why, and aborts so libFuzzer keeps the input. */
#ifndef UFFDKIT_FUZZCHECK_H
#define UFFDKIT_FUZZCHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "invariant failed: %s: ", #cond);                        \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#endif
