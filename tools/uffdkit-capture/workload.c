/* Workloads started by the tool so that benchmark images are reproducible:
 * a Python interpreter and a node process that keep allocating and changing
 * objects, and nginx serving files on loopback to requests from this tool.
 * Everything lives in a temporary directory removed at the end. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "capture.h"

/* Imports much of the standard library, builds a data set (dicts, strings,
 * an in-memory SQLite table), then keeps replacing and adding records. */
static const char python_script[] =
    "import random, sys, time\n"
    "for m in ('json re collections decimal fractions datetime email.parser "
    "http.client urllib.parse xml.etree.ElementTree xml.dom.minidom sqlite3 "
    "asyncio logging argparse csv hashlib base64 zlib gzip tarfile zipfile "
    "pathlib tempfile textwrap string struct heapq bisect itertools "
    "functools statistics unittest doctest pydoc inspect ast dis tokenize "
    "difflib pprint configparser pickle copy uuid ipaddress socket "
    "selectors ssl threading concurrent.futures subprocess shutil glob "
    "calendar html.parser http.server xmlrpc.client smtplib imaplib "
    "mailbox mimetypes unicodedata dataclasses enum typing contextlib "
    "decimal secrets hmac queue').split():\n"
    "    __import__(m)\n"
    "import json, sqlite3\n"
    "rnd = random.Random(1)\n"
    "def rec(i):\n"
    "    return {'id': i, 'name': 'user%d' % i, 'score': rnd.random(),\n"
    "            'tags': [rnd.choice(('a', 'b', 'ops', 'dev', 'eu', 'us'))\n"
    "                     for _ in range(rnd.randrange(1, 6))],\n"
    "            'note': ' '.join(rnd.choice(dir(json)) for _ in range(8))}\n"
    "recs = [rec(i) for i in range(60000)]\n"
    "db = sqlite3.connect(':memory:')\n"
    "db.execute('create table t (id integer primary key, doc text)')\n"
    "db.executemany('insert into t values (?, ?)',\n"
    "               ((r['id'], json.dumps(r)) for r in recs))\n"
    "print('ready', flush=True)\n"
    "n = len(recs)\n"
    "while True:\n"
    "    for _ in range(300):\n"
    "        recs[rnd.randrange(len(recs))] = rec(n); n += 1\n"
    "    if len(recs) < 120000:\n"
    "        recs.extend(rec(n + i) for i in range(200)); n += 200\n"
    "    db.executemany('insert or replace into t values (?, ?)',\n"
    "        ((r['id'] % 100000, json.dumps(r)) for r in recs[-100:]))\n"
    "    time.sleep(0.05)\n";

static const char node_script[] =
    "const zlib = require('zlib'), crypto = require('crypto');\n"
    "const http = require('http'), url = require('url'), util = "
    "require('util');\n"
    "let seed = 1;\n"
    "const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) /"
    " 2147483648;\n"
    "const words = Object.keys(util).concat(Object.keys(zlib));\n"
    "const rec = (i) => ({id: i, name: 'user' + i, score: rnd(),\n"
    "  tags: Array.from({length: 1 + Math.floor(rnd() * 5)},\n"
    "    () => words[Math.floor(rnd() * words.length)]),\n"
    "  note: words.slice(0, 8).join(' ') + i});\n"
    "const recs = [];\n"
    "for (let i = 0; i < 60000; i++) recs.push(rec(i));\n"
    "const index = new Map(recs.map((r) => [r.name, r]));\n"
    "let n = recs.length;\n"
    "console.log('ready');\n"
    "setInterval(() => {\n"
    "  for (let k = 0; k < 300; k++) {\n"
    "    const r = rec(n++);\n"
    "    recs[Math.floor(rnd() * recs.length)] = r;\n"
    "    index.set(r.name, r);\n"
    "  }\n"
    "  if (recs.length < 120000) for (let k = 0; k < 200; k++) "
    "recs.push(rec(n++));\n"
    "  if (index.size > 150000) index.clear();\n"
    "  JSON.stringify(recs.slice(-100));\n"
    "}, 50);\n";

