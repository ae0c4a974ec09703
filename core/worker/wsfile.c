#include "wsfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mem.h"

#define MAGIC "UFKWSET1"
#define HEADER 40

static void put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

int wset_write(const char *path, const struct wset *w, char *err,
               size_t errlen) {
  /* Unique per write: many sessions of one worker may record at once. */
  static uint64_t seq;
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d.%d.%llu", path, (int)getpid(),
           (int)gettid(),
           (unsigned long long)__atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
  FILE *f = fopen(tmp, "we");
  if (!f) {
    snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
    return -1;
  }
  uint8_t h[HEADER];
  size_t idlen = strlen(w->identity);
  memcpy(h, MAGIC, 8);
  put_u32(h + 8, 1);
  put_u32(h + 12, w->page_size);
  put_u64(h + 16, w->source_size);
  put_u64(h + 24, w->n);
  put_u64(h + 32, idlen);
  fwrite(h, 1, HEADER, f);
  fwrite(w->identity, 1, idlen, f);
  uint64_t prev = 0;
  for (size_t i = 0; i < w->n; i++) {
    /* zigzag of the delta, as a LEB128 varint: runs cost one byte a page */
    int64_t d = (int64_t)(w->pages[i] - prev);
    uint64_t z = ((uint64_t)d << 1) ^ (uint64_t)(d >> 63);
    prev = w->pages[i];
    do {
      fputc((int)((z & 0x7f) | (z > 0x7f ? 0x80 : 0)), f);
      z >>= 7;
    } while (z);
  }
  int bad = ferror(f) | fflush(f) | fsync(fileno(f));
  bad |= fclose(f);
  if (bad || rename(tmp, path) < 0) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

static int decode(const uint8_t *p, size_t len, struct wset *w, char *err,
                  size_t errlen) {
  size_t at = 0;
  uint64_t prev = 0, max = w->source_size / w->page_size;
  for (size_t i = 0; i < w->n; i++) {
    uint64_t z = 0;
    int shift = 0;
    for (;;) {
      if (at == len || shift > 63) {
        snprintf(err, errlen, "entry %zu is cut short", i);
        return -1;
      }
      uint8_t b = p[at++];
      z |= (uint64_t)(b & 0x7f) << shift;
      shift += 7;
      if (!(b & 0x80)) break;
    }
    int64_t d = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
    prev += (uint64_t)d;
    if (prev >= max) {
      snprintf(err, errlen, "entry %zu: page %llu is beyond the source", i,
               (unsigned long long)prev);
      return -1;
    }
    w->pages[i] = prev;
  }
  if (at != len) {
    snprintf(err, errlen, "%zu bytes after the last entry", len - at);
    return -1;
  }
  return 0;
}

int wset_read(const char *path, struct wset *w, char *err, size_t errlen) {
  memset(w, 0, sizeof *w);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) < 0) {
    snprintf(err, errlen, "%s", strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  uint8_t *b = malloc((size_t)st.st_size + 1);
  ssize_t got = b ? read(fd, b, (size_t)st.st_size) : -1;
  close(fd);
  int r = -1;
  uint64_t idlen = got >= HEADER ? get_u64(b + 32) : 0;
  if (got != st.st_size || got < HEADER || memcmp(b, MAGIC, 8) ||
      (get_u64(b + 8) & 0xffffffffu) != 1) {
    snprintf(err, errlen, "not a uffdkit working-set file (version 1)");
  } else if (idlen >= sizeof w->identity || HEADER + idlen > (uint64_t)got) {
    snprintf(err, errlen, "identity of %llu bytes does not fit",
             (unsigned long long)idlen);
  } else {
    w->page_size =
        (uint32_t)(b[12] | b[13] << 8 | b[14] << 16 | (uint32_t)b[15] << 24);
    w->source_size = get_u64(b + 16);
    w->n = get_u64(b + 24);
    memcpy(w->identity, b + HEADER, idlen);
    size_t body = (size_t)got - HEADER - idlen;
    if ((w->page_size != 4096 && w->page_size != (2u << 20)) || w->n > body ||
        w->source_size / w->page_size < 1) {
      snprintf(err, errlen, "bad page size, count or source size");
    } else {
      w->pages = xcalloc(w->n + 1, sizeof *w->pages);
      r = decode(b + HEADER + idlen, body, w, err, errlen);
    }
  }
  free(b);
  if (r < 0) wset_free(w);
  return r;
}

void wset_free(struct wset *w) {
  free(w->pages);
  w->pages = NULL;
  w->n = 0;
}
