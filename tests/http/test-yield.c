/* The http source's prefetches giving way to demand reads on the wire
 * (plugins/http/yield.c): held while demand reads run, stopped mid-transfer,
 * and let on by releases whose size follows what they cost the demand
 * reads they meet.  Against faulty_server.py (run-unit.sh starts it). */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fakehost.h"
#include "util.h"

static struct inst h;

static void teardown(void) {
  inst_close(&h);
}

struct bg_read {
  uint64_t off, len;
  uint32_t flags;
  int rc, done;
};

static void *bg_reader(void *arg) {
  struct bg_read *b = arg;
  uint8_t *buf = page_alloc(b->len);
  b->rc = h.p->read(h.h, buf, b->len, b->off, b->flags);
  if (b->rc == 0 && mismatch(buf, b->off, b->len, DATA_SEED) >= 0) b->rc = -2;
  free(buf);
  __atomic_store_n(&b->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

static void open_http(const char *const *kv) {
  ck_assert_msg(inst_open(&h, "http", NULL, kv) == 0, "%s",
                fakehost_last_error());
}

static void pause_ms(long ms) {
  nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000}, NULL);
}

/* Starts a demand read of the page at off that the server holds until
 * /_release, and returns once the server has its request. */
static void held_demand(struct bg_read *demand, pthread_t *td, uint64_t off) {
  long before = faulty_requests();
  faulty("mode=delay&seconds=30&count=1");
  *demand = (struct bg_read){.off = off, .len = 4096, .flags = UFK_READ_FAULT};
  pthread_create(td, NULL, bg_reader, demand);
  for (int i = 0; i < 500 && faulty_requests() == before; i++)
    pause_ms(10);
}

/* Waits up to ms for b to be done; whether it is. */
static int done_within(struct bg_read *b, long ms) {
  for (long i = 0; i < ms / 10 && !__atomic_load_n(&b->done, __ATOMIC_ACQUIRE);
       i++)
    pause_ms(10);
  return __atomic_load_n(&b->done, __ATOMIC_ACQUIRE);
}

/* Lets the held demand read go and checks both reads got their bytes. */
static void release_both(struct bg_read *demand, pthread_t td,
                         struct bg_read *pf, pthread_t tp) {
  server_text("FAULTY_URL", "_release");
  pthread_join(td, NULL);
  pthread_join(tp, NULL);
  ck_assert_int_eq(demand->rc, 0);
  ck_assert_int_eq(pf->rc, 0);
}

/* While a demand read is under way, a prefetch is not even sent: its
 * bytes would queue ahead of the demand read's answer on the wire.  The
 * server holds the demand read until /_release; the prefetch goes out
 * only after it. */
START_TEST(prefetches_wait_for_demand_reads) {
  /* held for 20 pauses at most: 4 s */
  const char *kv[] = {faulty_data_kv(), "connections=4", "prefetch_pause=200ms",
                      NULL};
  open_http(kv);
  long before = faulty_requests();
  struct bg_read demand,
      pf = {.off = 1 << 20, .len = 1 << 20, .flags = UFK_READ_PREFETCH};
  pthread_t td, tp;
  held_demand(&demand, &td, 0);
  ck_assert_int_eq(faulty_requests(), before + 1);
  pthread_create(&tp, NULL, bg_reader, &pf);
  pause_ms(300);
  int early = __atomic_load_n(&pf.done, __ATOMIC_ACQUIRE);
  long seen = faulty_requests();
  release_both(&demand, td, &pf, tp);
  ck_assert_msg(!early && seen == before + 1,
                "the prefetch was sent while a demand read was under way");
  ck_assert_uint_ge(counter_now("prefetch_pauses"), 1);
}
END_TEST

/* ...but not for ever: with a demand read held by the server, a held
 * prefetch goes on every 20 pauses (200 ms) in a release of a few bytes,
 * 16 KiB, the least, as each release meets the held demand read running
 * past its time (it never grows): a prefetch of 64 KiB goes out as 4
 * requests of 16 KiB, one per release,
 * and completes.  Replay moves on while a guest faults without a break,
 * but a release never lets a whole receive window onto the wire. */
START_TEST(prefetches_are_held_for_a_while_only) {
  const char *kv[] = {faulty_data_kv(), "connections=4", "prefetch_pause=10ms",
                      NULL};
  open_http(kv);
  long before = faulty_requests();
  struct bg_read demand,
      pf = {.off = 1 << 20, .len = 64 << 10, .flags = UFK_READ_PREFETCH};
  pthread_t td, tp;
  held_demand(&demand, &td, 0);
  pthread_create(&tp, NULL, bg_reader, &pf);
  int done = done_within(&pf, 10000);
  int held = !__atomic_load_n(&demand.done, __ATOMIC_ACQUIRE);
  long requests = faulty_requests() - before;
  release_both(&demand, td, &pf, tp);
  ck_assert_msg(done && held, "the prefetch waited for the demand read to "
                              "end (10 s)");
  ck_assert_msg(requests == 5 && counter_now("prefetch_releases") == 4,
                "64 KiB went out in %ld requests and %llu releases, not 4 "
                "of 16 KiB",
                requests - 1,
                (unsigned long long)counter_now("prefetch_releases"));
}
END_TEST

static long faulty_sent(void) {
  const char *p = strstr(server_text("FAULTY_URL", "_stats"), "\"sent\":");
  ck_assert_ptr_nonnull(p);
  return strtol(p + 7, NULL, 10);
}

/* A trickled 8 MiB prefetch under way (64 KiB in), then a demand read the
 * server holds until /_release, its request seen by the server. */
