/* UTF-8 as RFC 3629 has it, for what comes from peers: checking it, and
 * quoting a peer's string in a message without passing on bytes that are
 * not valid text. */
#ifndef UFFDKIT_CORE_UTF8_H
#define UFFDKIT_CORE_UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at p (1..4), or 0: no overlong
 * forms, no UTF-16 surrogates, nothing past U+10FFFF. */
int utf8_len(const unsigned char *p, size_t left);

/* Copies at most max_chars characters of s into out (size cap, always
 * terminated), writing each byte that is not valid UTF-8, and each control
 * character, as \xNN; never cuts a character in half. */
void utf8_quote(char *out, size_t cap, const char *s, size_t max_chars);

#endif
