/* uffdkit-capture: memory images of real processes, laid out so that a page's
 * offset means the same address in every generation. */
#ifndef UFFDKIT_CAPTURE_H
#define UFFDKIT_CAPTURE_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define CAP_PAGE ((uint64_t)4096)

/* One address range of one process, placed at offset in every image. */
struct segment {
  pid_t pid;
  uint64_t start, end, offset;
  char name[64];
};

struct layout {
  struct segment *seg;
  size_t n, cap;
  uint64_t size; /* end of the last segment */
};

struct capture_opts {
  pid_t *pids;
  size_t npids;
  int text;      /* also read-only file-backed mappings (code, rodata) */
  int no_stop;   /* do not SIGSTOP the processes while reading */
  uint64_t size; /* pad every image with zero pages to this size */
};

struct image_stats {
  uint64_t pages, zero, unreadable, changed;
};

/* maps.c */
int layout_add_process(struct layout *l, pid_t pid, int text);
int layout_load(struct layout *l, const char *path);
int layout_save(const struct layout *l, const char *path);
void layout_free(struct layout *l);

/* image.c: write out (via out.tmp), comparing with prev when not NULL. */
int image_write(const struct layout *l, const struct capture_opts *o,
                const char *out, const char *prev, struct image_stats *st);
void image_print(const char *out, const struct image_stats *st, int has_prev);
int capture_generations(struct capture_opts *o, const char *out,
                        const char *prev, unsigned gens, double interval,
                        void (*between)(void *, double), void *arg);

/* The command line shared by both commands. */
struct cli {
  struct capture_opts o;
  const char *out, *prev, *arg; /* arg: the one operand (workload kind) */
  unsigned gens;
  double interval;
};
int parse_cli(int argc, char **argv, struct cli *c);
int add_pid(struct capture_opts *o, pid_t pid);

/* workload.c */
int cmd_workload(int argc, char **argv);

extern volatile int cap_interrupted;
void cap_sleep(double seconds);

#endif
