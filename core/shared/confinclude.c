#include "confinclude.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define MAX_DEPTH 10
#define MARKER "#@from \""

static char *read_all(const char *path, struct conf_err *err) {
  FILE *f = fopen(path, "re");
  if (!f) {
    conf_err_at(err, path, -1, 0, "%s", strerror(errno));
    return NULL;
  }
  char *text = NULL;
  size_t len = 0;
  FILE *m = open_memstream(&text, &len);
  char buf[8192];
  size_t n;
  while (m && (n = fread(buf, 1, sizeof buf, f)) > 0)
    fwrite(buf, 1, n, m);
  fclose(f);
  if (!m || memstream_done(m, &text) < 0)
    conf_err_at(err, path, -1, 0, "out of memory");
  return text;
}

/* If line (of length n) is an @include, copies its file name into name
 * and returns 1; 0 if it is not one; -1 (reason in err) if malformed. */
static int include_line(const char *line, size_t n, char *name, size_t len,
                        struct conf_err *err) {
  size_t i = strspn(line, " \t");
  if (n - i < 8 || strncmp(line + i, "@include", 8)) return 0;
  i += 8;
  size_t sp = strspn(line + i, " \t");
  if (!sp || i + sp >= n || line[i + sp] != '"') {
    conf_err_set(err, "@include must be followed by a quoted file name");
    return -1;
  }
  i += sp + 1;
  const char *end = memchr(line + i, '"', n - i);
  if (!end || (size_t)(end - line - i) >= len || end == line + i) {
    conf_err_set(err, "@include needs a file name in quotes");
    return -1;
  }
  memcpy(name, line + i, (size_t)(end - line) - i);
  name[(size_t)(end - line) - i] = 0;
  const char *rest = end + 1 + strspn(end + 1, " \t;");
  size_t left = (size_t)(line + n - rest);
  if (left && rest[0] != '#' && strncmp(rest, "//", 2)) {
    conf_err_set(err, "unexpected text after @include \"%.200s\"", name);
    return -1;
  }
  return 1;
}

static void marker(FILE *m, const char *file, int line) {
  fprintf(m, MARKER "%s\" %d\n", file, line);
}

/* Appends path's text to m, expanding includes; ret_to names the file and
 * line to mark after an included piece (NULL at the top). */
static int expand(FILE *m, const char *path, int depth, struct conf_err *err) {
  char *text = read_all(path, err);
  if (!text) return -1;
  int lineno = 0, r = 0;
  for (char *p = text; *p && r == 0;) {
    char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    lineno++;
    char name[4096];
    struct conf_err why;
    int inc = include_line(p, n, name, sizeof name, &why);
    if (inc < 0 || (inc && depth >= MAX_DEPTH)) {
      r = conf_err_at(err, path, -1, lineno, "%s",
                      inc < 0 ? why.msg : "@include nested too deep");
    } else if (inc) {
      marker(m, name, 1);
      if (expand(m, name, depth + 1, &why) < 0)
        r = conf_err_at(err, path, -1, lineno, "%s", conf_err_str(&why));
      marker(m, path, lineno + 1);
    } else {
      fwrite(p, 1, n, m);
      fputc('\n', m);
    }
    p += n + (nl ? 1 : 0);
  }
  free(text);
  return r;
}

int conf_expand_file(const char *path, char **out, struct conf_err *err) {
  size_t len = 0;
  *out = NULL;
  FILE *m = open_memstream(out, &len);
  if (!m) return conf_err_at(err, path, -1, 0, "out of memory");
  int r = expand(m, path, 0, err);
  if (memstream_done(m, out) < 0 && r == 0)
    r = conf_err_at(err, path, -1, 0, "out of memory");
  if (r < 0) {
    free(*out);
    *out = NULL;
  }
  return r;
}

int conf_origin(const char *text, int line, const char **file, int *flen) {
  int at = 1, base = 1, base_at = 1;
  *file = NULL;
  *flen = 0;
  for (const char *p = text; p && *p && at < line; at++) {
    if (!strncmp(p, MARKER, sizeof MARKER - 1)) {
      const char *f = p + sizeof MARKER - 1, *q = strchr(f, '"');
      if (q) {
        *file = f;
        *flen = (int)(q - f);
        base = atoi(q + 1);
        base_at = at + 1;
      }
    }
    p = strchr(p, '\n');
    if (p) p++;
  }
  return base + (line - base_at);
}
