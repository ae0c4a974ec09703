#include "utf8.h"

#include <stdio.h>
#include <string.h>

int utf8_len(const unsigned char *p, size_t left) {
  int n = p[0] < 0x80             ? 1
          : (p[0] & 0xe0) == 0xc0 ? 2
          : (p[0] & 0xf0) == 0xe0 ? 3
          : (p[0] & 0xf8) == 0xf0 ? 4
                                  : 0;
  if (!n || (size_t)n > left || (n == 2 && p[0] < 0xc2) ||
      (n == 4 && p[0] > 0xf4))
    return 0;
  for (int i = 1; i < n; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
      (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
    return 0;
  return n;
}

void utf8_quote(char *out, size_t cap, const char *s, size_t max_chars) {
  const unsigned char *p = (const unsigned char *)s;
  size_t left = strlen(s), o = 0;
  if (!cap) return;
  for (size_t chars = 0; left && chars < max_chars; chars++) {
    int n = utf8_len(p, left);
    if (n && !(n == 1 && (p[0] < 0x20 || p[0] == 0x7f))) {
      if (o + (size_t)n >= cap) break;
      memcpy(out + o, p, (size_t)n);
      o += (size_t)n;
    } else {
      if (o + 4 >= cap) break;
      snprintf(out + o, cap - o, "\\x%02x", p[0]);
      o += 4;
      n = 1;
    }
    p += n;
    left -= (size_t)n;
  }
  out[o] = 0;
}
