/* sigbus-vmm: a VMM that survives SIGBUS on guest memory and says where.
 *
 *   trust-sigbus-vmm SOCKET IMAGE [TIMEOUT_S]
 *
 * Guest memory (the size of IMAGE, 4 KiB pages, one region) is registered
 * with a userfaultfd and handed to the page server with the handshake
 * Firecracker 1.12 sends (the socket kept open).  One vCPU thread touches
 * every page in ascending order and compares it with IMAGE right after its
 * first touch returns.
 *
 * A SIGBUS on guest memory (a page the server poisoned) is caught on the
 * thread that touched it; the vCPU stops there, the process waits 300 ms
 * (so a SIGKILL the server might also send would land) and exits 5.
 *
 * Everything is reported at once with write(2), so the report survives a
 * SIGKILL from the page server:
 *   handshake sent, N pages
 *   MISMATCH offset=0x... byte=N got=0x.. want=0x..   a wrong page
 *   verified N                                        every 64 pages
 *   sigbus offset=0x... code=N vcpu_thread=yes|no     the SIGBUS
 *   done pages=N mismatches=M                         the end of the run
 * Exit: 0 every page right, 1 mismatches, 2 setup error, 3 timeout,
 * 5 SIGBUS on guest memory. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "vmm.h"

static atomic_int got_sigbus;
static pid_t vcpu_tid;
static sigjmp_buf vcpu_jmp;

static void on_sigbus(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)uc;
  uintptr_t offset;
  if (!vmm_guest_page((uintptr_t)si->si_addr, &offset)) {
    /* Not guest memory: a real crash of this program. */
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
    return;
  }
  int on_vcpu = (pid_t)syscall(SYS_gettid) == vcpu_tid;
  vmm_say("sigbus offset=0x%" PRIxPTR " code=%d vcpu_thread=%s", offset,
          si->si_code, on_vcpu ? "yes" : "no");
  atomic_store(&got_sigbus, 1);
  if (on_vcpu) siglongjmp(vcpu_jmp, 1);
  _exit(5);
}

static void catch_sigbus(void) {
  struct sigaction sa = {.sa_sigaction = on_sigbus,
                         .sa_flags = SA_SIGINFO | SA_NODEFER};
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGBUS, &sa, NULL))
    vmm_die(2, "sigaction: %s", strerror(errno));
}

/* The vCPU stops at the first SIGBUS, as a guest would. */
static void vcpu(unsigned id) {
  vcpu_tid = (pid_t)syscall(SYS_gettid);
  if (sigsetjmp(vcpu_jmp, 1) == 0) vmm_touch(id, 1);
}

/* Lingers so that a SIGKILL the server sends along with the poison lands
 * before the VMM claims to have survived. */
static int outlive_sigbus(int sock) {
  struct timespec linger = {0, 300 * 1000 * 1000};
  nanosleep(&linger, NULL);
  vmm_say("alive after sigbus, %" PRIu64 " pages verified", vmm_verified());
  close(sock);
  return 5;
}

int main(int argc, char **argv) {
  vmm_name = "trust-sigbus-vmm";
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: trust-sigbus-vmm SOCKET IMAGE [TIMEOUT_S]\n");
    return 2;
  }
  double timeout = argc > 3 ? atof(argv[3]) : 60;
  if (timeout <= 0) vmm_die(2, "bad TIMEOUT_S");
  catch_sigbus();
  int sock = vmm_start(argv[1], argv[2]);
  vmm_say("handshake sent, %" PRIu64 " pages", vmm_pages());
  vmm_run(1, vcpu, timeout);
  if (atomic_load(&got_sigbus)) return outlive_sigbus(sock);
  return vmm_done(sock);
}