struct workload {
  char dir[64];
  pid_t pid;
  int port;
  CURL *curl;
  unsigned requests;
};

static pid_t spawn(char *const argv[], int *out) {
  int p[2] = {-1, -1};
  if (out && pipe2(p, O_CLOEXEC) < 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive an interrupted run */
    if (out) dup2(p[1], STDOUT_FILENO);
    execvp(argv[0], argv);
    fprintf(stderr, "uffdkit-capture: cannot run %s: %s\n", argv[0],
            strerror(errno));
    _exit(127);
  }
  if (out) {
    close(p[1]);
    *out = p[0];
  }
  return pid;
}

/* Waits for the line "ready" the scripts print once their data is built. */
static int wait_ready(int fd, const char *what) {
  char buf[64];
  size_t len = 0;
  struct pollfd pfd = {.fd = fd, .events = POLLIN};
  while (len < sizeof(buf) - 1 && !cap_interrupted) {
    if (poll(&pfd, 1, 300000) <= 0) break;
    ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
    if (n <= 0) break;
    len += (size_t)n;
    buf[len] = '\0';
    if (strstr(buf, "ready\n")) return 0;
  }
  fprintf(stderr, "uffdkit-capture: the %s workload did not start\n", what);
  return -1;
}

static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  int port = -1;
  if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof(a)) == 0 &&
      getsockname(s, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  if (s >= 0) close(s);
  return port;
}

static int write_file(const char *dir, const char *name, const char *text,
                      size_t repeat) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  FILE *f = fopen(path, "we");
  if (!f) return -1;
  for (size_t i = 0; i < repeat; i++)
    fprintf(f, "%s %zu\n", text, i);
  return fclose(f);
}

static int nginx_files(struct workload *w) {
  char html[128], conf[128];
  snprintf(html, sizeof(html), "%s/html", w->dir);
  snprintf(conf, sizeof(conf), "%s/nginx.conf", w->dir);
  FILE *f = mkdir(html, 0755) == 0 ? fopen(conf, "we") : NULL;
  if (!f) return -1;
  fprintf(f,
          "daemon off;\nworker_processes 1;\npid %s/nginx.pid;\n"
          "error_log %s/error.log;\nevents {}\nhttp {\n"
          "  access_log %s/access.log;\n  client_body_temp_path %s/tmp;\n"
          "  proxy_temp_path %s/tmp;\n  fastcgi_temp_path %s/tmp;\n"
          "  uwsgi_temp_path %s/tmp;\n  scgi_temp_path %s/tmp;\n"
          "  server { listen 127.0.0.1:%d; root %s; }\n}\n",
          w->dir, w->dir, w->dir, w->dir, w->dir, w->dir, w->dir, w->dir,
          w->port, html);
  if (fclose(f) != 0) return -1;
  return write_file(html, "index.html", "<p>uffdkit capture</p>", 40) |
         write_file(html, "data.txt", "a line of a served file", 4000) |
         write_file(html, "big.txt", "a line of a bigger served file", 40000);
}

static size_t discard(char *p, size_t s, size_t n, void *u) {
  (void)p, (void)u;
  return s * n;
}

static int nginx_get(struct workload *w) {
  static const char *const paths[] = {"", "index.html", "data.txt", "big.txt",
                                      "missing"};
  char url[96];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", w->port,
           paths[w->requests++ % 5]);
  curl_easy_setopt(w->curl, CURLOPT_URL, url);
  return curl_easy_perform(w->curl) == CURLE_OK ? 0 : -1;
}

/* The nginx workload runs on when it is asked: requests through the
 * interval.  The interpreters work on by themselves. */
