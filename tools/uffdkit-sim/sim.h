/* Shared declarations of uffdkit-sim, the Firecracker (VMM side) simulator. */
#ifndef UFFDKIT_SIM_H
#define UFFDKIT_SIM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Exit codes are part of the command-line contract. */
enum {
  SIM_OK = 0,
  SIM_MISMATCH = 1,
  SIM_SETUP = 2,
  SIM_TIMEOUT = 3,
  SIM_CONN = 4,
  SIM_SIGBUS = 5,
};
/* Internal, never an exit code: with --expect-refused, the handler closed
 * the connection while the handshake was being sent. */
#define SIM_CLOSED 100

#define SIM_MAX_REGIONS 64
#define SIM_MAX_BALLOONS 64
#define SIM_SMALL_PAGE 4096ULL
#define SIM_HUGE_PAGE (2ULL << 20)

enum sim_style { STYLE_1_1, STYLE_1_7, STYLE_1_12 };
enum sim_order { ORDER_SEQ, ORDER_RANDOM, ORDER_STRIDE };

struct sim_range {
  uint64_t off; /* memory-file offset */
  uint64_t len;
};

struct sim_opts {
  const char *socket;
  const char *image;
  const char *expect;
  const char *raw_handshake;
  uint64_t mem_size; /* 0 = image size */
  uint64_t page_size;
  unsigned regions;
  enum sim_style style;
  bool no_remove_event;
  bool no_fd;
  bool expect_refused;
  bool balloon_during;
  bool json;
  unsigned extra_fds;
  size_t split_send;
  double split_pause; /* seconds between the two parts */
  double connect_timeout;
  double timeout;
  double hold;
  double balloon_delay; /* seconds after a quarter was touched */
  unsigned repeat;
  unsigned vcpus;
  double touch_percent;
  uint64_t seed;
  enum sim_order order;
  uint64_t stride;
  unsigned delay_us;
  struct sim_range balloon[SIM_MAX_BALLOONS];
  unsigned n_balloon;
};

struct sim_region {
  uint8_t *base;
  uint64_t size;
  uint64_t offset;
};

/* One simulated VM: guest memory, its uffd and the expected contents. */
struct sim_vm {
  int uffd;
  uint8_t *reserve; /* the PROT_NONE area the regions live in */
  size_t reserve_len;
  uint64_t page_size;
  uint64_t mem_size;
  unsigned n_regions;
  struct sim_region region[SIM_MAX_REGIONS];
  const uint8_t *expect; /* mapping of the expected image */
  size_t expect_len;
};

/* Results of one restore, summed over --repeat. */
struct sim_result {
  uint64_t pages;
  uint64_t bytes;
  double seconds;
  uint64_t *lat_ns; /* one per first-touch fault */
  size_t n_lat;
  uint64_t mismatches;
  uint64_t zero_checked;
  bool have_first_bad;
  uint64_t first_bad_off;
  unsigned first_bad_region;
};

/* util.c */
int sim_err(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int parse_size(const char *s, uint64_t *out);
int parse_uint(const char *s, uint64_t max, uint64_t *out);
int parse_double(const char *s, double lo, double hi, double *out);
uint64_t splitmix64(uint64_t *state);
uint64_t mix2(uint64_t a, uint64_t b);
double unit_fraction(uint64_t h);
uint64_t now_ns(void);
void sleep_s(double s);

/* mkimage.c */
int cmd_mkimage(int argc, char **argv);
void image_page_fill(uint64_t seed, uint64_t index, uint8_t *page);
bool image_page_is_zero(uint64_t seed, uint64_t index, double zero_percent);

/* vm.c */
int vm_create(struct sim_vm *vm, const struct sim_opts *o);
void vm_destroy(struct sim_vm *vm);
int vm_locate(const struct sim_vm *vm, uint64_t off, unsigned *region);
uint8_t *vm_addr(const struct sim_vm *vm, uint64_t off);

/* balloon.c */
int balloon_check_args(const struct sim_vm *vm, const struct sim_opts *o);

/* handshake.c */
int conn_open(const struct sim_opts *o, int *fd);
int conn_send(int sock, const struct sim_vm *vm, const struct sim_opts *o);
int conn_expect_refused(int sock, double timeout);
/* SIGBUS on guest memory ends the run with SIM_SIGBUS, saying where and
 * how far the restore got (sigbus.c). */
void sigbus_install(void);
bool conn_peer_closed(int sock);

/* uffdkit-sim.c */
extern const char sim_usage[];

/* run.c */
int cmd_run(int argc, char **argv);

/* vcpu.c */
int vcpu_restore(const struct sim_vm *vm, const struct sim_opts *o, int sock,
                 struct sim_result *res);

/* report.c */
void result_add_mismatch(struct sim_result *res, const struct sim_vm *vm,
                         uint64_t off);
void report_print(struct sim_result *res, const struct sim_opts *o);

#endif
