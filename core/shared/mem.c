#include "mem.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void *need(void *p, size_t bytes) {
  if (!p && bytes) {
    log_error("out of memory (%zu bytes); the worker stops and the "
              "supervisor starts another",
              bytes);
    abort();
  }
  return p;
}

void *xmalloc(size_t size) {
  return need(malloc(size), size);
}

void *xcalloc(size_t n, size_t size) {
  return need(calloc(n, size), n * size);
}

void *xrealloc(void *p, size_t n, size_t size) {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) return need(NULL, SIZE_MAX);
  return need(realloc(p, bytes), bytes);
}

char *xstrdup(const char *s) {
  return need(strdup(s), strlen(s) + 1);
}

void *xmemalign(size_t size) {
  void *p = NULL;
  if (posix_memalign(&p, 4096, size)) p = NULL;
  return need(p, size);
}

int memstream_done(FILE *m, char **buf) {
  int bad = ferror(m);
  if (fclose(m) != 0 || bad || !*buf) {
    free(*buf);
    *buf = NULL;
    return -1;
  }
  return 0;
}
