/* uffdkit-sim: plays Firecracker's side of the UFFD memory backend, so that
 * page servers can be tested and measured without KVM. */
#include "sim.h"

#include <stdio.h>
#include <string.h>

const char sim_usage[] =
    "usage: uffdkit-sim mkimage FILE --size SIZE [--seed N] [--zero-percent "
    "P]\n"
    "       uffdkit-sim run --socket PATH --image FILE [options]\n"
    "       uffdkit-sim --help\n"
    "\n"
    "mkimage writes a sparse, deterministic memory image: each 4 KiB page is\n"
    "a hole (about P%, default 10) or pseudo-random bytes derived from\n"
    "(seed, page index). SIZE takes K, M, G suffixes (powers of 1024).\n"
    "\n"
    "run restores a simulated VM from the handler listening on PATH:\n"
    "guest memory\n"
    "  --mem-size SIZE        guest memory (default: the image size)\n"
    "  --regions N            regions, 1..64 (default 1)\n"
    "  --page-size 4K|2M      2M uses hugetlb (default 4K)\n"
    "  --expect FILE          image to verify against (default --image)\n"
    "handshake\n"
    "  --style 1.1|1.7|1.12   Firecracker version to imitate (default 1.12)\n"
    "  --no-remove-event      UFFDIO_API without UFFD_FEATURE_EVENT_REMOVE\n"
    "  --connect-timeout S    retry connecting this long (default 10)\n"
    "  --raw-handshake FILE   send FILE's bytes instead of the JSON\n"
    "  --no-fd                send no uffd\n"
    "  --extra-fds N          attach N more fds (/dev/null)\n"
    "  --split-send N         send the first N bytes (with the fds) apart\n"
    "  --split-pause S        seconds between the two parts (default 0.1)\n"
    "  --expect-refused       only wait for the handler to close the\n"
    "                         connection (exit 0) or --timeout (exit 4)\n"
    "vCPUs\n"
    "  --vcpus N              faulting threads (default 1)\n"
    "  --touch-percent P      touch P% of the pages (default 100)\n"
    "  --order seq|random|stride:K  touch order (default seq)\n"
    "  --seed N               seed of the page choice and order (default 0)\n"
    "  --delay-us N           pause between touches\n"
    "balloon\n"
    "  --balloon OFFSET:LEN   discard this memory-file range after the pass\n"
    "                         and check it reads zeros (repeatable)\n"
    "  --balloon-during       discard while the vCPUs are still touching\n"
    "  --balloon-delay S      with --balloon-during, wait S seconds more\n"
    "run control\n"
    "  --timeout S            watchdog (default 120), exit 3 when it fires\n"
    "  --hold S               keep the VM alive S seconds after verifying\n"
    "  --repeat N             restore N times, results aggregated\n"
    "  --json                 print the summary as one JSON object\n"
    "\n"
    "Exit: 0 verified, 1 mismatches, 2 usage or setup error, 3 timeout,\n"
    "4 connection refused or closed (or --expect-refused not met),\n"
    "5 SIGBUS on guest memory (a poisoned page, or no huge page left).\n"
    "See uffdkit-sim(1).\n";

int main(int argc, char **argv) {
  if (argc < 2) return fputs(sim_usage, stderr), SIM_SETUP;
  if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help"))
    return fputs(sim_usage, stdout), SIM_OK;
  if (!strcmp(argv[1], "mkimage")) return cmd_mkimage(argc - 1, argv + 1);
  if (!strcmp(argv[1], "run")) return cmd_run(argc - 1, argv + 1);
  sim_err(SIM_SETUP, "unknown command '%s'", argv[1]);
  fputs(sim_usage, stderr);
  return SIM_SETUP;
}
