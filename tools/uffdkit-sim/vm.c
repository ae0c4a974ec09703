/* Guest memory and userfaultfd set up the way Firecracker does it
 * (src/vmm/src/persist.rs, guest_memory_from_uffd). */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/mman.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HUGE_SYSFS "/sys/kernel/mm/hugepages/hugepages-2048kB/"

/* Firecracker 1.5+ prefers /dev/userfaultfd (usable in a jail), and falls
 * back to the syscall; the fd is non-blocking like the userfaultfd crate's. */
static int uffd_open(int *out) {
  int flags = O_CLOEXEC | O_NONBLOCK;
  int dev_errno = 0;
  int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev >= 0) {
    int fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
    dev_errno = errno;
    close(dev);
    if (fd >= 0) {
      *out = fd;
      return 0;
    }
  } else {
    dev_errno = errno;
  }
  int fd = (int)syscall(SYS_userfaultfd, flags);
  if (fd < 0)
    return sim_err(SIM_SETUP,
                   "cannot create a userfaultfd: /dev/userfaultfd: %s, "
                   "userfaultfd(2): %s",
                   strerror(dev_errno), strerror(errno));
  *out = fd;
  return 0;
}

static int uffd_api(int uffd, bool remove_event) {
  struct uffdio_api api = {
      .api = UFFD_API,
      .features = remove_event ? UFFD_FEATURE_EVENT_REMOVE : 0,
  };
  if (ioctl(uffd, UFFDIO_API, &api))
    return sim_err(SIM_SETUP, "UFFDIO_API with features 0x%llx failed: %s",
                   (unsigned long long)api.features, strerror(errno));
  return 0;
}

static long read_sysfs_long(const char *path) {
  long v = -1;
  FILE *f = fopen(path, "re");
  if (!f) return -1;
  if (fscanf(f, "%ld", &v) != 1) v = -1;
  fclose(f);
  return v;
}

/* MAP_NORESERVE hugetlb mappings succeed without huge pages and the guest
 * would die of SIGBUS on its first fault, so count them up front. The spare
 * is for UFFDIO_COPY: when its source is not yet in memory, the kernel
 * borrows a huge page as a bounce buffer for the duration of the copy. */
#define HUGE_SPARE 1

static int check_hugepages(uint64_t mem_size) {
  long need = (long)(mem_size / SIM_HUGE_PAGE) + HUGE_SPARE;
  long free_pages = read_sysfs_long(HUGE_SYSFS "free_hugepages");
  long total = read_sysfs_long(HUGE_SYSFS "nr_hugepages");
  if (free_pages < 0 || total < 0)
    return sim_err(SIM_SETUP,
                   "--page-size 2M: cannot read " HUGE_SYSFS
                   "{free,nr}_hugepages: this kernel has no 2 MiB huge pages");
  if (free_pages >= need) return 0;
  return sim_err(
      SIM_SETUP,
      "--page-size 2M: guest memory needs %ld free 2 MiB huge "
      "pages (one of them spare, for copies) but only %ld are "
      "free; reserve more with: echo %ld > /proc/sys/vm/nr_hugepages",
      need, free_pages, total + need - free_pages);
}

static int map_expect(struct sim_vm *vm, const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return sim_err(SIM_SETUP, "cannot open expected image %s: %s", path,
                   strerror(errno));
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st))
    rc = sim_err(SIM_SETUP, "cannot stat %s: %s", path, strerror(errno));
  else if ((uint64_t)st.st_size < vm->mem_size)
    rc = sim_err(SIM_SETUP,
                 "expected image %s has %lld bytes, less than the %" PRIu64
                 " bytes of guest memory",
                 path, (long long)st.st_size, vm->mem_size);
  if (!rc) {
    /* Populated so that verification does not add page-cache faults to the
     * timed pass. */
    void *p =
        mmap(NULL, vm->mem_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED)
      rc = sim_err(SIM_SETUP, "cannot mmap %s: %s", path, strerror(errno));
    else
      vm->expect = p, vm->expect_len = vm->mem_size;
  }
  close(fd);
  return rc;
}

static int guest_size(const struct sim_opts *o, uint64_t *out) {
  struct stat st;
  if (stat(o->image, &st))
    return sim_err(SIM_SETUP, "cannot stat --image %s: %s", o->image,
                   strerror(errno));
  uint64_t img = (uint64_t)st.st_size;
  uint64_t mem = o->mem_size ? o->mem_size : img;
  if (mem > img)
    return sim_err(SIM_SETUP,
                   "--mem-size %" PRIu64 " is larger than --image %s (%" PRIu64
                   " bytes)",
                   mem, o->image, img);
  if (!mem || mem % o->page_size)
    return sim_err(SIM_SETUP,
                   "guest memory of %" PRIu64 " bytes (from %s) is not a "
                   "positive multiple of the page size %" PRIu64,
                   mem, o->mem_size ? "--mem-size" : o->image, o->page_size);
  if (mem / o->page_size < o->regions)
    return sim_err(SIM_SETUP,
                   "--regions %u: guest memory has only %" PRIu64 " pages",
                   o->regions, mem / o->page_size);
  *out = mem;
  return 0;
}

