#!/usr/bin/env bash
# Soak test: one daemon, SOAK_VMS simulated VMs restoring over and over for
# DURATION, with balloon discards, malformed handshakes and peers that
# allow_uids refuses mixed in.  The daemon's memory and descriptors are
# sampled throughout and must stay flat.  Not part of the default ctest run:
#   tests/soak/soak.sh BUILD_DIR [DURATION]      DURATION: 600 (default),
#                                                 90s, 2m, 10m ...
# Needs root (userfaultfd, setpriv) and python3.  Tunables (environment):
#   SOAK_VMS (32) SOAK_VCPUS (2) SOAK_IMAGE_MB (64: listener a, twice that
#   for b) SOAK_SAMPLE (seconds between samples, 5) SOAK_RSS_MARGIN (percent,
#   10) SOAK_ANON_SLACK_MB (anonymous memory allowed above that margin, 4)
#   SOAK_FD_MARGIN (descriptors, 8) SOAK_CHECK_RSS (1; 0 under sanitizers)
#   SOAK_SIM_TIMEOUT (seconds, 300) SOAK_KEEP (a directory that receives the
#   samples, the report and the logs).
# See docs/soak.md.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:?usage: soak.sh BUILD_DIR [DURATION]}" && pwd)
DURATION=${2:-600}
case $DURATION in
*m) DURATION=$((${DURATION%m} * 60)) ;;
*s) DURATION=${DURATION%s} ;;
esac
[[ $DURATION =~ ^[0-9]+$ ]] && [ "$DURATION" -ge 20 ] || {
  echo "soak: DURATION must be at least 20 seconds (N, Ns or Nm)" >&2
  exit 2
}
VMS=${SOAK_VMS:-32}
VCPUS=${SOAK_VCPUS:-2}
IMAGE_MB=${SOAK_IMAGE_MB:-64}
SAMPLE=${SOAK_SAMPLE:-5}
RSS_MARGIN=${SOAK_RSS_MARGIN:-10}
ANON_SLACK_MB=${SOAK_ANON_SLACK_MB:-4}
FD_MARGIN=${SOAK_FD_MARGIN:-8}
CHECK_RSS=${SOAK_CHECK_RSS:-1}
SIM_TIMEOUT=${SOAK_SIM_TIMEOUT:-300}
UFFDKIT=$BUILD/bin/uffdkit
SIM=$BUILD/bin/uffdkit-sim
NOBODY=65534

if [ "$(id -u)" -ne 0 ]; then
  echo "soak: needs root (userfaultfd for the simulators, setpriv)" >&2
  exit 77
fi
for b in "$UFFDKIT" "$SIM"; do
  [ -x "$b" ] || {
    echo "soak: $b is not built" >&2
    exit 2
  }
done
# The refused peers run as nobody, who cannot use a python3 under /root.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || {
  echo "soak: python3 is needed" >&2
  exit 77
}
command -v setpriv >/dev/null || {
  echo "soak: setpriv (util-linux) is needed" >&2
  exit 77
}

TMP=$(mktemp -d --suffix=-uffdkit-soak)
chmod 755 "$TMP" # the refused peers, as nobody, reach the sockets
DAEMON=
SAMPLER=
SLOTS=()
STATUS=1

