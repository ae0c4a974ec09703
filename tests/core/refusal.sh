# A refusal is recognised by the simulator however the connection ends:
# the daemon may close before, during or after the handshake is sent, so
# the simulator sees an orderly close, EPIPE or ECONNRESET.  An allow-list
# refusal (decided at accept, before a byte is read) is repeated many
# times, and once the close is made to come between the two parts of the
# handshake, so the send itself must fail.
. "$(dirname "$0")/../lib/functions.sh"
. "$(dirname "$0")/common.sh"

sim 0 img mkimage "$TMP/mem" --size 8M --seed 5
cat >"$TMP/uffdkit.conf" <<CONF
uffdkit = { control_socket = "$TMP/ctl.sock"; };
listeners = (
  { name = "deny"; socket = "$TMP/deny.sock"; allow_uids = [ 4242 ];
    source = { plugin = "mmap"; path = "$TMP/mem"; }; }
);
CONF
start_daemon d "$TMP/deny.sock" --config "$TMP/uffdkit.conf"
run=(run --socket "$TMP/deny.sock" --image "$TMP/mem" --expect-refused
  --timeout 10)

for ((i = 0; i < 40; i++)); do
  sim 0 "plain-$i" "${run[@]}" >/dev/null
done
# The first 16 bytes go with the uffd; the rest follow once the daemon has
# closed the connection: that send fails, and it must count as refused.
for ((i = 0; i < 5; i++)); do
  sim 0 "split-$i" "${run[@]}" --split-send 16 --split-pause 0.3
  grep -Eq "during the handshake \((Broken pipe|Connection reset by peer)\), as expected" \
    "$TMP/split-$i.err" || fail "split-$i: $(cat "$TMP/split-$i.err")"
done
# Counted by the listener's counter: the log is rate-limited.
refused=$("$UFFDKIT" ctl --socket "$TMP/ctl.sock" --json stats |
  python3 -c 'import json, sys
print([l["refused_peers"] for l in json.load(sys.stdin)["listeners"]][0])')
[ "$refused" = 45 ] || fail "the daemon did not refuse 45 peers: $refused"
if grep -q "session [0-9]*: pid" "$TMP/d.log"; then
  fail "a refused peer got a session"
fi
stop_daemons
echo "core-refusal: OK"