static void trickle_then_held_demand(const char *const *kv, struct bg_read *pf,
                                     struct bg_read *demand, pthread_t *tp,
                                     pthread_t *td) {
  open_http(kv);
  faulty("mode=trickle&count=1");
  *pf = (struct bg_read){.off = 0, .len = 8 << 20, .flags = UFK_READ_PREFETCH};
  pthread_create(tp, NULL, bg_reader, pf);
  for (int i = 0; i < 500 && faulty_sent() < 65536; i++)
    pause_ms(10);
  held_demand(demand, td, 4 << 20);
}

/* A prefetch transfer already under way stops reading while a demand read
 * is (its window closes, so the server's writes stop): the server trickles
 * the prefetch's body, 16 KiB every 5 ms, and holds the demand read until
 * /_release; once the buffers on the way are full (256 KiB each end,
 * windows above loopback's 64 KiB segments), nothing more goes out. */
START_TEST(prefetch_transfers_stop_for_demand_reads) {
  const char *kv[] = {faulty_data_kv(), "connections=4", "prefetch_window=256K",
                      "prefetch_pause=200ms", NULL};
  struct bg_read pf, demand;
  pthread_t td, tp;
  trickle_then_held_demand(kv, &pf, &demand, &tp, &td);
  pause_ms(400); /* buffers fill */
  long s1 = faulty_sent();
  pause_ms(500);
  long s2 = faulty_sent();
  release_both(&demand, td, &pf, tp);
  ck_assert_msg(s1 < (8 << 20) && s2 - s1 < (256 << 10),
                "the prefetch went on while a demand read was under way: "
                "%ld bytes sent in 0.5 s (%ld before)",
                s2 - s1, s1);
}
END_TEST

/* A prefetch transfer stopped for a demand read goes on in releases too
 * (every 200 ms here), by 16 KiB each, not to its end: while the demand
 * read is held, 1.5 s of trickle (16 KiB every 5 ms) would send 4.8 MiB,
 * releases let through about 8 of 16 KiB beyond the buffers on the way. */
START_TEST(stopped_transfers_go_on_by_releases) {
  const char *kv[] = {faulty_data_kv(), "connections=4", "prefetch_window=256K",
                      "prefetch_pause=10ms", NULL};
  struct bg_read pf, demand;
  pthread_t td, tp;
  trickle_then_held_demand(kv, &pf, &demand, &tp, &td);
  long s1 = faulty_sent();
  uint64_t r1 = counter_now("prefetch_releases");
  pause_ms(1500);
  long s2 = faulty_sent();
  uint64_t r2 = counter_now("prefetch_releases");
  release_both(&demand, td, &pf, tp);
  ck_assert_msg(s2 - s1 <= (long)(r2 - r1 + 1) * (16 << 10) + (1 << 20),
                "%ld bytes sent in %llu releases", s2 - s1,
                (unsigned long long)(r2 - r1));
  ck_assert_msg(r2 > r1, "no release while the demand read was held");
}
END_TEST

/* Demand reads that keep coming and are served at once (a guest faulting
 * without a break on a fast link): releases they are not delayed by
 * double, so a prefetch of 4 MiB held by them is in within a few seconds
 * (16, 32, 64 KiB ... one release per 200 ms), where releases of 16 KiB
 * would take 51 s. */
struct faulter {
  int stop, rc;
  long reads;
};

static void *fault_on(void *arg) {
  struct faulter *f = arg;
  uint8_t *buf = page_alloc(4096);
  for (uint64_t i = 0; !__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE); i++) {
    uint64_t off = (6u << 20) + (i % 256) * 4096;
    if (h.p->read(h.h, buf, 4096, off, UFK_READ_FAULT) < 0 ||
        mismatch(buf, off, 4096, DATA_SEED) >= 0)
      f->rc = -1;
    f->reads++;
  }
  free(buf);
  return NULL;
}

START_TEST(releases_grow_while_they_delay_nothing) {
  const char *kv[] = {faulty_data_kv(), "connections=4", "prefetch_pause=10ms",
                      NULL};
  open_http(kv);
  struct faulter f = {0};
  struct bg_read pf = {.off = 0, .len = 4 << 20, .flags = UFK_READ_PREFETCH};
  pthread_t tf, tp;
  pthread_create(&tf, NULL, fault_on, &f);
  pause_ms(50);
  pthread_create(&tp, NULL, bg_reader, &pf);
  int done = done_within(&pf, 30000);
  __atomic_store_n(&f.stop, 1, __ATOMIC_RELEASE);
  pthread_join(tf, NULL);
  pthread_join(tp, NULL);
  uint64_t releases = counter_now("prefetch_releases");
  ck_assert_int_eq(f.rc, 0);
  ck_assert_int_eq(pf.rc, 0);
  ck_assert_msg(done,
                "4 MiB of prefetch not in after 30 s of demand reads "
                "(%llu releases)",
                (unsigned long long)releases);
  ck_assert_msg(releases >= 2 && f.reads > 100,
                "the prefetch was not held (%llu releases, %ld demand reads)",
                (unsigned long long)releases, f.reads);
}
END_TEST

int main(void) {
  Suite *s = suite_create("http-yield");
  TCase *tc = tcase_create("yield");
  tcase_set_timeout(tc, 90);
  tcase_add_checked_fixture(tc, faulty_reset, teardown);
  tcase_add_test(tc, prefetches_wait_for_demand_reads);
  tcase_add_test(tc, prefetch_transfers_stop_for_demand_reads);
  tcase_add_test(tc, prefetches_are_held_for_a_while_only);
  tcase_add_test(tc, stopped_transfers_go_on_by_releases);
  tcase_add_test(tc, releases_grow_while_they_delay_nothing);
  suite_add_tcase(s, tc);
  return run_suite(s);
}
