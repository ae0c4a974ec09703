/* A process holding known bytes at a known address, for the capture tests:
 * prints the address of 64 anonymous pages whose first 32 carry a pattern,
 * then on each line "change N" rewrites N of the last 32 and says so. */
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#define PAGES 64
#define PAGE 4096

int main(void) {
  char *p = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return 1;
  for (int i = 0; i < PAGES / 2; i++)
    snprintf(p + i * PAGE, PAGE, "UFFDKIT-PATTERN page %d", i);
  printf("%lx\n", (unsigned long)p);
  fflush(stdout);
  char line[64];
  int n;
  while (fgets(line, sizeof(line), stdin)) {
    if (sscanf(line, "change %d", &n) != 1 || n < 0 || n > PAGES / 2) return 1;
    for (int i = 0; i < n; i++)
      snprintf(p + (PAGES / 2 + i) * PAGE, PAGE, "UFFDKIT-CHANGED page %d",
               PAGES / 2 + i);
    printf("changed\n");
    fflush(stdout);
  }
  return 0;
}
