/* The VMM side of a Firecracker restore, for test programs that play a VM
 * against the page server and check every guest page it installs.
 *
 *   vmm_name = "my-vmm";
 *   int sock = vmm_start(socket_path, image_path);
 *   vmm_run(nvcpus, vcpu, timeout_s);   // vcpu calls vmm_touch(id, nvcpus)
 *   return vmm_done(sock);
 *
 * Guest memory (the size of IMAGE, 4 KiB pages, one region) is registered
 * with a userfaultfd and handed over with the handshake Firecracker 1.12
 * sends, the socket kept open.  Every report is one write(2) to stdout, so
 * it survives a SIGKILL from the page server:
 *   MISMATCH offset=0x... byte=N got=0x.. want=0x..   a wrong page
 *   verified N                                        every 64 pages
 *   timeout after T s: N pages verified               then exit 3
 *   done pages=N mismatches=M                         from vmm_done
 * Setup errors exit 2, a page server that cannot be reached exits 4. */
#ifndef UFFDKIT_TESTS_VMM_H
#define UFFDKIT_TESTS_VMM_H

#include <stddef.h>
#include <stdint.h>

#define VMM_PAGE 4096u
#define VMM_MAX_VCPUS 64

/* Prefixes the messages of vmm_die. */
extern const char *vmm_name;

/* One line to stdout; used from signal handlers too. */
__attribute__((format(printf, 1, 2))) void vmm_say(const char *fmt, ...);

/* One line to stderr, then _exit(code). */
__attribute__((noreturn, format(printf, 2, 3))) void
vmm_die(int code, const char *fmt, ...);

/* Loads IMAGE, maps and registers guest memory, sends the handshake to
 * SOCKET; returns the connected socket. */
int vmm_start(const char *socket_path, const char *image_path);

/* Sends LEN bytes of BUF with FD attached (SCM_RIGHTS), as Firecracker
 * sends its handshake: 0, or -1 with errno. */
int vmm_send_fd(int sock, const void *buf, size_t len, int fd);

uint64_t vmm_pages(void);
uint64_t vmm_verified(void);

/* Whether ADDR is guest memory; if so *OFFSET is its page's offset. */
int vmm_guest_page(uintptr_t addr, uintptr_t *offset);

/* Pause after each page vmm_touch checks (default 0), so that a test can
 * change something in the middle of a restore. */
extern unsigned vmm_delay_us;

/* Touches pages FIRST, FIRST + STRIDE, ... in ascending order, checking
 * each right after its first touch returns. */
void vmm_touch(unsigned first, unsigned stride);

/* Runs VCPU(0) .. VCPU(NVCPUS - 1) on threads of their own and waits for
 * all of them; after TIMEOUT_S seconds reports the timeout and exits 3. */
void vmm_run(unsigned nvcpus, void (*vcpu)(unsigned id), double timeout_s);

/* Reports the end of the run, closes SOCK; returns the exit code (0 every
 * page right, 1 mismatches). */
int vmm_done(int sock);

#endif