/* Sizes as equal as possible; offsets are the sum of the earlier sizes, as
 * in Firecracker's create_guest_memory. */
static void split_regions(struct sim_vm *vm, unsigned n) {
  uint64_t pages = vm->mem_size / vm->page_size;
  uint64_t off = 0;
  vm->n_regions = n;
  for (unsigned i = 0; i < n; i++) {
    uint64_t rp = pages / n + (i < pages % n);
    vm->region[i].size = rp * vm->page_size;
    vm->region[i].offset = off;
    off += vm->region[i].size;
  }
}

/* The gap before region i is i pages: never zero, never equal, like the
 * MMIO hole between Firecracker's x86 regions, so a handler that derives
 * addresses from file offsets instead of base_host_virt_addr fails. */
static uint64_t gap_before(const struct sim_vm *vm, unsigned i) {
  return (uint64_t)i * vm->page_size;
}

static int map_region(struct sim_vm *vm, unsigned i, uint8_t *at) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED;
  if (vm->page_size == SIM_HUGE_PAGE) flags |= MAP_HUGETLB | MAP_HUGE_2MB;
  void *p = mmap(at, vm->region[i].size, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED)
    return sim_err(SIM_SETUP,
                   "mmap of region %u (%" PRIu64 " bytes%s) failed: %s", i,
                   vm->region[i].size,
                   vm->page_size == SIM_HUGE_PAGE ? ", 2 MiB hugetlb" : "",
                   strerror(errno));
  vm->region[i].base = p;
  return 0;
}

static int register_region(const struct sim_vm *vm, unsigned i) {
  struct uffdio_register reg = {
      .range = {.start = (uintptr_t)vm->region[i].base,
                .len = vm->region[i].size},
      .mode = UFFDIO_REGISTER_MODE_MISSING,
  };
  if (ioctl(vm->uffd, UFFDIO_REGISTER, &reg))
    return sim_err(SIM_SETUP, "UFFDIO_REGISTER of region %u at %p failed: %s",
                   i, (void *)vm->region[i].base, strerror(errno));
  if (!(reg.ioctls & (1ULL << _UFFDIO_COPY)))
    return sim_err(SIM_SETUP, "region %u: the kernel offers no UFFDIO_COPY", i);
  return 0;
}

static int map_layout(struct sim_vm *vm) {
  size_t len = vm->mem_size + vm->page_size;
  for (unsigned i = 1; i < vm->n_regions; i++)
    len += gap_before(vm, i);
  void *res = mmap(NULL, len, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (res == MAP_FAILED)
    return sim_err(SIM_SETUP, "cannot reserve %zu bytes of address space: %s",
                   len, strerror(errno));
  vm->reserve = res, vm->reserve_len = len;
  uintptr_t at = ((uintptr_t)res + vm->page_size - 1) & ~(vm->page_size - 1);
  for (unsigned i = 0; i < vm->n_regions; i++) {
    at += gap_before(vm, i);
    int rc = map_region(vm, i, (uint8_t *)at);
    if (!rc) rc = register_region(vm, i);
    if (rc) return rc;
    at += vm->region[i].size;
  }
  return 0;
}

int vm_create(struct sim_vm *vm, const struct sim_opts *o) {
  memset(vm, 0, sizeof(*vm));
  vm->uffd = -1;
  vm->page_size = o->page_size;
  int rc = guest_size(o, &vm->mem_size);
  if (!rc && o->page_size == SIM_HUGE_PAGE) rc = check_hugepages(vm->mem_size);
  if (!rc) rc = map_expect(vm, o->expect ? o->expect : o->image);
  if (!rc) rc = uffd_open(&vm->uffd);
  if (!rc) rc = uffd_api(vm->uffd, !o->no_remove_event);
  if (!rc) {
    split_regions(vm, o->regions);
    rc = map_layout(vm);
  }
  if (rc) vm_destroy(vm);
  return rc;
}

void vm_destroy(struct sim_vm *vm) {
  if (vm->reserve) munmap(vm->reserve, vm->reserve_len);
  if (vm->expect) munmap((void *)vm->expect, vm->expect_len);
  if (vm->uffd >= 0) close(vm->uffd);
  vm->reserve = NULL;
  vm->expect = NULL;
  vm->uffd = -1;
}

/* Returns the region holding memory offset off, or -1. */
int vm_locate(const struct sim_vm *vm, uint64_t off, unsigned *region) {
  for (unsigned i = 0; i < vm->n_regions; i++) {
    const struct sim_region *r = &vm->region[i];
    if (off >= r->offset && off - r->offset < r->size) {
      *region = i;
      return 0;
    }
  }
  return -1;
}

uint8_t *vm_addr(const struct sim_vm *vm, uint64_t off) {
  unsigned i;
  if (vm_locate(vm, off, &i)) return NULL;
  return vm->region[i].base + (off - vm->region[i].offset);
}
