/* uffdkit-snap: make and read snapshot stores (STORE/BUILD_ID/memfile and
 * memfile.header, one folder per build). */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "chunkstore.h"
#include "snap.h"

static const char usage[] =
    "Usage: uffdkit-snap COMMAND ARGS...\n"
    "\n"
    "Make and read snapshot stores: STORE/BUILD_ID/memfile holds the blocks\n"
    "a build wrote, STORE/BUILD_ID/memfile.header maps that generation's\n"
    "memory onto the diffs of its builds.\n"
    "\n"
    "Commands:\n"
    "  create MEMFILE STORE [--block-size 4096|2M]\n"
    "      Make generation 0 from a raw Firecracker memory file; all-zero\n"
    "      blocks are not stored.  Prints the new build id.\n"
    "  diff STORE PARENT_BUILD NEWMEM [--sparse]\n"
    "      Make the next generation of PARENT_BUILD.  NEWMEM is a full memory\n"
    "      file (a block is stored when it differs from the parent), or with\n"
    "      --sparse a Firecracker diff snapshot whose holes are pages not\n"
    "      written.  A block that became all zeros reads as zeros.  Prints\n"
    "      the new build id.\n"
    "  create and diff also take E2B header options: --header-version 1-5,\n"
    "      --codec zstd|lz4|none, --frame-size SIZE, --level N,\n"
    "      --no-ancestor-entries (see uffdkit-snap(1)).\n"
    "  inspect STORE BUILD [--json]\n"
    "      Show the header and the share of memory each build serves.\n"
    "  flatten STORE BUILD OUT\n"
    "      Write the full memory image to OUT, zero ranges as holes.\n"
    "  verify STORE BUILD\n"
    "      Check the header, the diff of every build it references and\n"
    "      their headers.\n"
    "  store import STORE NAME IMAGE [--base SNAPSHOT]\n"
    "  store import STORE NAME BUILD --e2b E2B_STORE\n"
    "      Import a raw image, a Firecracker diff over SNAPSHOT, or an E2B\n"
    "      generation into a chunk store (made if missing), storing only\n"
    "      chunks it does not hold.  Options: --chunk-size N and\n"
    "      --check-by page|chunk and --decode-by page|chunk (new store),\n"
    "      --codec zstd|lz4|raw,\n"
    "      --level N, --pack-size N, --threads N.\n"
    "  store inspect STORE [SNAPSHOT] [--json]\n"
    "  store verify STORE\n"
    "  store export STORE SNAPSHOT OUT\n"
    "  store delete STORE SNAPSHOT\n"
    "  store gc STORE [--no-wait] [--repack[=SHARE]] [--key-file F | --key-env "
    "VAR]\n"
    "      Chunks, dedup and compression; check every chunk; the raw image\n"
    "      back; remove a snapshot; delete unreferenced packs.  An\n"
    "      encrypted store takes --key-file FILE or --key-env VAR.\n"
    "\n"
    "Options:\n"
    "  -h, --help     show this text\n"
    "  -V, --version  show the version\n"
    "\n"
    "A progress bar is drawn on stderr when it is a terminal.  Each command\n"
    "removes what it made if it fails or is interrupted.\n"
    "\n"
    "Exit status: 0 success, 1 error (for verify: a problem found),\n"
    "2 bad command line.\n";

static const struct {
  const char *name;
  int (*run)(int argc, char **argv);
} commands[] = {
    {"create", cmd_create},   {"diff", cmd_diff},     {"inspect", cmd_inspect},
    {"flatten", cmd_flatten}, {"verify", cmd_verify}, {"store", cmd_store},
};

static void on_signal(int sig) {
  snap_interrupted = sig;
}

/* Without SA_RESTART a pending read returns, and the loops see the flag. */
static void catch_signals(void) {
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
}

static int wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage, stderr);
    return SNAP_EXIT_USAGE;
  }
  if (wants_help(argc, argv)) {
    fputs(usage, stdout);
    return SNAP_EXIT_OK;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
    printf("uffdkit-snap %s\n", UFFDKIT_VERSION);
    return SNAP_EXIT_OK;
  }
  catch_signals();
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name))
      return commands[i].run(argc - 1, argv + 1);
  snap_error("unknown command '%s' (see --help)", argv[1]);
  return SNAP_EXIT_USAGE;
}
