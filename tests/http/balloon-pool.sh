#!/bin/bash
# A balloon REMOVE while the I/O pool holds the read of a 4 KiB page: the
# pool must install zeros over the removed page, never the source bytes it
# read.  Every read of the http source (served through the pool) is made
# to take 2 s; the simulator's balloon discards all guest memory 0.5 s
# after a quarter of the pages were touched, while the vCPU waits on the
# next page's read.  The server's and the daemon's counts prove that
# order: that page was read, and only the pages touched before the balloon
# were copied from the source.
source "$(dirname "$0")/../lib/functions.sh"
source "$(dirname "$0")/servers.sh"
need_built "$UFFDKIT" "$SIM"

PAGES=16
make_image $((PAGES * 4))K --seed 9 --zero-percent 0
start_faulty "$TMP/www"
CTL=$TMP/ctl.sock
cat >"$TMP/d.conf" <<EOF
uffdkit = { control_socket = "$CTL"; };
listeners = (
  { name = "pool"; socket = "$TMP/pool.sock";
    source = { plugin = "http"; url = "$FAULTY/mem.img"; }; }
);
EOF
start_daemon d "$TMP/pool.sock" --config "$TMP/d.conf"
# The worker's probe of the object is not one of the reads counted below.
until_true 30 grep -q "worker [0-9]* ready" "$TMP/d.log" ||
  fail "the worker did not start"
curl -sf "$FAULTY/_reset" >/dev/null || fail "cannot reset the server"
curl -sf "$FAULTY/_control?mode=delay&count=1000&seconds=2" >/dev/null ||
  fail "cannot arm the server"

sim 0 removed run --socket "$TMP/pool.sock" --image "$IMG" \
  --balloon 0:$((PAGES * 4))K --balloon-during --balloon-delay 0.5 \
  --timeout 60
expect_field removed mismatches 0
expect_field removed zero_checked $PAGES

# A quarter of the pages (4) were read and copied before the balloon, the
# fifth was being read when it came: 5 reads, 4 pages copied, and every
# other install (the fifth page, the 11 after it, the 4 discarded ones
# touched again) zeros.
reads=$(curl -s "$FAULTY/_stats" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"])')
[ "$reads" -eq $((PAGES / 4 + 1)) ] ||
  fail "$reads reads from the source, expected $((PAGES / 4 + 1)):" \
    "the balloon did not come while the pool held a read"
"$UFFDKIT" ctl --socket "$CTL" --json list >"$TMP/list.json"
counts=$(python3 -c 'import json, sys
l = json.load(open(sys.argv[1]))["listeners"][0]
print(l["pages_copied"], l["zero_pages"])' "$TMP/list.json")
[ "$counts" = "$((PAGES / 4)) $PAGES" ] ||
  fail "pages copied and zero pages: $counts, expected $((PAGES / 4)) $PAGES"
stop_daemons
echo "http-balloon-pool: OK"