cleanup() {
  local pid
  for pid in "${SLOTS[@]}" $SAMPLER; do
    pkill -TERM -P "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
  done
  if [ -n "$DAEMON" ] && kill -0 "$DAEMON" 2>/dev/null; then
    kill -TERM "$DAEMON" 2>/dev/null || true
    wait "$DAEMON" 2>/dev/null || true
  fi
  if [ -n "${SOAK_KEEP:-}" ]; then
    mkdir -p "$SOAK_KEEP"
    cp "$TMP"/*.csv "$TMP"/*.log "$TMP"/*.txt "$SOAK_KEEP"/ 2>/dev/null ||
      true
  fi
  if [ $STATUS -ne 0 ] && [ -f "$TMP/daemon.log" ]; then
    echo "---- last lines of the daemon log" >&2
    tail -n 30 "$TMP/daemon.log" >&2
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "soak: FAIL: $*" >&2
  exit 1
}

# ---- images, config, daemon ----

"$SIM" mkimage "$TMP/a.img" --size "${IMAGE_MB}M" --seed 11 \
  --zero-percent 10 >/dev/null
"$SIM" mkimage "$TMP/b.img" --size "$((IMAGE_MB * 2))M" --seed 22 \
  --zero-percent 25 >/dev/null
chmod 644 "$TMP/a.img" "$TMP/b.img"
install -m 644 "$HERE/intruder.py" "$TMP/intruder.py"

# b admits root only; nobody reaches its socket (0666) and must be refused.
cat >"$TMP/soak.conf" <<EOF
uffdkit = { control_socket = "$TMP/control.sock"; };
listeners = (
  { name = "a"; socket = "$TMP/a.sock";
    source = { plugin = "mmap"; path = "$TMP/a.img"; }; },
  { name = "b"; socket = "$TMP/b.sock"; socket_mode = "0666";
    allow_uids = [ 0 ];
    source = { plugin = "mmap"; path = "$TMP/b.img"; }; }
);
EOF

# Malformed handshakes, each refused for a different reason; "truncated"
# waits for the handshake timeout (5 s) before it is refused.
printf 'not json at all' >"$TMP/bad-notjson"
printf '[{"base_host_virt_addr":4096,"size":4096}]' >"$TMP/bad-missing"
printf '[{"base_host_virt_addr":4096,"size":8192,"offset":0},'\
'{"base_host_virt_addr":8192,"size":4096,"offset":8192}]' >"$TMP/bad-overlap"
printf '[{"base_host_virt_addr":4097,"size":4096,"offset":0}]' \
  >"$TMP/bad-unaligned"
printf '[{"base_host_virt_addr":4096,"size":4096,"offset":0,"page_size":512}]' \
  >"$TMP/bad-pagesize"
printf '[{"base_host_virt_addr":4096,"size":' >"$TMP/bad-truncated"
printf '[{"base_host_virt_addr":4096,"size":4096,"offset":0}]' >"$TMP/nofd"
{
  printf '['
  head -c 70000 /dev/zero | tr '\0' ' '
} >"$TMP/bad-toolong"
BAD=(notjson missing overlap unaligned pagesize truncated toolong nofd)

"$UFFDKIT" --config "$TMP/soak.conf" >"$TMP/daemon.log" 2>&1 &
DAEMON=$!
for _ in $(seq 200); do
  [ -S "$TMP/a.sock" ] && [ -S "$TMP/b.sock" ] &&
    grep -q "worker .* ready" "$TMP/daemon.log" && break
  kill -0 "$DAEMON" 2>/dev/null || fail "the daemon exited at start"
  sleep 0.1
done
grep -q "worker .* ready" "$TMP/daemon.log" || fail "the worker never got ready"
WORKER=$(pgrep -P "$DAEMON" | head -n 1)
[ -n "$WORKER" ] || fail "no worker process under $DAEMON"

# ---- sampling ----

kb() { # kb PID FIELD: a /proc/PID/status field in kB, 0 if gone
  local v
  v=$(awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null ||
    true)
  echo "${v:-0}"
}
fdinfo() { # fdinfo PID: "FDS,UFFDS" from one listing of /proc/PID/fd, so
  # both counts describe the same instant (each userfaultfd is a session)
  # (find fails when a descriptor closes while it reads the links)
  { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 -printf '%l\n' 2>/dev/null ||
    true; } | awk '{ n++ } /userfaultfd/ { u++ } END { printf "%d,%d", n, u }'
}
nuffds() { # nuffds PID
  fdinfo "$1" | cut -d, -f2
}
sample() { # one CSV line
  local w s f
  w=$(pgrep -P "$DAEMON" | head -n 1 || true)
  w=${w:-0}
  s=$(fdinfo "$DAEMON")
  f=$(fdinfo "$w")
  echo "$(($(date +%s) - START)),$(kb "$DAEMON" VmRSS),$(kb "$DAEMON" RssAnon),$(kb "$w" VmRSS),$(kb "$w" RssAnon),${s%,*},${f%,*},${s#*,},${f#*,},$w"
}
HEADER="t,sup_rss_kb,sup_anon_kb,wrk_rss_kb,wrk_anon_kb,sup_fds,wrk_fds,sup_uffds,wrk_uffds,worker_pid"

# wait_idle: until no process of the daemon holds a session (30 s at most).
wait_idle() {
  local w
  for _ in $(seq 300); do
    w=$(pgrep -P "$DAEMON" | head -n 1 || true)
    [ "$(nuffds "$DAEMON")" -eq 0 ] && [ "$(nuffds "${w:-0}")" -eq 0 ] &&
      return 0
    sleep 0.1
  done
  fail "sessions still open 30 s after every VM exited"
}

# ---- one simulated VM at a time per slot ----

# restore SLOT ITER: one restore; appends "restore RC PAGES MISMATCHES
# ZERO_CHECKED" to the slot's result file.
restore() {
  local i=$1 k=$2 l img args rc=0 out
  if (((i + k) % 2)); then l=b img=$TMP/b.img; else l=a img=$TMP/a.img; fi
  local styles=(1.1 1.7 1.12) orders=(seq random stride:7)
  args=(--style "${styles[k % 3]}" --regions $((1 + (i + k) % 4))
    --order "${orders[(i + 2 * k) % 3]}" --touch-percent $((k % 2 ? 50 : 100))
    --seed $((i * 1000 + k)))
  if ((i % 4 == 1 && k % 2 == 0)); then
    args+=(--balloon "$((k % 4 * 8))M:8M" --balloon-during)
  elif ((i % 4 == 3 && k % 3 == 0)); then
    args+=(--balloon "$((IMAGE_MB / 2))M:4M" --balloon 4M:1M)
  elif ((k % 3 == 0)); then
    args+=(--no-remove-event) # Firecracker 1.1 to 1.11 without a balloon
  fi
  out=$("$SIM" run --socket "$TMP/$l.sock" --image "$img" --vcpus "$VCPUS" \
    --json --timeout "$SIM_TIMEOUT" "${args[@]}" 2>"$TMP/slot-$i.err") || rc=$?
  if [ $rc -ne 0 ]; then
    {
      echo "slot $i iteration $k: uffdkit-sim run on $l ${args[*]}: exit $rc"
      echo "$out"
      cat "$TMP/slot-$i.err"
    } >>"$TMP/failures.log"
  fi
  echo "restore $rc $(sed -E 's/.*"pages":([0-9]+).*"mismatches":([0-9]+),"zero_checked":([0-9]+).*/\1 \2 \3/' <<<"${out:-x}")"
}

