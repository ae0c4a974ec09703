/* What the handshake tests share: the parsed handshake, its error, a
 * check of a complete parse (test_handshake.c) and the cases of input
 * refused (test_handshake_bad.c). */
#ifndef UFFDKIT_TEST_HSTEST_H
#define UFFDKIT_TEST_HSTEST_H

#include <check.h>
#include <stdint.h>

#include "handshake.h"

extern struct handshake H;
extern char ERR[512];

/* s parses complete: page size ps, n regions, keeps_socket keeps, every
 * byte consumed. */
void complete(const char *s, uint32_t ps, uint32_t n, int keeps);

/* The test cases malformed, strict_json and ambiguous. */
void add_refusal_cases(Suite *s);

#endif
