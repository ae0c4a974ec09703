/* strict-vmm: a VMM that checks each guest page the moment it is installed.
 *
 *   strict-vmm SOCKET IMAGE [VCPUS [TIMEOUT_S [DELAY_US]]]
 *
 * Guest memory (the size of IMAGE, 4 KiB pages) is registered with a
 * userfaultfd and handed to the page server with the handshake Firecracker
 * 1.12 sends (one region, the socket kept open).  Each vCPU thread touches
 * its pages in ascending order (vCPU k takes pages k, k+V, ...) and compares
 * every page with IMAGE right after its first touch returns.
 *
 * Everything is reported at once with write(2), so the report survives a
 * SIGKILL from the page server:
 *   MISMATCH offset=0x... byte=N got=0x.. want=0x..   a wrong page
 *   verified N                                        every 64 pages
 *   done pages=N mismatches=M                         the end of the run
 * DELAY_US pauses each vCPU after each page (to change the source in the
 * middle of a restore).
 * Exit: 0 every page right, 1 mismatches, 2 setup error, 3 timeout (a vCPU
 * still waiting after TIMEOUT_S seconds, default 60). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "vmm.h"

static unsigned nvcpus = 1;

static void vcpu(unsigned id) {
  vmm_touch(id, nvcpus);
}

int main(int argc, char **argv) {
  vmm_name = "strict-vmm";
  if (argc < 3 || argc > 6) {
    fprintf(stderr,
            "usage: strict-vmm SOCKET IMAGE [VCPUS [TIMEOUT_S [DELAY_US]]]\n");
    return 2;
  }
  double timeout = 60;
  if (argc > 3) nvcpus = (unsigned)atoi(argv[3]);
  if (argc > 4) timeout = atof(argv[4]);
  if (argc > 5) vmm_delay_us = (unsigned)atoi(argv[5]);
  if (nvcpus < 1 || nvcpus > VMM_MAX_VCPUS || timeout <= 0)
    vmm_die(2, "bad VCPUS or TIMEOUT_S");
  int sock = vmm_start(argv[1], argv[2]);
  vmm_say("handshake sent, %" PRIu64 " pages, %u vCPUs", vmm_pages(), nvcpus);
  vmm_run(nvcpus, vcpu, timeout);
  return vmm_done(sock);
}
