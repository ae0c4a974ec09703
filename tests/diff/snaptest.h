/* What the snapshot header tests share (test_snapheader.c) and the cases
 * of test_snapheader_merge.c. */
#ifndef UFFDKIT_TEST_SNAPTEST_H
#define UFFDKIT_TEST_SNAPTEST_H

#include <check.h>
#include <stdint.h>

#include "snapheader.h"

#define K4 4096ull
#define M2 (2ull << 20)

/* A build id of 16 bytes tag. */
void id_of(uint8_t id[16], int tag);

/* The test cases merge and generations. */
void add_merge_cases(Suite *s);

#endif