static void run_on(void *arg, double seconds) {
  struct workload *w = arg;
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  do {
    if (w->curl) {
      nginx_get(w);
      cap_sleep(0.01);
    } else {
      cap_sleep(seconds);
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
  } while (!cap_interrupted &&
           (t.tv_sec - t0.tv_sec) + (t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
}

static int start_nginx(struct workload *w, struct capture_opts *o) {
  char conf[160], err[160];
  w->port = free_port();
  if (w->port < 0 || nginx_files(w) < 0) {
    fprintf(stderr, "uffdkit-capture: cannot set up nginx in %s\n", w->dir);
    return -1;
  }
  snprintf(conf, sizeof(conf), "%s/nginx.conf", w->dir);
  snprintf(err, sizeof(err), "%s/error.log", w->dir);
  char *argv[] = {"nginx", "-e", err, "-p", w->dir, "-c", conf, NULL};
  if ((w->pid = spawn(argv, NULL)) < 0 || add_pid(o, w->pid) < 0) return -1;
  w->curl = curl_easy_init();
  curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(w->curl, CURLOPT_TIMEOUT, 10L);
  for (int i = 0; nginx_get(w) < 0; i++) {
    if (i == 300 || cap_interrupted || waitpid(w->pid, NULL, WNOHANG) != 0) {
      fprintf(stderr, "uffdkit-capture: nginx did not start (see %s)\n", err);
      return -1;
    }
    cap_sleep(0.1);
  }
  for (int i = 0; i < 50; i++)
    nginx_get(w);
  /* The worker holds the connections and their buffers: capture it too. */
  char path[96];
  snprintf(path, sizeof(path), "/proc/%d/task/%d/children", w->pid, w->pid);
  FILE *f = fopen(path, "re");
  int child;
  while (f && fscanf(f, "%d", &child) == 1)
    add_pid(o, child);
  if (f) fclose(f);
  return 0;
}

static int start(struct workload *w, const char *kind, struct capture_opts *o) {
  int fd = -1, rc;
  if (!strcmp(kind, "nginx")) return start_nginx(w, o);
  char *py[] = {"python3", "-c", (char *)python_script, NULL};
  char *js[] = {"node", "-e", (char *)node_script, NULL};
  char **argv = !strcmp(kind, "python") ? py : js;
  if ((w->pid = spawn(argv, &fd)) < 0 || add_pid(o, w->pid) < 0) return -1;
  rc = wait_ready(fd, kind);
  close(fd);
  return rc;
}

static int rm_entry(const char *path, const struct stat *st, int type,
                    struct FTW *ftw) {
  (void)st, (void)type, (void)ftw;
  return remove(path);
}

static void stop(struct workload *w) {
  if (w->pid > 0) {
    kill(w->pid, SIGCONT);
    kill(w->pid, SIGTERM);
    waitpid(w->pid, NULL, 0);
  }
  if (w->curl) curl_easy_cleanup(w->curl);
  nftw(w->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int cmd_workload(int argc, char **argv) {
  struct cli c;
  int rc = parse_cli(argc, argv, &c);
  if (rc != 0) return rc;
  if (!c.arg || (strcmp(c.arg, "python") && strcmp(c.arg, "node") &&
                 strcmp(c.arg, "nginx"))) {
    fprintf(stderr, "uffdkit-capture: workload is python, node or nginx%s%s\n",
            c.arg ? ", not " : "", c.arg ? c.arg : "");
    return 2;
  }
  struct workload w = {.dir = "/tmp/uffdkit-capture.XXXXXX"};
  if (!mkdtemp(w.dir)) {
    fprintf(stderr, "uffdkit-capture: mkdtemp: %s\n", strerror(errno));
    return 1;
  }
  rc = start(&w, c.arg, &c.o) < 0
           ? 1
           : capture_generations(&c.o, c.out, c.prev, c.gens, c.interval,
                                 run_on, &w);
  stop(&w);
  free(c.o.pids);
  return rc;
}
