# Network namespaces a test creates, links with veth pairs made inside
# them (no interface ever exists in the machine's own namespace), and
# deletes at exit, also on failure.  Sourced after tests/lib/functions.sh;
# needs root and iproute2.  The caller's EXIT handling runs netns_cleanup
# before functions.sh's cleanup.

NETNS_LIST=()
NETNS_TAG=ufk$$

# netns_add NAME: creates namespace $NETNS_TAG-NAME with its loopback up;
# its full name is in NS_NAME.
netns_add() {
  NS_NAME=$NETNS_TAG-$1
  command -v ip >/dev/null || skip "ip (iproute2) is not installed"
  [ "$(id -u)" -eq 0 ] || skip "network namespaces need root"
  ip netns add "$NS_NAME" || fail "ip netns add $NS_NAME failed"
  NETNS_LIST+=("$NS_NAME")
  ip -n "$NS_NAME" link set lo up || fail "no loopback in $NS_NAME"
}

# netns_link NS_A IF_A ADDR_A NS_B IF_B ADDR_B: a veth pair between the
# two namespaces, IF_A with ADDR_A (CIDR) in NS_A, IF_B with ADDR_B in NS_B.
netns_link() {
  ip -n "$1" link add "$2" type veth peer name "$5" netns "$4" ||
    fail "no veth pair between $1 and $4"
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$4" addr add "$6" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

# netns_cleanup: ends what still runs in the namespaces (only this test's
# processes can be there: SIGTERM, then SIGKILL after 5 s) and deletes them.
netns_cleanup() {
  local ns pids i
  for ns in "${NETNS_LIST[@]}"; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -z "$pids" ] || kill -TERM $pids 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      [ -n "$(ip netns pids "$ns" 2>/dev/null || true)" ] || break
      sleep 0.05
    done
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  NETNS_LIST=()
}
