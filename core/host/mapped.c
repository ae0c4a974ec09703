#include "mapped.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

/* The copy in progress on this thread, if any.  The handler must stay in
 * the daemon, not in a plugin: a plugin is unloaded, a handler is not. */
static __thread struct guard {
  sigjmp_buf jb;
  uintptr_t lo, hi;
} *volatile current;

static struct sigaction before;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
  struct guard *g = current;
  uintptr_t at = (uintptr_t)si->si_addr;
  if (g && at >= g->lo && at < g->hi) {
    /* The jump skips the return that would give back the signal mask of
     * the copy (a wrapper of the handler, such as a sanitizer's, may block
     * every signal while it runs): give it back here, or the next SIGBUS
     * finds itself blocked and kills. */
    pthread_sigmask(SIG_SETMASK, &((ucontext_t *)uc)->uc_sigmask, NULL);
    siglongjmp(g->jb, 1);
  }
  /* Not a copy of ours: the faulting access runs again under the handler
   * that was there before. */
  (void)sig;
  sigaction(SIGBUS, &before, NULL);
}

/* SA_NODEFER: SIGBUS is not blocked while the handler runs, as a thread
 * with SIGBUS blocked is killed by its next one. */
static void install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_sigbus;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &before);
}

int host_copy_mapped(void *dst, const void *src, size_t len) {
  pthread_once(&once, install);
  struct guard g = {.lo = (uintptr_t)src, .hi = (uintptr_t)src + len};
  if (sigsetjmp(g.jb, 0)) {
    current = NULL;
    errno = EIO;
    return -1;
  }
  current = &g;
  memcpy(dst, src, len);
  current = NULL;
  return 0;
}
