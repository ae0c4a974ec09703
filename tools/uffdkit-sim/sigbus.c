/* SIGBUS on guest memory: the handler poisoned the page (UFFDIO_POISON, its
 * answer to a source it could not read), or a 2 MiB page could not be
 * allocated.  Reported with the page's memory offset and how far the run
 * got, like a guest's machine check; the run ends with exit 5.  Only
 * async-signal-safe calls here: write(2) and _exit(2). */
#include "restore.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static const struct restore *watched;

void sigbus_watch(const struct restore *r) {
  __atomic_store_n(&watched, r, __ATOMIC_RELEASE);
}

/* Appends "0x" HEX (hex) or DEC to buf at *n. */
static void put_num(char *buf, size_t *n, uint64_t v, int hex) {
  char tmp[24];
  int k = 0;
  unsigned base = hex ? 16 : 10;
  do {
    tmp[k++] = "0123456789abcdef"[v % base];
    v /= base;
  } while (v);
  if (hex) buf[(*n)++] = '0', buf[(*n)++] = 'x';
  while (k)
    buf[(*n)++] = tmp[--k];
}

static void put_str(char *buf, size_t *n, const char *s) {
  size_t l = strlen(s);
  memcpy(buf + *n, s, l);
  *n += l;
}

/* The memory offset of guest address a, or -1 if a is not guest memory. */
static int64_t guest_offset(const struct sim_vm *vm, uintptr_t a) {
  for (unsigned i = 0; i < vm->n_regions; i++) {
    const struct sim_region *g = &vm->region[i];
    if (a >= (uintptr_t)g->base && a - (uintptr_t)g->base < g->size)
      return (int64_t)(g->offset + (a - (uintptr_t)g->base));
  }
  return -1;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  const struct restore *r = __atomic_load_n(&watched, __ATOMIC_ACQUIRE);
  int64_t off = r ? guest_offset(r->vm, (uintptr_t)si->si_addr) : -1;
  if (off < 0) { /* not guest memory: a crash of the simulator itself */
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  char buf[256];
  size_t n = 0;
  uint64_t page = (uint64_t)off & ~(r->vm->page_size - 1);
  put_str(buf, &n, "uffdkit-sim: SIGBUS at memory offset ");
  put_num(buf, &n, page, 1);
  put_str(buf, &n, " (code ");
  put_num(buf, &n, (uint64_t)si->si_code, 0);
  put_str(buf, &n,
          "): the handler poisoned the page, or no huge page was "
          "left\nuffdkit-sim: before that: touched=");
  put_num(buf, &n, atomic_load(&r->touched), 0);
  /* Written only by the vCPUs after a touch; one of them is here. */
  put_str(buf, &n, " mismatches=");
  put_num(buf, &n, r->res->mismatches, 0);
  put_str(buf, &n, "\n");
  (void)!write(STDERR_FILENO, buf, n);
  _exit(SIM_SIGBUS);
}

void sigbus_install(void) {
  struct sigaction sa = {.sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, NULL);
}
