/* netdelay: a fixed delay for the packets an iptables NFQUEUE rule hands to
 * queue QUEUE, for kernels without netem (bench/cold):
 *
 *   netdelay QUEUE DELAY_US [MAX_PACKETS]
 *
 * Each packet gets its ACCEPT verdict DELAY_US after it reached us, in
 * arrival order (one delay for all, so first in is first out and nothing
 * is reordered).  Verdicts go by packet id, and a batch verdict for the
 * newest due id releases every older one, so a timer expiry costs one
 * message however many packets fell due.  GSO packets are taken whole
 * (NFQA_CFG_F_GSO): the kernel does not segment them for us.  At most
 * MAX_PACKETS (default 8192) wait at once; the kernel drops beyond that,
 * as a router's full queue would.  Prints "ready" once bound; on SIGTERM or
 * SIGINT releases what it holds and exits 0, with its counts on stderr. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <libnetfilter_queue/libnetfilter_queue.h>

struct held {
  uint32_t id;
  uint64_t due_ns;
};

struct delay {
  struct nfq_q_handle *qh;
  uint64_t delay_ns;
  struct held *ring;
  uint32_t cap, head, n;
  uint32_t last_id; /* the newest id seen, valid when seen */
  int seen, timer, armed;
  uint64_t packets, dropped, max_held;
};

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "netdelay: %s: %s\n", what, strerror(errno));
  exit(1);
}

/* The timer fires when the oldest held packet falls due. */
static void arm(struct delay *d) {
  struct itimerspec its = {0};
  if (d->n) {
    uint64_t due = d->ring[d->head].due_ns;
    its.it_value.tv_sec = (time_t)(due / 1000000000u);
    its.it_value.tv_nsec = (long)(due % 1000000000u);
  }
  if (timerfd_settime(d->timer, TFD_TIMER_ABSTIME, &its, NULL) < 0)
    die("timerfd_settime");
  d->armed = d->n > 0;
}

static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg,
                     struct nfq_data *nfa, void *opaque) {
  (void)msg;
  struct delay *d = opaque;
  struct nfqnl_msg_packet_hdr *ph = nfq_get_msg_packet_hdr(nfa);
  if (!ph) return 0;
  uint32_t id = ntohl(ph->packet_id);
  d->packets++;
  if (d->n == d->cap) {
    /* Only if messages were lost while the kernel still held packets. */
    d->dropped++;
    return nfq_set_verdict(qh, id, NF_DROP, 0, NULL) < 0 ? -1 : 0;
  }
  d->ring[(d->head + d->n) % d->cap] =
      (struct held){id, now_ns() + d->delay_ns};
  d->n++;
  d->last_id = id;
  d->seen = 1;
  if (d->n > d->max_held) d->max_held = d->n;
  if (!d->armed) arm(d);
  return 0;
}

/* Releases every held packet due by t (all of them for UINT64_MAX). */
static void release(struct delay *d, uint64_t t) {
  uint32_t k = 0, id = 0;
  while (k < d->n && d->ring[(d->head + k) % d->cap].due_ns <= t) {
    id = d->ring[(d->head + k) % d->cap].id;
    k++;
  }
  if (k && nfq_set_verdict_batch(d->qh, id, NF_ACCEPT) < 0)
    die("nfq_set_verdict_batch");
  d->head = (d->head + k) % d->cap;
  d->n -= k;
  arm(d);
}

static void drain_socket(struct nfq_handle *h, int fd, char *buf, size_t len) {
  for (;;) {
    ssize_t r = recv(fd, buf, len, MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (r < 0 && (errno == EINTR || errno == ENOBUFS)) continue;
    if (r < 0) die("recv");
    nfq_handle_packet(h, buf, (int)r);
  }
}

static struct nfq_handle *open_queue(struct delay *d, unsigned num,
                                     uint32_t maxlen) {
  struct nfq_handle *h = nfq_open();
  if (!h) die("nfq_open");
  d->qh = nfq_create_queue(h, (uint16_t)num, on_packet, d);
  if (!d->qh) die("nfq_create_queue (is another netdelay bound to it?)");
  /* Metadata only: verdicts never carry the payload back. */
  if (nfq_set_mode(d->qh, NFQNL_COPY_META, 0) < 0) die("nfq_set_mode");
  if (nfq_set_queue_maxlen(d->qh, maxlen) < 0) die("nfq_set_queue_maxlen");
  if (nfq_set_queue_flags(d->qh, NFQA_CFG_F_GSO, NFQA_CFG_F_GSO) < 0)
    die("nfq_set_queue_flags (GSO)");
  int fd = nfq_fd(h), size = 16 << 20, one = 1;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  /* A lost message is recovered by the next batch verdict, which covers
   * every older id. */
  setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof one);
  return h;
}

static int signal_fd(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  if (sigprocmask(SIG_BLOCK, &set, NULL) < 0) die("sigprocmask");
  int fd = signalfd(-1, &set, SFD_CLOEXEC);
  if (fd < 0) die("signalfd");
  return fd;
}

static unsigned long arg(const char *s, const char *what, unsigned long max) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || *end || end == s || v > max) {
    fprintf(stderr, "netdelay: %s '%s' is not a number up to %lu\n", what, s,
            max);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: netdelay QUEUE DELAY_US [MAX_PACKETS]\n");
    return 2;
  }
  struct delay d = {0};
  unsigned num = (unsigned)arg(argv[1], "QUEUE", 65535);
  d.delay_ns = arg(argv[2], "DELAY_US", 10000000) * 1000u;
  d.cap = argc > 3 ? (uint32_t)arg(argv[3], "MAX_PACKETS", 1u << 20) : 8192;
  if (d.cap == 0) d.cap = 1;
  d.ring = calloc(d.cap, sizeof *d.ring);
  if (!d.ring) die("calloc");
  int sig = signal_fd();
  d.timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  if (d.timer < 0) die("timerfd_create");
  struct nfq_handle *h = open_queue(&d, num, d.cap);
  printf("ready\n");
  fflush(stdout);
  static char buf[1 << 16];
  struct pollfd p[3] = {{.fd = nfq_fd(h), .events = POLLIN},
                        {.fd = d.timer, .events = POLLIN},
                        {.fd = sig, .events = POLLIN}};
  while (!(p[2].revents & POLLIN)) {
    if (poll(p, 3, -1) < 0 && errno != EINTR) die("poll");
    if (p[0].revents & POLLIN) drain_socket(h, p[0].fd, buf, sizeof buf);
    if (p[1].revents & POLLIN) {
      uint64_t ticks;
      if (read(d.timer, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
        die("read timerfd");
      release(&d, now_ns());
    }
  }
  /* Nothing held is lost: the newest id releases every older one. */
  if (d.seen && nfq_set_verdict_batch(d.qh, d.last_id, NF_ACCEPT) < 0)
    die("nfq_set_verdict_batch");
  nfq_destroy_queue(d.qh);
  nfq_close(h);
  fprintf(stderr,
          "netdelay: queue %u, %" PRIu64 " packets, %" PRIu64
          " dropped, at most %" PRIu64 " held at once\n",
          num, d.packets, d.dropped, d.max_held);
  free(d.ring);
  return 0;
}
