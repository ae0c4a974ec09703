/* Which mappings of a process are captured, and where each lands in the
 * image: a range keeps the offset it got first, new ranges are appended. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"

static const char layout_magic[] = "# uffdkit-capture layout 1\n";

static int push(struct layout *l, pid_t pid, uint64_t s, uint64_t e,
                const char *name) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    struct segment *seg = realloc(l->seg, cap * sizeof(*seg));
    if (!seg) return -1;
    l->seg = seg;
    l->cap = cap;
  }
  struct segment *g = &l->seg[l->n++];
  *g = (struct segment){.pid = pid, .start = s, .end = e, .offset = l->size};
  snprintf(g->name, sizeof(g->name), "%s", name);
  l->size += e - s;
  return 0;
}

/* Adds the parts of [s, e) that no segment of pid covers yet. */
static int add_range(struct layout *l, pid_t pid, uint64_t s, uint64_t e,
                     const char *name) {
  for (size_t i = 0; i < l->n; i++) {
    const struct segment *g = &l->seg[i];
    if (g->pid != pid || g->end <= s || g->start >= e) continue;
    uint64_t gs = g->start, ge = g->end;
    if (gs > s && add_range(l, pid, s, gs, name) < 0) return -1;
    return ge < e ? add_range(l, pid, ge, e, name) : 0;
  }
  return s < e ? push(l, pid, s, e, name) : 0;
}

/* Private data is what differs between processes and over time: heap,
 * stacks, anonymous memory, the writable data of the binary and libraries.
 * Read-only file-backed text is the same file bytes in every process, so it
 * is left out unless asked for.  Shared mappings and the kernel's [vvar],
 * [vdso] and [vsyscall] are never taken. */
static int wanted(const char *perms, const char *name, int text) {
  if (perms[0] != 'r' || perms[3] != 'p') return 0;
  if (strncmp(name, "[v", 2) == 0) return 0;
  int anon = name[0] == '\0' || name[0] == '[';
  return text || perms[1] == 'w' || anon;
}

int layout_add_process(struct layout *l, pid_t pid, int text) {
  char path[64], line[4096];
  snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
  FILE *f = fopen(path, "re");
  if (!f) {
    fprintf(stderr, "uffdkit-capture: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int rc = 0;
  while (rc == 0 && fgets(line, sizeof(line), f)) {
    uint64_t s, e;
    char perms[8];
    int name_at = 0;
    if (sscanf(line, "%" SCNx64 "-%" SCNx64 " %7s %*s %*s %*s %n", &s, &e,
               perms, &name_at) < 3 ||
        name_at == 0) {
      fprintf(stderr, "uffdkit-capture: %s: cannot parse: %s", path, line);
      rc = -1;
      break;
    }
    char *name = line + name_at;
    name[strcspn(name, "\n")] = '\0';
    if (wanted(perms, name, text)) rc = add_range(l, pid, s, e, name);
  }
  fclose(f);
  return rc;
}

int layout_save(const struct layout *l, const char *path) {
  FILE *f = fopen(path, "we");
  if (!f) {
    fprintf(stderr, "uffdkit-capture: %s: %s\n", path, strerror(errno));
    return -1;
  }
  fputs(layout_magic, f);
  fputs("# pid start end offset name (hex addresses and offsets)\n", f);
  for (size_t i = 0; i < l->n; i++) {
    const struct segment *g = &l->seg[i];
    fprintf(f, "%d %" PRIx64 " %" PRIx64 " %" PRIx64 " %s\n", (int)g->pid,
            g->start, g->end, g->offset, g->name);
  }
  if (fclose(f) != 0) {
    fprintf(stderr, "uffdkit-capture: %s: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

int layout_load(struct layout *l, const char *path) {
  char line[4096];
  FILE *f = fopen(path, "re");
  if (!f) {
    fprintf(stderr, "uffdkit-capture: %s: %s\n", path, strerror(errno));
    return -1;
  }
  int rc = 0;
  unsigned lineno = 0;
  if (!fgets(line, sizeof(line), f) || strcmp(line, layout_magic) != 0) {
    fprintf(stderr, "uffdkit-capture: %s: not a layout of this version\n",
            path);
    rc = -1;
  }
  for (lineno = 2; rc == 0 && fgets(line, sizeof(line), f); lineno++) {
    int pid, name_at = 0;
    uint64_t s, e, off;
    if (line[0] == '#') continue;
    if (sscanf(line, "%d %" SCNx64 " %" SCNx64 " %" SCNx64 " %n", &pid, &s, &e,
               &off, &name_at) < 4 ||
        name_at == 0 || s >= e || off != l->size) {
      fprintf(stderr, "uffdkit-capture: %s:%u: bad segment: %s", path, lineno,
              line);
      rc = -1;
      break;
    }
    char *name = line + name_at;
    name[strcspn(name, "\n")] = '\0';
    rc = push(l, pid, s, e, name);
  }
  fclose(f);
  return rc;
}

void layout_free(struct layout *l) {
  free(l->seg);
  *l = (struct layout){0};
}