# malformed SLOT ITER: a bad handshake the daemon must refuse; each slot
# goes through every kind on both listeners.
malformed() {
  local i=$1 k=$2 j=$((($1 + $2) / 12)) l rc=0 args=()
  local bad=${BAD[(i + j) % ${#BAD[@]}]}
  if (((i + j / ${#BAD[@]}) % 2)); then l=b; else l=a; fi
  local file=$TMP/bad-$bad
  if [ "$bad" = nofd ]; then
    file=$TMP/nofd
    args=(--no-fd)
  fi
  "$SIM" run --socket "$TMP/$l.sock" --image "$TMP/a.img" --mem-size 1M \
    --raw-handshake "$file" "${args[@]}" \
    --expect-refused --timeout 20 >/dev/null 2>"$TMP/slot-$i.err" || rc=$?
  if [ $rc -ne 0 ]; then
    {
      echo "slot $i iteration $k: malformed handshake $bad on $l: exit $rc"
      cat "$TMP/slot-$i.err"
    } >>"$TMP/failures.log"
  fi
  echo "malformed $rc"
}

# intruder SLOT ITER: a well-formed handshake from nobody, whom b refuses.
intruder() {
  local i=$1 k=$2 rc=0
  setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups \
    "$PY" "$TMP/intruder.py" "$TMP/b.sock" 5 2>"$TMP/slot-$i.err" || rc=$?
  if [ $rc -ne 0 ]; then
    {
      echo "slot $i iteration $k: intruder on b: exit $rc"
      cat "$TMP/slot-$i.err"
    } >>"$TMP/failures.log"
  fi
  echo "intruder $rc"
}

slot() {
  local i=$1 k=0
  while [ "$(date +%s)" -lt "$END" ]; do
    case $(((i + k) % 12)) in
    5) malformed "$i" "$k" ;;
    11) intruder "$i" "$k" ;;
    *) restore "$i" "$k" ;;
    esac
    k=$((k + 1))
  done >"$TMP/slot-$i.res"
}

# ---- warm up, measure what one session costs, run ----

START=$(date +%s)
END=$((START + 3600)) # not used before the run starts
for l in a b; do
  "$SIM" run --socket "$TMP/$l.sock" --image "$TMP/$l.img" --vcpus "$VCPUS" \
    --timeout "$SIM_TIMEOUT" >/dev/null || fail "warm-up restore on $l"
done
wait_idle
echo "$HEADER" >"$TMP/idle.csv"
sample >>"$TMP/idle.csv"
# One VM held open: the descriptors one session costs in each process.
"$SIM" run --socket "$TMP/a.sock" --image "$TMP/a.img" --touch-percent 1 \
  --hold 30 >/dev/null 2>&1 &
HELD=$!
for _ in $(seq 200); do
  [ "$(nuffds "$DAEMON")" -eq 1 ] && [ "$(nuffds "$WORKER")" -eq 1 ] && break
  sleep 0.05
done
sleep 0.5
sample >>"$TMP/idle.csv"
kill -TERM "$HELD" 2>/dev/null || true
wait "$HELD" 2>/dev/null || true
wait_idle

echo "soak: $VMS VMs x $VCPUS vCPUs for ${DURATION}s on listeners a" \
  "(${IMAGE_MB} MiB) and b ($((IMAGE_MB * 2)) MiB); $(nproc) CPUs," \
  "kernel $(uname -r)"
START=$(date +%s)
END=$((START + DURATION))
echo "$HEADER" >"$TMP/samples.csv"
(
  set +e # a sample that fails is a gap, never the end of the sampling
  while [ ! -e "$TMP/stop-sampling" ]; do
    sample >>"$TMP/samples.csv"
    sleep "$SAMPLE"
  done
) &
SAMPLER=$!
for ((i = 0; i < VMS; i++)); do
  slot "$i" &
  SLOTS+=($!)
done
for pid in "${SLOTS[@]}"; do
  wait "$pid" || true
done
SLOTS=()
ELAPSED=$(($(date +%s) - START))
wait_idle
sample >>"$TMP/samples.csv"
touch "$TMP/stop-sampling"
wait "$SAMPLER" || true
SAMPLER=
sample >>"$TMP/idle.csv"

# ---- the daemon stops cleanly ----

kill -TERM "$DAEMON"
rc=0
wait "$DAEMON" || rc=$?
DAEMON=
[ $rc -eq 0 ] || echo "soak: the daemon exited with $rc" >>"$TMP/failures.log"

# ---- report ----

cat "$TMP"/slot-*.res >"$TMP/results.log"
REFUSED_NOBODY=$(grep -c "refused pid [0-9]* uid $NOBODY .*not in allow_uids" \
  "$TMP/daemon.log" || true)
CLOSED_BAD=$(grep -c "closing connection from pid" "$TMP/daemon.log" || true)
WORKER_DEATHS=$(grep -c "worker died" "$TMP/daemon.log" || true)
{
  echo "refusals in the daemon log, by listener and reason:"
  sed -nE 's/.*warn: listener ([^:]+): (closing connection|refused) from pid [0-9]+ uid [0-9]+: (.*)/\1: \3/p
    s/.*warn: listener ([^:]+): refused pid [0-9]+ uid ([0-9]+) gid [0-9]+: (.*)/\1: uid \2 \3/p' \
    "$TMP/daemon.log" | sort | uniq -c | sort -rn
} | tee "$TMP/refusals.txt"
set +e
"$PY" - "$TMP" "$ELAPSED" "$CHECK_RSS" "$RSS_MARGIN" "$FD_MARGIN" \
  "$ANON_SLACK_MB" "$REFUSED_NOBODY" "$CLOSED_BAD" "$WORKER_DEATHS" "$WORKER" \
  <<'EOF' | tee "$TMP/report.txt"
import csv, sys

tmp, elapsed = sys.argv[1], int(sys.argv[2])
check_rss, rss_margin, fd_margin = sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5])
anon_slack_kb = int(sys.argv[6]) * 1024
refused_nobody, closed_bad, deaths, worker = map(int, sys.argv[7:11])
problems = []

counts = {"restore": [0, 0], "malformed": [0, 0], "intruder": [0, 0]}
pages = mismatches = zero_checked = 0
for line in open(tmp + "/results.log"):
    f = line.split()
    kind, rc = f[0], int(f[1])
    counts[kind][rc != 0] += 1
    if kind == "restore" and rc == 0:
        pages += int(f[2]); mismatches += int(f[3]); zero_checked += int(f[4])
    elif kind == "restore" and len(f) >= 4 and f[3].isdigit():
        mismatches += int(f[3])
failures = sum(c[1] for c in counts.values())
try:
    failures += sum(1 for l in open(tmp + "/failures.log") if "daemon exited" in l)
except OSError:
    pass

print("restores done:      %d (%.1f/s)" % (counts["restore"][0], counts["restore"][0] / max(elapsed, 1)))
print("pages verified:     %d (%.0f/s), balloon pages checked zero: %d" % (pages, pages / max(elapsed, 1), zero_checked))
print("mismatches:         %d" % mismatches)
print("malformed refused:  %d (daemon closed %d bad handshakes)" % (counts["malformed"][0], closed_bad))
print("intruders refused:  %d (daemon refused uid 65534 %d times)" % (counts["intruder"][0], refused_nobody))
print("failures:           %d (restore %d, malformed %d, intruder %d)" % (failures, counts["restore"][1], counts["malformed"][1], counts["intruder"][1]))
print("worker restarts:    %d" % deaths)

if counts["restore"][0] == 0: problems.append("no restore completed")
if mismatches: problems.append("%d mismatched pages" % mismatches)
if failures: problems.append("%d failed runs (see failures)" % failures)
if deaths: problems.append("the worker died %d times" % deaths)
if refused_nobody != counts["intruder"][0] + counts["intruder"][1]:
    problems.append("%d intruder runs but %d refusals by allow_uids in the log" % (sum(counts["intruder"]), refused_nobody))
if closed_bad != counts["malformed"][0] + counts["malformed"][1]:
    problems.append("%d malformed handshakes but %d closed in the log" % (sum(counts["malformed"]), closed_bad))

def rows(path):
    return [{k: int(v) for k, v in r.items()} for r in csv.DictReader(open(path))]

idle = rows(tmp + "/idle.csv")
samples = rows(tmp + "/samples.csv")
# What one session costs in descriptors, measured on a held VM.
per_s = idle[1]["sup_fds"] - idle[0]["sup_fds"]
per_w = idle[1]["wrk_fds"] - idle[0]["wrk_fds"]
print("one session holds %d descriptors in the supervisor, %d in the worker" % (per_s, per_w))
for r in samples:
    r["rss"] = r["sup_rss_kb"] + r["wrk_rss_kb"]
    r["anon"] = r["sup_anon_kb"] + r["wrk_anon_kb"]
    r["fds"] = r["sup_fds"] + r["wrk_fds"]
    # Descriptors not explained by the sessions open at that instant.
    r["base_fds"] = r["fds"] - per_s * r["sup_uffds"] - per_w * r["wrk_uffds"]
    if r["worker_pid"] not in (0, worker):
        problems.append("worker pid changed to %d at %d s" % (r["worker_pid"], r["t"]))
        worker = r["worker_pid"]

print()
print("   t(s)  RSS sup+wrk (MiB)  anon (MiB)  fds sup+wrk  sessions  fds w/o sessions")
step = max(1, len(samples) // 24)
shown = samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else [])
for r in shown:
    print("%7d  %8.1f + %-7.1f  %10.1f  %5d + %-5d  %8d  %16d" % (
        r["t"], r["sup_rss_kb"] / 1024, r["wrk_rss_kb"] / 1024, r["anon"] / 1024,
        r["sup_fds"], r["wrk_fds"], r["sup_uffds"], r["base_fds"]))

third = len(samples) // 3
if third < 2:
    problems.append("only %d samples: run longer" % len(samples))
else:
    first, last = samples[:third], samples[-third:]
    def mx(rs, k): return max(r[k] for r in rs)
    print()
    print("first third vs last third (max): RSS %.1f -> %.1f MiB, anon %.1f -> %.1f MiB, "
          "fds %d -> %d, fds w/o sessions %d -> %d" % (
              mx(first, "rss") / 1024, mx(last, "rss") / 1024,
              mx(first, "anon") / 1024, mx(last, "anon") / 1024,
              mx(first, "fds"), mx(last, "fds"), mx(first, "base_fds"), mx(last, "base_fds")))
    if check_rss and mx(last, "rss") > mx(first, "rss") * (100 + rss_margin) / 100:
        problems.append("RSS grew from %d to %d kB (margin %d%%)" % (mx(first, "rss"), mx(last, "rss"), rss_margin))
    # Most of the RSS is the images' pages, which hide a heap leak: the
    # anonymous part is checked on its own.
    if check_rss and mx(last, "anon") > mx(first, "anon") * (100 + rss_margin) / 100 + anon_slack_kb:
        problems.append("anonymous memory grew from %d to %d kB (margin %d%% + %d kB)" % (
            mx(first, "anon"), mx(last, "anon"), rss_margin, anon_slack_kb))
    if mx(last, "base_fds") > mx(first, "base_fds") + fd_margin:
        problems.append("descriptors grew from %d to %d (margin %d)" % (mx(first, "base_fds"), mx(last, "base_fds"), fd_margin))
start_idle = idle[0]["sup_fds"] + idle[0]["wrk_fds"]
end_idle = idle[2]["sup_fds"] + idle[2]["wrk_fds"]
print("idle descriptors before and after the run: %d -> %d; idle RSS %.1f -> %.1f MiB" % (
    start_idle, end_idle, (idle[0]["sup_rss_kb"] + idle[0]["wrk_rss_kb"]) / 1024,
    (idle[2]["sup_rss_kb"] + idle[2]["wrk_rss_kb"]) / 1024))
if end_idle > start_idle + fd_margin:
    problems.append("idle descriptors grew from %d to %d" % (start_idle, end_idle))

print()
for p in problems:
    print("soak: FAIL: " + p)
print("soak: %s" % ("FAIL" if problems else "PASS"))
sys.exit(1 if problems else 0)
EOF
rc=${PIPESTATUS[0]}
set -e
if [ -s "$TMP/failures.log" ]; then
  echo "---- failures (first 40 lines)" >&2
  head -n 40 "$TMP/failures.log" >&2
fi
STATUS=$rc
exit $rc
